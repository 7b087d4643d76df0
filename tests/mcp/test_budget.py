"""mcp/budget.py: the token estimate, fitting a list into a budget, and the tools' cursors (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codeweir.mcp.budget import (
    CursorError,
    brief_notes,
    decode_cursor,
    encode_cursor,
    estimate_tokens,
    fits,
    most_that_fit,
    skip_count,
)


def test_tokens_are_utf8_bytes_over_four_rounded_up():
    assert [estimate_tokens(t) for t in ("", "a", "abcd", "abcde")] == [0, 1, 1, 2]
    assert estimate_tokens("é" * 4) == 2  # 8 bytes


def test_an_answer_fits_when_its_text_and_its_json_both_do():
    assert fits("x" * 400, {"a": 1}, 100)
    assert not fits("x" * 401, {"a": 1}, 100)
    assert not fits("x", {"text": "y" * 400}, 100)


@given(st.integers(0, 60), st.integers(0, 60))
def test_most_that_fit_is_the_largest_count_that_fits(count, limit):
    assert most_that_fit(count, lambda n: n <= limit) == min(count, limit)


def test_the_whole_list_is_tried_on_its_own_first():
    # The whole list ends without a "more follow" note: it may fit where one item fewer does not.
    assert most_that_fit(10, lambda n: n == 10 or n <= 3) == 10


def test_notes_are_few_and_short():
    notes = brief_notes(["x" * 1000] * 9)
    assert len(notes) == 4 and all(len(n) == 300 and n.endswith("…") for n in notes)


def test_a_cursor_carries_its_state_for_its_tool_only():
    cursor = encode_cursor("search_code", {"s": "abc", "k": 3})
    assert decode_cursor(cursor, "search_code") == {"t": "search_code", "s": "abc", "k": 3}
    with pytest.raises(CursorError, match="not a cursor of read_code"):
        decode_cursor(cursor, "read_code")
    with pytest.raises(CursorError, match="not a cursor codeweir gave"):
        decode_cursor("%%% not base64", "search_code")


@pytest.mark.parametrize("k", [-1, 10**9, "3", True, 2.5])
def test_a_damaged_skip_count_is_refused(k):
    with pytest.raises(CursorError, match="damaged"):
        skip_count({"k": k}, 999)
