"""The terms code is split into, in Python, agree with those Tantivy's analyzers give."""

import re

from hypothesis import given
from hypothesis import strategies as st

from codeweir.chunk.terms import identifier_text, identifiers, parts, words
from codeweir.index.schema import PARTS, SPLIT

CODE = st.text(alphabet=st.sampled_from("aZq_9 .-\t\néÉ(){}xHTTP"), max_size=60) | st.text(max_size=40)


def analyzed(analyzer, text: str) -> list[str]:
    return list(analyzer.analyze(text))


def test_subwords_split_camel_snake_and_pascal_case_alike_and_identifiers_stay_whole():
    assert parts("parseDuration parse_duration ParseDuration") == ["parse", "duration"] * 3
    assert parts("HTTPServer x2y") == ["httpserver", "x", "2", "y"]
    assert identifiers("os.path_join(HTTPServer)") == ["os", "path_join", "httpserver"]


@given(CODE)
def test_subwords_are_the_terms_tantivys_analyzer_gives_names_and_paths(text):
    # `symbol`, `path_parts` and commit messages are split by Tantivy, chunk text by Python:
    # a query's parts must be the same terms in both.
    assert parts(text) == analyzed(PARTS, text)


@given(CODE)
def test_a_chunks_split_text_indexes_as_its_subwords_and_its_identifiers(text):
    assert analyzed(SPLIT, words(text)) == parts(text)
    assert analyzed(SPLIT, identifier_text(text)) == identifiers(text) == [m.lower() for m in re.findall(r"[A-Za-z0-9_]+", text)]
