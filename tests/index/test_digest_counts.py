"""index/digest_counts.py: a multiset of digests in numpy arrays agrees with a Counter (pure)."""

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from codeweir.index import digest_counts
from codeweir.index.digest_counts import DigestCounts, digest64

_digests = st.sampled_from([f"{i:032x}" for i in range(0, 2**128, 2**124)] + ["h1", "h2", "k" * 40])


@given(
    st.lists(_digests),
    st.lists(st.tuples(_digests, st.integers(-3, 3))),
    st.integers(0, 6),
)
def test_counts_match_a_counter_through_changes_and_merges(initial, changes, merge_at):
    digest_counts.MERGE_AT_LEAST, saved = merge_at, digest_counts.MERGE_AT_LEAST
    try:
        counts = DigestCounts.of(initial)
        expected = Counter(initial)
        for digest, n in changes:
            before = expected[digest]
            expected[digest] = max(before + n, 0)
            assert counts.add(digest64(digest), n) == (before, expected[digest])
        expected = +expected
        assert len(counts) == len(expected) and counts.total == expected.total()
        assert all(counts.get(digest64(d)) == n for d, n in expected.items())
        assert counts == DigestCounts.of(expected.elements())
    finally:
        digest_counts.MERGE_AT_LEAST = saved


def test_a_hex_digest_is_counted_by_its_first_64_bits_and_any_other_string_by_a_hash():
    assert digest64("ff" * 8 + "00" * 8) == 2**64 - 1
    assert digest64("h1") != digest64("h2")
    assert digest64("zz" * 16) == digest64("zz" * 16) != digest64("zz" * 15 + "zy")
