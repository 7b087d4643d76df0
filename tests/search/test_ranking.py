"""ranking: reciprocal rank fusion and hybrid search's order."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codeweir.protocol import SearchHit
from codeweir.search.ranking import fuse_hybrid, reciprocal_rank_fusion


def _hit(path: str) -> SearchHit:
    return SearchHit(
        repo="r", path=path, start_line=1, end_line=2, kind="function", language="python", score=0.0, snippet="", blob="b"
    )


def _paths(hits: list[SearchHit]) -> list[str]:
    return [h.path for h in hits]


def test_a_lighter_ranking_sways_the_fused_order_less():
    heavy, light = [_hit("a"), _hit("b")], [_hit("b"), _hit("a")]
    assert _paths(reciprocal_rank_fusion([heavy, light], 2, k=5, weights=(1.0, 0.5))) == ["a", "b"]
    assert _paths(reciprocal_rank_fusion([heavy, light], 2, k=5, weights=(0.5, 1.0))) == ["b", "a"]


def test_rankings_and_weights_must_pair_up():
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([[_hit("a")], [_hit("b")]], 2, weights=(1.0,))


@given(st.lists(st.lists(st.sampled_from("abcdefgh"), unique=True, max_size=6), min_size=1, max_size=3))
def test_fusion_lists_each_hit_once_best_first(rankings):
    fused = fuse_hybrid(*([[_hit(p) for p in r] for r in rankings] + [[]] * (3 - len(rankings))), limit=20)
    assert sorted(_paths(fused)) == sorted({p for r in rankings for p in r})
    assert [h.score for h in fused] == sorted((h.score for h in fused), reverse=True)


def test_a_hit_first_in_two_rankings_leads_the_hybrid_order():
    fused = fuse_hybrid([_hit("lexical"), _hit("both")], [_hit("both"), _hit("semantic")], [], limit=3)
    assert _paths(fused)[0] == "both"
