import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codeweir.errors import RequestError
from codeweir.search.query import KEYS, MAX_TERMS, Query, parse_query


def epoch(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp())


def error_column(text: str, **kwargs) -> tuple[str, int]:
    with pytest.raises(RequestError) as info:
        parse_query(text, **kwargs)
    message = str(info.value)
    column = int(re.search(r"\(column (\d+)\)", message).group(1))
    # The caret sits under that column of the echoed query.
    _, echoed, caret = message.split("\n")
    assert caret.index("^") - 2 == column - 1 and echoed[2:] == text
    return message, column


def test_words_and_filters():
    q = parse_query("parse duration lang:go -path:vendor/** repo:std kind:function")
    assert q.words == ("parse", "duration") and q.text == "parse duration"
    assert (q.lang, q.repo, q.kind, q.not_paths) == ("go", "std", "function", ("vendor/**",))


def test_quoted_literals_keep_spaces_and_escapes():
    q = parse_query(r'"err != nil" "say \"hi\" \\o/" handler')
    assert q.literals == ("err != nil", 'say "hi" \\o/') and q.words == ("handler",)


def test_a_filter_value_may_be_quoted():
    assert parse_query('path:"my dir/*.go" x').path == "my dir/*.go"


def test_symbol_facets_case_and_negations():
    q = parse_query("sym:Reader kind:struct is:test -is:vendored -lang:c -repo:x -kind:method case:yes")
    assert q.symbol == "Reader" and q.facets == ("test",) and q.not_facets == ("vendored",)
    assert (q.not_langs, q.not_repos, q.not_kinds, q.case) == (("c",), ("x",), ("method",), "yes")


def test_commit_filters():
    q = parse_query("fix race author:alice -author:bot after:2024-01-01 before:2024-06-30T12:00:00+02:00")
    assert q.authors == ("alice",) and q.not_authors == ("bot",)
    assert q.after == epoch(2024, 1, 1) and q.before == epoch(2024, 6, 30, 10)


def test_excluded_words_and_words_with_colons():
    q = parse_query("-deprecated std::vector http://x.org - a")
    assert q.excluded == ("deprecated",)
    assert q.words == ("std::vector", "http://x.org", "-", "a")


def test_github_and_zoekt_spellings_are_aliases():
    assert parse_query("language:go file:*.go symbol:Reader") == Query(lang="go", path="*.go", symbol="Reader")


def test_regex_mode_takes_the_text_between_the_filters_verbatim():
    q = parse_query(r'lang:go  func \(\w+ "x"  lang:  \) case:yes', regex=True)
    assert q.pattern == r'func \(\w+ "x"  lang:  \)'
    assert q.lang == "go" and q.case == "yes" and q.words == () and q.literals == ()
    assert parse_query("repo:x", regex=True).pattern == ""


def test_ref_may_be_given_more_than_once_and_means_any_of_them():
    q = parse_query('parse ref:main ref:"release/5.1" repo:django')
    assert q == Query(words=("parse",), refs=("main", "release/5.1"), repo="django")
    assert parse_query("parse").refs == ()


def test_ref_in_regex_mode_is_a_filter_at_either_end_of_the_pattern():
    q = parse_query(r"ref:v5.1.3 func \w+\( ref:main", regex=True)
    assert q.pattern == r"func \w+\(" and q.refs == ("v5.1.3", "main")


@pytest.mark.parametrize(
    "text, column, says",
    [
        ('find "unterminated', 6, "unterminated quote"),
        ('"a"b', 4, "closing quote"),
        ("x lang:", 8, "needs a value"),
        ("x lnag:go", 3, "did you mean lang:"),
        ("x is:fixture", 6, "not one of test, vendored"),
        ("x case:maybe", 8, "not one of yes, no, auto"),
        ("x kind:fn", 8, "function"),
        ("lang:go x lang:rust", 11, "given twice (first at column 1)"),
        ("x after:yesterday", 9, "not a date"),
        ("x after:2024-02-01 before:2024-01-01", 27, "not before"),
        ("sym:Reader extra", 12, "sym: looks up one name"),
        ("x -sym:Reader", 3, "cannot be negated"),
        ("x -ref:main", 3, "ref: cannot be negated"),
        ("x ref:", 7, "needs a value"),
        ("x refs:main", 3, "did you mean ref:"),
        ('x -"literal"', 3, "cannot be excluded"),
        ('x ""', 3, "empty quotes"),
    ],
)
def test_an_invalid_query_names_the_problem_and_points_at_it(text, column, says):
    message, found = error_column(text)
    assert found == column and says in message


_words = st.text(alphabet="abcXYZ_09.*/", min_size=1, max_size=8).filter(lambda w: ":" not in w and w[0] != "-")


@given(
    st.lists(_words, max_size=4),
    st.lists(st.text(alphabet='ab "\\:-x', min_size=1, max_size=8), max_size=3),
    st.fixed_dictionaries({}, optional={"lang": _words, "repo": _words, "path": _words}),
    st.lists(_words, max_size=2),
)
def test_a_rendered_query_parses_back(words, literals, filters, not_paths):
    def quote(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    parts = [*words, *map(quote, literals), *(f"{k}:{v}" for k, v in filters.items()), *(f"-path:{p}" for p in not_paths)]
    q = parse_query("  ".join(parts))
    assert q == Query(words=tuple(words), literals=tuple(literals), not_paths=tuple(not_paths), **filters)


@given(st.text(alphabet=' ab"\\:-lang:is:path', max_size=30), st.booleans())
def test_any_text_parses_or_gets_an_error_pointing_inside_it(text, regex):
    try:
        parse_query(text, regex=regex)
    except RequestError as exc:
        column = int(re.search(r"\(column (\d+)\)", str(exc)).group(1))
        assert 1 <= column <= len(text) + 1


def test_every_key_is_documented_in_the_readme():
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert all(f"`{key}:" in readme for key in KEYS)


def test_an_error_in_a_long_query_points_into_an_excerpt_of_it():
    text = "parse " * 2000 + "lnag:go " + "duration " * 2000
    with pytest.raises(RequestError) as info:
        parse_query(text)
    first, echoed, caret = str(info.value).split("\n")
    assert first == "query: unknown filter lnag: (did you mean lang:?); quote it to search for it (column 12001)"
    assert len(echoed) < 100 and echoed[caret.index("^") :].startswith("lnag:go")


def test_a_long_query_parses():
    q = parse_query("word " * 200 + '"' + "a literal " * 3000 + '" lang:go')
    assert len(q.words) == 200 and q.literals == ("a literal " * 3000,) and q.lang == "go"


def test_a_query_has_at_most_max_terms_words_literals_and_filters():
    assert len(parse_query("w " * MAX_TERMS).words) == MAX_TERMS
    with pytest.raises(
        RequestError,
        match=rf"at most {MAX_TERMS} words, quoted literals and filters, this one {MAX_TERMS + 1} \(column {2 * MAX_TERMS + 1}\)",
    ):
        parse_query("w " * MAX_TERMS + '"x"')
    # A regex pattern is one, however many spaces it has.
    assert parse_query("lang:go " + "a b " * MAX_TERMS, regex=True).lang == "go"
