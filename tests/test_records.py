"""The records that cross between processes."""

from __future__ import annotations

import pickle

import attrs
from hypothesis import given
from hypothesis import strategies as st

from codeweir.records import KINDS, Chunk, FileRecord

_chunks = st.builds(
    Chunk,
    st.integers(1, 10**6),
    st.integers(1, 10**6),
    st.integers(0, 10**9),
    st.integers(0, 10**9),
    st.text(max_size=20),
    st.sampled_from(KINDS),
    st.text(max_size=40),
    st.text(),
)


@given(_chunks)
def test_a_chunk_comes_back_from_a_pickle_with_every_field_in_its_place(chunk):
    again = pickle.loads(pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL))
    assert type(again) is Chunk
    assert attrs.asdict(again) == attrs.asdict(chunk)


@given(st.lists(_chunks, max_size=5))
def test_a_file_record_comes_back_from_a_pickle_with_its_chunks(chunks):
    record = FileRecord(
        "repo", "a/b.py", "0" * 40, "python", tuple(chunks), tuple("h" for _ in chunks), words=("w",) * len(chunks)
    )
    assert pickle.loads(pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)) == record
