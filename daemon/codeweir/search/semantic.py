"""Semantic search over the vector store.

Filters never lose results to a top-k: a filtered query scores its candidate chunks exactly
when they are few (`EXACT_CANDIDATES`); otherwise it widens the nearest-neighbour search
until enough hits pass the filters or every vector has been looked at. Either way only the
versions of the views searched are seen (search/filters.py). Hybrid search fuses
this ranking with others: see search/ranking.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import tantivy

from codeweir.chunk import terms
from codeweir.index.schema import SCHEMA
from codeweir.index.vectors import VectorStore
from codeweir.protocol_results import SearchHit
from codeweir.search.filters import EXACT_CANDIDATES, FACET_WEIGHT, Filters, filter_clauses, narrows, placements, visible
from codeweir.search.hits import to_hit

if TYPE_CHECKING:
    from codeweir.index.store import Store

Clauses = list[tuple[tantivy.Occur, tantivy.Query]]


def _candidates(store: Store, allowed: Clauses) -> list[str] | None:
    """Content hashes of the chunks the filters allow; None when they allow too many to list."""
    searcher = store.searcher()
    query = tantivy.Query.boolean_query(allowed)
    total = searcher.search(query, limit=1, count=True).count
    if total > EXACT_CANDIDATES:
        return None
    hits = searcher.search(query, limit=max(total, 1), count=False).hits
    return list({searcher.doc(a).get_all("content_hash")[0]: None for _, a in hits})


def _chunks_with(store: Store, content_hash: str, allowed: Clauses) -> list[tantivy.Document]:
    """Every chunk (copies included) with this embedded text that the filters allow."""
    searcher = store.searcher()
    query = tantivy.Query.boolean_query(
        [(tantivy.Occur.Must, tantivy.Query.term_query(store.index.schema, "content_hash", content_hash)), *allowed]
    )
    return [searcher.doc(a) for _, a in searcher.search(query, limit=100, count=False).hits]


def search_semantic(store: Store, vectors: VectorStore, query: np.ndarray, filters: Filters, limit: int) -> list[SearchHit]:
    """Blocking: run in a thread. Hits ranked by cosine similarity to the query."""
    filters = visible(store, filters)
    allowed = filter_clauses(filters, "chunk")
    candidates = _candidates(store, allowed) if narrows(filters) else None
    placed = placements(filters)
    k = limit * 2
    while True:
        scored = vectors.search(query, k, candidates=candidates)
        hits: list[SearchHit] = []
        for content_hash, score in scored:
            hits.extend(to_hit(doc, score, "", placed=placed) for doc in _chunks_with(store, content_hash, allowed))
            if len(hits) >= limit:
                return hits[:limit]
        if candidates is not None or len(scored) < k or k >= len(vectors):
            return hits
        k *= 4


def search_definitions(store: Store, text: str, filters: Filters, limit: int) -> list[SearchHit]:
    """Blocking: run in a thread. Definitions whose names share subwords with `text`, the most
    shared (by BM25 over names) first: "close the connection" finds `close` and `close_connection`."""
    parts = sorted(set(terms.parts(text)))
    if not parts:
        return []
    should, must = tantivy.Occur.Should, tantivy.Occur.Must
    named = tantivy.Query.boolean_query([(should, tantivy.Query.term_query(SCHEMA, "symbol", p)) for p in parts])
    filters = visible(store, filters)
    only = tantivy.Query.const_score_query(tantivy.Query.boolean_query(filter_clauses(filters, "chunk")), 0.0)
    searcher = store.searcher()
    query = tantivy.Query.boolean_query([(must, named), (must, only)])
    found = searcher.search(query, limit=limit, weight_by_field=FACET_WEIGHT)
    placed = placements(filters)
    return [to_hit(searcher.doc(address), score, "", placed=placed) for score, address in found.hits]
