"""How a stored chunk becomes the hit every chunk search returns (protocol_results.SearchHit),
and the snippets hits show: raw text, with where the query matched as offsets into it (as
`rg --json` gives them), never escaped or marked up."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from operator import itemgetter
from typing import Any

import tantivy

from codeweir.chunk import terms
from codeweir.facets import SOURCE
from codeweir.index.membership import Placement
from codeweir.index.schema import stored_chunk
from codeweir.protocol_results import Matches, SearchHit, merged_spans
from codeweir.records import StoredChunk

SNIPPET_LINES = 3


def to_hit(
    doc: tantivy.Document,
    score: float,
    snippet: str = "",
    matches: Matches = (),
    placed: Mapping[str, Placement] | None = None,
    **extra: Any,
) -> SearchHit:
    """A chunk document as a hit, placed in the version the search sees it through (`placed`:
    its Visibility's)."""
    return chunk_hit(stored_chunk(doc, placed), score, snippet, matches, **extra)


def chunk_hit(c: StoredChunk, score: float, snippet: str = "", matches: Matches = (), **extra: Any) -> SearchHit:
    """A stored chunk as the hit every chunk search returns (`extra`: an exact match's line and
    column, explain); the planner marks it stale. Without a snippet, the chunk's first lines."""
    if not snippet:
        snippet, matches = first_lines(c.content), ()
    return SearchHit(
        repo=c.repo,
        path=c.path,
        start_line=c.start_line,
        end_line=c.end_line,
        symbol=c.symbol_path or c.symbol,
        kind=c.kind,
        language=c.language,
        score=round(float(score), 4),
        snippet=snippet,
        matches=matches,
        blob=c.blob,
        facets=tuple(f for f in c.facets if f != SOURCE),
        **extra,
    )


def first_lines(content: str, n: int = SNIPPET_LINES) -> str:
    return "\n".join(content.splitlines()[:n])


def tantivy_snippet(snippet: tantivy.Snippet) -> tuple[str, Matches]:
    """Tantivy's snippet as raw text and the code point offsets of its highlights (Tantivy's
    are byte offsets into the UTF-8 text)."""
    text = snippet.fragment()
    ranges = [(r.start, r.end) for r in snippet.highlighted()]
    if text.isascii():
        return text, merged_spans(ranges)
    data = text.encode("utf-8")

    def chars(offset: int) -> int:
        return len(data[:offset].decode("utf-8", "ignore"))

    return text, merged_spans((chars(start), chars(end)) for start, end in ranges)


def best_fragment(text: str, weights: Mapping[str, float], max_chars: int) -> tuple[str, Matches]:
    """The fragment of `text` a lexical hit shows, as Tantivy's SnippetGenerator picks it (its
    `words` field is split outside Tantivy, so Tantivy cannot): fragments of at most `max_chars`
    are cut at subword boundaries, the one whose matched subwords weigh most in `weights` wins
    (the first of equals), each match marked. Empty where none matches."""
    best = max(_fragments(text, weights, max_chars), key=itemgetter(0), default=None)  # max keeps the first
    if best is None:
        return "", ()
    _, start, stop, marks = best
    return text[start:stop], merged_spans((a - start, b - start) for a, b in marks)


def _fragments(
    text: str, weights: Mapping[str, float], max_chars: int
) -> Iterator[tuple[float, int, int, list[tuple[int, int]]]]:
    """best_fragment's candidates that match: (score, start, stop, marked spans)."""
    start = stop = 0
    score = 0.0
    marks: list[tuple[int, int]] = []
    for found in terms.PART.finditer(text):
        if found.end() - start > max_chars:
            if score > 0:
                yield score, start, stop, marks
            start, score, marks = found.start(), 0.0, []
        stop = found.end()
        if weight := weights.get(found.group().lower()):
            score += weight
            marks.append((found.start(), found.end()))
    if score > 0:
        yield score, start, stop, marks


_COMMENT_OR_DECORATOR = re.compile(r"\s*(#|//|/\*|\*|--|@|\"\"\"|''')")


def definition_snippet(content: str, symbol: str, n: int = SNIPPET_LINES) -> tuple[str, Matches]:
    """The definition's lines from the one naming it (below its comments and decorators), with
    each occurrence of the name as a whole word marked."""
    lines = content.split("\n")
    name = re.compile(rf"(?<![\w$]){re.escape(symbol)}(?![\w$])") if symbol else None
    start = 0
    if name is not None:
        start = next((i for i, line in enumerate(lines) if name.search(line) and not _COMMENT_OR_DECORATOR.match(line)), 0)
    text = "\n".join(lines[start : start + n])
    if name is None:
        return text, ()
    return text, tuple((m.start(), m.end()) for m in name.finditer(text))
