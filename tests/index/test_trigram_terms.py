from hypothesis import given
from hypothesis import strategies as st

from codeweir.index.trigram_terms import query_terms, text_terms


def test_a_drafts_terms_are_its_distinct_lowercased_byte_trigrams_in_hex_once_each():
    assert text_terms("AbAb") == "616261 626162 "
    assert text_terms("ab") == "" and text_terms("") == ""


def test_a_non_ascii_trigram_asks_for_each_byte_trigram_of_its_encoding():
    assert query_terms("abc") == ["616263"]
    assert query_terms("aéb") == sorted([b"a\xc3\xa9".hex(), b"\xc3\xa9b".hex()])


@given(st.text(max_size=60), st.data())
def test_every_character_trigram_of_a_drafts_text_is_found_by_its_query_terms(text, data):
    """The prefilter never loses a match: any trigram of the lowercased text has all its terms."""
    held = set(text_terms(text).split())
    lowered = text.lower()
    if len(lowered) >= 3:
        start = data.draw(st.integers(0, len(lowered) - 3))
        assert set(query_terms(lowered[start : start + 3])) <= held
