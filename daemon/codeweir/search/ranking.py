"""Fusing rankings: reciprocal rank fusion, and hybrid search's lists and constants. Pure.

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

from codeweir.protocol import SearchHit

RRF_K = 60
HYBRID_RRF_K = 5
# lexical, semantic, definitions: names share words with many queries, so they sway the order less.
HYBRID_WEIGHTS = (1.0, 1.0, 0.75)
Ranked = TypeVar("Ranked", bound=attrs.AttrsInstance)  # a hit: a chunk's, or a commit's


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
