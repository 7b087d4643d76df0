"""search/paging.py: pages of a search by cursor, with searches whose ranking shifts with their
depth (as hybrid's fused rankings do); no index, no daemon."""

from __future__ import annotations

import base64
import json

import attrs
import pytest

from codeweir.errors import RequestError
from codeweir.protocol_params import SearchParams
from codeweir.protocol_results import SearchHit, SearchResult
from codeweir.search.paging import decode_cursor, encode_cursor, page


def hit(n: int) -> SearchHit:
    return SearchHit(repo="r", path=f"f{n}.py", start_line=1, end_line=1, score=1.0, snippet="", blob="b")


def shifting(total: int):
    """A search of `total` hits whose order depends on how deep it reads: the deeper, the more
    hit n moves ahead of hit n - 1 for odd n (as a fused ranking reorders with its depth)."""
    calls = []

    async def run(depth: int) -> SearchResult:
        calls.append(depth)
        order = sorted(range(total), key=lambda n: n - (1.5 if n % 2 and depth > 20 else 0))
        return SearchResult(results=tuple(hit(n) for n in order[:depth]), took_ms=1.0, mode="hybrid")

    return run, calls


async def pages(params: SearchParams, run) -> list[list[str]]:
    out, cursor = [], None
    while True:
        result = await page(attrs.evolve(params, cursor=cursor), run)
        out.append([h.path for h in result.results])
        cursor = result.next_cursor
        if cursor is None:
            return out


async def test_pages_of_a_shifting_ranking_hold_every_hit_once():
    run, calls = shifting(57)
    got = await pages(SearchParams(query="q", limit=8), run)
    flat = [p for chunk in got for p in chunk]
    assert len(flat) == len(set(flat)) == 57
    assert all(len(chunk) == 8 for chunk in got[:-1])
    assert max(calls) <= 1000


async def test_a_first_page_reads_one_search_one_hit_deeper_than_its_limit():
    run, calls = shifting(57)
    result = await page(SearchParams(query="q", limit=10), run)
    assert calls == [11] and len(result.results) == 10 and result.next_cursor


async def test_the_last_page_has_no_cursor():
    run, _ = shifting(5)
    result = await page(SearchParams(query="q", limit=10), run)
    assert len(result.results) == 5 and result.next_cursor is None


async def test_a_cursor_belongs_to_its_query_and_filters():
    run, _ = shifting(30)
    first = await page(SearchParams(query="q", limit=5), run)
    with pytest.raises(RequestError, match="continues another request"):
        await page(SearchParams(query="q", limit=5, lang="go", cursor=first.next_cursor), run)
    more = await page(
        SearchParams(query="q", limit=7, context=3, cursor=first.next_cursor), run
    )  # page size and context may change
    assert len(more.results) == 7


async def test_a_cursor_belongs_to_its_refs_in_any_order_or_spelling():
    run, _ = shifting(30)
    first = await page(SearchParams(query="q", limit=5, ref=["v1", "v2"]), run)
    for same in (["v2", "v1"], ["v1", "v2", "v1"]):
        assert len((await page(SearchParams(query="q", limit=5, ref=same, cursor=first.next_cursor), run)).results) == 5
    for other in ("v1", None):
        with pytest.raises(RequestError, match="continues another request"):
            await page(SearchParams(query="q", limit=5, ref=other, cursor=first.next_cursor), run)
    main = await page(SearchParams(query="q", limit=5), run)
    with pytest.raises(RequestError, match="continues another request"):
        await page(SearchParams(query="q", limit=5, ref="v1", cursor=main.next_cursor), run)


async def test_hits_of_two_versions_of_one_file_are_both_delivered():
    async def run(depth: int) -> SearchResult:
        return SearchResult(results=(hit(1), attrs.evolve(hit(1), blob="other")), took_ms=1.0, mode="lexical")

    result = await page(SearchParams(query="q", limit=5), run)
    assert [h.blob for h in result.results] == ["b", "other"]


@pytest.mark.parametrize(
    "field, value", [("o", 0), ("o", 10**6), ("d", 10**6), ("s", [[5, 999]]), ("s", "x"), ("s", [[1, 1]] * 50)]
)
async def test_a_forged_cursor_is_refused_not_obeyed(field, value):
    run, calls = shifting(30)
    first = await page(SearchParams(query="q", limit=5), run)
    state = json.loads(base64.urlsafe_b64decode(first.next_cursor + "=="))
    state[field] = value
    forged = base64.urlsafe_b64encode(json.dumps(state).encode()).decode()
    with pytest.raises(RequestError, match="cursor: damaged"):
        await page(SearchParams(query="q", limit=5, cursor=forged), run)


def test_cursors_decode_only_for_their_kind_and_fingerprint():
    cursor = encode_cursor("search", "abc", {"o": 3})
    assert decode_cursor(cursor, "search", "abc")["o"] == 3
    with pytest.raises(RequestError, match="not a cursor"):
        decode_cursor(cursor, "refs", "abc")
    with pytest.raises(RequestError, match="continues another request"):
        decode_cursor(cursor, "search", "xyz")
