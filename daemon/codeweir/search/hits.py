"""How a stored chunk becomes the hit every chunk search returns (protocol.SearchHit)."""

from __future__ import annotations

import html
from typing import Any

import tantivy

from codeweir.facets import SOURCE
from codeweir.index.store import stored_chunk
from codeweir.protocol import SearchHit
from codeweir.records import StoredChunk


def to_hit(doc: tantivy.Document, score: float, snippet: str, **extra: Any) -> SearchHit:
    return chunk_hit(stored_chunk(doc), score, snippet, **extra)


def chunk_hit(c: StoredChunk, score: float, snippet: str, **extra: Any) -> SearchHit:
    """A stored chunk as the hit every chunk search returns (`extra`: an exact match's line and
    column, explain); the planner marks it stale."""
    return SearchHit(
        repo=c.repo,
        path=c.path,
        start_line=c.start_line,
        end_line=c.end_line,
        symbol=c.symbol_path or c.symbol,
        kind=c.kind,
        language=c.language,
        score=round(float(score), 4),
        snippet=snippet or _first_lines(c.content),
        blob=c.blob,
        facets=tuple(f for f in c.facets if f != SOURCE),
        **extra,
    )


def _first_lines(content: str, n: int = 3) -> str:
    return html.escape("\n".join(content.splitlines()[:n]))
