"""What the control API answers and sends: search hits (a file's chunk, or a commit), the
answer to `search`, and a sync's `progress` events, as frozen attrs classes, without I/O.

`protocol.converter` makes the JSON objects sent from these.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import attrs

Stage = Literal["scan", "index", "commits", "embed"]


Matches = tuple[tuple[int, int], ...]  # [start, end) code point offsets into a snippet


def merged_spans(spans: Iterable[tuple[int, int]]) -> Matches:
    """Spans in order, overlapping and touching ones joined, empty ones dropped."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(s for s in spans if s[1] > s[0]):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return tuple(out)


@attrs.frozen(kw_only=True)
class SearchHit:
    """A result of every mode but `commits`: a chunk of a file, flat. The search stage builds
    these; `converter` makes the object the API and `search --json` send."""

    repo: str
    path: str
    start_line: int  # 1-based, inclusive
    end_line: int
    # Strings, never null: the definition's path ("Server.handle"), "" for a chunk that defines nothing.
    # A definition cut into several chunks names each of them so, but only the one holding its
    # definition line is found by `sym:` (the others are its pieces).
    symbol: str = ""
    kind: str = ""  # one of codeweir.chunk.chunker.KINDS: "function", "class", "section", "text", …
    language: str = ""
    score: float
    snippet: str  # raw text of the chunk (lines of it, or a fragment of a long line): never escaped
    # Where the query matched in the snippet, as rg --json gives it: [start, end) offsets in
    # Unicode code points (Python string indices) into `snippet`, in order, not overlapping.
    matches: Matches = ()
    blob: str  # the indexed file's git blob id
    # The configured refs whose view holds this version of the file (its blob at its path), by
    # name, in order; [] when only the main view (the worktree, or a bare repository's ref) does.
    # A version on several refs is one hit that names them all.
    refs: tuple[str, ...] = ()
    # Exact matches (regex, "quoted literals") only: the match's line and 1-based column.
    line: int | None = None
    column: int | None = None
    facets: tuple[str, ...] = ()  # "test", "vendored", "generated", "minified"; empty for source
    # The file has changed since it was indexed: in the worktree (or the repository's ref); for
    # a search with refs, on one of the wanted refs holding the hit, which now points elsewhere.
    stale: bool = False
    explain: dict[str, float] | None = None  # with explain=true: the parts of the score
    context: HitContext | None = None  # with context=N: the hit's lines and N around them, from the file now


@attrs.frozen(kw_only=True)
class HitContext:
    """Whole lines of a hit's file as it is now: the hit's snippet lines (an exact match's line) and
    `context` lines before and after them; a line over MAX_CONTEXT_LINE_CHARS is cut, ending in "…"."""

    start_line: int
    end_line: int
    text: str  # lines start_line..end_line, joined by "\n"


MAX_CONTEXT_LINE_CHARS = 1000


@attrs.frozen(kw_only=True)
class CommitHit:
    """A result of mode `commits`."""

    repo: str
    sha: str
    author: str  # "Name <email>"
    date: str  # ISO 8601, UTC
    summary: str  # the message's first line
    paths: tuple[str, ...]  # changed paths
    score: float
    snippet: str  # raw text of the message (or a fragment of it): never escaped
    matches: Matches = ()  # as SearchHit's: where the words matched in `snippet`


@attrs.frozen(kw_only=True)
class SearchResult:
    """The answer to `search`."""

    results: tuple[SearchHit, ...] | tuple[CommitHit, ...]
    took_ms: float
    mode: str
    notes: tuple[str, ...] = ()
    # More hits follow: send this as `cursor` (with the same query and filters) for the next ones.
    next_cursor: str | None = None


@attrs.frozen(kw_only=True)
class Progress:
    """Params of a `progress` notification, sent while a `sync` with wait=true runs."""

    job: str
    repo: str
    stage: Stage
    done: int
    total: int | None = None  # None while unknown (scanning)


PROGRESS = "progress"
