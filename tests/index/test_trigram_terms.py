from hypothesis import given
from hypothesis import strategies as st

from codeweir.index.trigram_terms import file_terms, query_terms


def test_a_files_terms_are_its_distinct_lowercased_byte_trigrams_in_hex_once_each():
    assert file_terms(["AbAb"]) == "616261 626162 "
    assert file_terms(["ab"]) == "" and file_terms([]) == ""


def test_chunks_are_joined_by_a_newline_so_no_trigram_of_either_is_lost():
    assert set(file_terms(["ab", "cd"]).split()) == {b"ab\n".hex(), b"b\nc".hex(), b"\ncd".hex()}


def test_a_non_ascii_trigram_asks_for_each_byte_trigram_of_its_encoding():
    assert query_terms("abc") == ["616263"]
    assert query_terms("aéb") == sorted([b"a\xc3\xa9".hex(), b"\xc3\xa9b".hex()])


@given(st.lists(st.text(max_size=30), max_size=4), st.data())
def test_every_character_trigram_of_a_files_text_is_found_by_its_query_terms(texts, data):
    """The prefilter never loses a match: any trigram of the lowercased text has all its terms."""
    held = set(file_terms(texts).split())
    text = "\n".join(texts).lower()
    if len(text) >= 3:
        start = data.draw(st.integers(0, len(text) - 3))
        assert set(query_terms(text[start : start + 3])) <= held
