"""index/vector_rows.py: rows read across blocks, and a row found by its key, colliding digests included."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from codeweir.index import vector_rows
from codeweir.index.digest_counts import digest64, hex_keys
from codeweir.index.vector_rows import KeyIndex, RowBlocks, key_bytes, key_digests, record_dtype

DIM = 4


def blocks_of(keys: list[str], cuts: list[int], spare: int = 0) -> RowBlocks:
    """`keys` as rows, vector i = (i, i, i, i), cut into blocks at `cuts`; the last block has `spare` rows of room."""
    records = np.zeros(len(keys) + spare, record_dtype(DIM))
    records["key"][: len(keys)] = key_bytes(keys)
    records["vector"] = np.arange(len(records), dtype=np.float32)[:, None]
    bounds = [0, *sorted(set(cuts)), len(keys)]
    starts = tuple(bounds[:-1])
    blocks = tuple(records[a:b] for a, b in zip(bounds[:-2], bounds[1:-1], strict=True)) + (records[bounds[-2] :],)
    return RowBlocks(starts, blocks, len(keys))


# Keys drawn from few 64-bit prefixes, so that many share their digest and only the whole key tells them apart.
keys_strategy = st.lists(
    st.tuples(
        st.sampled_from(["0" * 16, "f" * 16, "0123456789abcdef"]), st.text("0123456789abcdef", min_size=16, max_size=16)
    ).map("".join),
    unique=True,
    max_size=60,
)


@given(keys=keys_strategy, absent=keys_strategy, cuts=st.lists(st.integers(0, 60)), merge_at=st.integers(1, 8), data=st.data())
def test_every_key_is_found_at_its_row_and_no_other_key_is(keys, absent, cuts, merge_at, data) -> None:
    absent = [k for k in absent if k not in keys]
    blocks = blocks_of(keys, [c for c in cuts if c <= len(keys)])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(vector_rows, "MERGE_AT_LEAST", merge_at)  # merged into the arrays many times
        first = data.draw(st.integers(0, len(keys)))
        index = KeyIndex(key_digests(key_bytes(keys[:first])), np.arange(first))
        for start in range(first, len(keys), 3):
            index.add(keys[start : start + 3], start)
    assert [index.row(k, blocks) for k in keys] == list(range(len(keys)))
    assert index.rows(keys + absent, blocks).tolist() == list(range(len(keys))) + [-1] * len(absent)
    assert all(index.row(k, blocks) == -1 for k in absent)
    assert index.digests(len(keys)).tolist() == [digest64(k) for k in keys]


def test_a_row_past_the_count_is_not_there_yet() -> None:
    keys = [f"{i:032x}" for i in range(6)]
    index = KeyIndex()
    index.add(keys, 0)
    published = blocks_of(keys[:4], [2], spare=2)
    assert index.row(keys[5], published) == -1 and index.rows(keys, published).tolist() == [0, 1, 2, 3, -1, -1]
    assert index.digests(4).tolist() == [digest64(k) for k in keys[:4]]


@given(n=st.integers(0, 40), cuts=st.lists(st.integers(0, 40)), start=st.integers(0, 40), end=st.integers(0, 40))
def test_a_range_of_rows_reads_the_same_across_any_blocks(n, cuts, start, end) -> None:
    keys = [f"{i:032x}" for i in range(n)]
    blocks = blocks_of(keys, [c for c in cuts if c <= n], spare=3)
    start, end = min(start, n), min(max(start, end), n)
    expected = np.arange(start, end, dtype=np.float32)
    assert np.array_equal(blocks.vectors(start, end)[:, 0], expected)
    assert np.array_equal(blocks.scores(np.ones(DIM, np.float32), start, end), expected * DIM)
    assert (
        hex_keys(np.concatenate([p["key"] for p in blocks.pieces(start, end)] or [np.zeros((0, 16), np.uint8)]))
        == keys[start:end]
    )
    rows = np.arange(start, end)[::-1]
    assert hex_keys(blocks.take(rows)["key"]) == [keys[r] for r in rows]


def test_a_range_is_read_a_piece_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vector_rows, "PIECE_ROWS", 4)
    blocks = blocks_of([f"{i:032x}" for i in range(10)], [3])
    assert [len(p) for p in blocks.pieces(1, 10)] == [2, 4, 3]
