"""Semantic search over the vector store, and hybrid search by reciprocal rank fusion.

Filters never lose results to a top-k: a filtered query scores its candidate chunks exactly
when they are few (`EXACT_CANDIDATES`); otherwise it widens the nearest-neighbour search
until enough hits pass the filters or every vector has been looked at.

Hybrid search fuses three rankings: chunks with every query word (lexical), chunks by
meaning (semantic), and definitions named with the query's words. Measured by
bench/bench_retrieval.py on django (docstring sentences as queries, and function names): fusing
lexical and semantic alone at k = 60 ranked below semantic on the sentences (lexical, needing
every word, finds nothing useful for them) and below lexical on the names. A sentence usually
names what its function is called ("Close the connection" -> `close`), which the third list
catches; a small k lets each list's first hits lead.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

import attrs
import numpy as np
import tantivy

from codeweir.index.store import PARTS, SCHEMA, Store, tokens
from codeweir.index.vectors import VectorStore
from codeweir.protocol import SearchHit
from codeweir.search.lexical import FACET_WEIGHT, Filters, filter_clauses, to_hit

EXACT_CANDIDATES = 20_000
RRF_K = 60
HYBRID_RRF_K = 5
# lexical, semantic, definitions: names share words with many queries, so they sway the order less.
HYBRID_WEIGHTS = (1.0, 1.0, 0.75)
Ranked = TypeVar("Ranked")  # a hit: a chunk's, or a commit's


def _candidates(store: Store, filters: Filters) -> list[str] | None:
    """Content hashes of the chunks the filters allow; None when they allow too many to list."""
    searcher = store.searcher()
    query = tantivy.Query.boolean_query(filter_clauses(filters, "chunk"))
    total = searcher.search(query, limit=1, count=True).count
    if total > EXACT_CANDIDATES:
        return None
    hits = searcher.search(query, limit=max(total, 1), count=False).hits
    return list({searcher.doc(a).get_all("content_hash")[0]: None for _, a in hits})


def _chunks_with(store: Store, content_hash: str, filters: Filters) -> list[tantivy.Document]:
    """Every chunk (copies included) with this embedded text that the filters allow."""
    searcher = store.searcher()
    query = tantivy.Query.boolean_query(
        [
            (tantivy.Occur.Must, tantivy.Query.term_query(store.index.schema, "content_hash", content_hash)),
            *filter_clauses(filters, "chunk"),
        ]
    )
    return [searcher.doc(a) for _, a in searcher.search(query, limit=100, count=False).hits]


def search_semantic(store: Store, vectors: VectorStore, query: np.ndarray, filters: Filters, limit: int) -> list[SearchHit]:
    """Blocking: run in a thread. Hits ranked by cosine similarity to the query."""
    candidates = _candidates(store, filters) if filters != Filters() else None
    k = limit * 2
    while True:
        scored = vectors.search(query, k, candidates=candidates)
        hits: list[SearchHit] = []
        for content_hash, score in scored:
            hits.extend(to_hit(doc, score, "") for doc in _chunks_with(store, content_hash, filters))
            if len(hits) >= limit:
                return hits[:limit]
        if candidates is not None or len(scored) < k or k >= len(vectors):
            return hits
        k *= 4


def search_definitions(store: Store, text: str, filters: Filters, limit: int) -> list[SearchHit]:
    """Blocking: run in a thread. Definitions whose names share subwords with `text`, the most
    shared (by BM25 over names) first: "close the connection" finds `close` and `close_connection`."""
    parts = sorted(set(tokens(PARTS, text)))
    if not parts:
        return []
    should, must = tantivy.Occur.Should, tantivy.Occur.Must
    named = tantivy.Query.boolean_query([(should, tantivy.Query.term_query(SCHEMA, "symbol", p)) for p in parts])
    only = tantivy.Query.const_score_query(tantivy.Query.boolean_query(filter_clauses(filters, "chunk")), 0.0)
    searcher = store.searcher()
    query = tantivy.Query.boolean_query([(must, named), (must, only)])
    found = searcher.search(query, limit=limit, weight_by_field=FACET_WEIGHT)
    return [to_hit(searcher.doc(address), score, "") for score, address in found.hits]


def fuse_hybrid(
    lexical: Sequence[SearchHit], semantic: Sequence[SearchHit], definitions: Sequence[SearchHit], limit: int
) -> list[SearchHit]:
    """Hybrid search's order: see the module's docstring for why these lists and constants."""
    return reciprocal_rank_fusion([lexical, semantic, definitions], limit, k=HYBRID_RRF_K, weights=HYBRID_WEIGHTS)


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[Ranked]],
    limit: int,
    k: int = RRF_K,
    identity: Callable[[Ranked], Hashable] = lambda hit: (hit.repo, hit.path, hit.start_line),
    weights: Sequence[float] | None = None,
) -> list[Ranked]:
    """Fuse ranked lists: each hit (the same one by `identity`) scores sum(weight / (k + rank))
    over the lists (weights 1 unless given); the first list's hit object wins."""
    scores: dict[Hashable, float] = {}
    best: dict[Hashable, Ranked] = {}
    for ranking, weight in zip(rankings, weights or [1.0] * len(rankings), strict=True):
        for rank, hit in enumerate(ranking, start=1):
            key = identity(hit)
            scores[key] = scores.get(key, 0.0) + weight / (k + rank)
            best.setdefault(key, hit)
    order = sorted(scores, key=lambda key: -scores[key])[:limit]
    return [attrs.evolve(best[key], score=round(scores[key], 6)) for key in order]
