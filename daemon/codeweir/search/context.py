"""Context lines: each hit's lines, whole, and N lines around them, from its file as it is now.

A hit's anchor is where its snippet sits in the file: an exact match's `line`; otherwise the first
line of the hit's range that holds the snippet's first line (a definition's name line for symbol
hits, the matched fragment for lexical ones), or the range's first line when none does. The context
is the snippet's lines from there, with `context` lines before and after, cut to the file.

Each file is read once per answer (git/reading.py, in a thread under the search limiter). A file
that cannot be read now (deleted since it was indexed, a symlink swapped in) leaves its hits
without context, and a note says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import attrs
import trio

from codeweir.errors import CodeweirError
from codeweir.git.reading import FileText, read_text, read_version_text
from codeweir.protocol_results import MAX_CONTEXT_LINE_CHARS, HitContext, SearchHit

if TYPE_CHECKING:
    from codeweir.config import RepoConfig


def cut_line(line: str, limit: int = MAX_CONTEXT_LINE_CHARS) -> str:
    """A line, cut to `limit` characters ending in "…" when it is longer."""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def anchor(hit: SearchHit, lines: Sequence[str]) -> tuple[int, int]:
    """The first and last line (1-based) of the file that the hit's snippet shows."""
    if hit.line is not None:
        return hit.line, hit.line
    first, *rest = hit.snippet.split("\n")
    span = len(rest)
    probe = first.strip()
    start = hit.start_line
    if probe:
        for number in range(hit.start_line, min(hit.end_line, len(lines)) + 1):
            if probe in lines[number - 1]:
                start = number
                break
    return start, min(start + span, max(hit.end_line, start))


def context_of(hit: SearchHit, text: FileText, around: int) -> HitContext | None:
    lines = text.lines
    if not lines:
        return None
    first, last = anchor(hit, lines)
    start = max(1, first - around)
    end = min(len(lines), last + around)
    if start > end:
        return None
    return HitContext(start_line=start, end_line=end, text="\n".join(cut_line(line) for line in lines[start - 1 : end]))


async def with_context(
    hits: Sequence[SearchHit],
    around: int,
    repo: Callable[[str], RepoConfig | None],
    limiter: trio.CapacityLimiter,
    main_blob: Callable[[str, str], str | None] | None = None,
) -> tuple[list[SearchHit], list[str]]:
    """`hits`, each with its context lines where its file can be read now; and notes. A hit on a
    version the main view does not hold (`main_blob`: the blob it holds at a path), one only a
    ref has, reads that version, by its blob id."""
    texts: dict[tuple[str, str, str], FileText | None] = {}
    unreadable: list[str] = []

    def source(hit: SearchHit) -> tuple[str, str, str]:
        on_ref_only = main_blob is not None and main_blob(hit.repo, hit.path) != hit.blob
        return hit.repo, hit.path, hit.blob if on_ref_only else ""

    for hit in hits:
        key = source(hit)
        if key in texts:
            continue
        config = repo(hit.repo)
        if config is None:
            texts[key] = None
            continue
        try:
            if key[2]:
                texts[key] = await trio.to_thread.run_sync(read_version_text, config, hit.path, hit.blob, limiter=limiter)
            else:
                texts[key] = await trio.to_thread.run_sync(read_text, config, hit.path, limiter=limiter)
        except CodeweirError as exc:
            texts[key] = None
            unreadable.append(f"{hit.repo}:{hit.path} ({exc})")
    out = []
    for hit in hits:
        text = texts[source(hit)]
        out.append(hit if text is None else attrs.evolve(hit, context=context_of(hit, text, around)))
    notes = (
        [f"no context for {len(unreadable)} file(s) that cannot be read now: {'; '.join(unreadable[:3])}"] if unreadable else []
    )
    return out, notes
