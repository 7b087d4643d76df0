import hashlib
import re

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from codeweir.config import parse_config
from codeweir.errors import RequestError
from codeweir.index.store import Store
from codeweir.protocol import TIMED_OUT
from codeweir.records import Chunk, FileRecord
from codeweir.search import regex as regex_search
from codeweir.search.filters import Filters
from codeweir.search.patterns import MATCH_SECONDS, Budget, Substring, Text, compile_pattern, line_matches, line_snippet
from codeweir.search.regex import search_regex
from codeweir.search.trigrams import ALL, MAX_AND, NONE, TrigramQuery, any_of_strings, literal_trigrams, trigram_query
from codeweir.service.daemon import run_daemon
from tests.gitrepo import make_repo
from tests.service.test_daemon import Conn


def trigrams(text: str) -> set[str]:
    text = text.lower()
    return {text[i : i + 3] for i in range(len(text) - 2)}


def holds(query: TrigramQuery, present: set[str]) -> bool:
    if query.op in ("all", "none"):
        return query.op == "all"
    results = [t in present for t in query.trigrams] + [holds(s, present) for s in query.subs]
    return all(results) if query.op == "and" else any(results)


def AND(*items) -> TrigramQuery:
    return TrigramQuery(
        "and", frozenset(i for i in items if isinstance(i, str)), frozenset(i for i in items if not isinstance(i, str))
    )


def OR(*items) -> TrigramQuery:
    return TrigramQuery(
        "or", frozenset(i for i in items if isinstance(i, str)), frozenset(i for i in items if not isinstance(i, str))
    )


# -- the prefilter ------------------------------------------------------------------------------


def test_a_literal_needs_all_its_trigrams_lowercased():
    assert trigram_query("ParseDuration") == AND(*trigrams("parseduration"))


def test_an_alternation_needs_one_branch():
    assert trigram_query("Parse(Duration|Time)") == AND(
        *trigrams("parse"),
        OR(AND(*trigrams("duration")), AND(*trigrams("time"))),
        OR(AND("sed", "edu"), AND("set", "eti")),  # across the boundary
    )


def test_a_gap_keeps_both_sides():
    assert trigram_query(r"func.*Reader") == AND(*trigrams("func"), *trigrams("reader"))
    assert trigram_query(r"err != nil\s*{") == AND(*trigrams("err != nil"))


def test_a_small_class_is_expanded_and_a_large_one_is_any_character():
    assert trigram_query("[Ee]rror") == AND(*trigrams("error"))
    assert trigram_query("ab[c-e]") == OR("abc", "abd", "abe")
    assert trigram_query(r"ab\w") == ALL
    assert trigram_query("0x[0-9a-fA-F]") == OR(*(f"0x{c}" for c in "0123456789abcdef"))


def test_patterns_without_three_literal_characters_need_nothing():
    for pattern in (r"\w+", "a|b", "ab", "x*", r"^$", r"(a)\1"):
        assert trigram_query(pattern) == ALL, pattern


def test_optional_and_repeated_parts():
    assert trigram_query("colou?r") == AND("col", "olo")
    assert trigram_query("(abc)+d") == AND("abc", "bcd")
    assert trigram_query("x(abc)*") == ALL


def test_a_pattern_that_cannot_match_needs_the_impossible():
    assert trigram_query("[^\\s\\S]") == ALL  # a negated class is "any character": never wrong
    assert any_of_strings([]) == NONE


def test_an_invalid_regex_points_at_the_problem():
    with pytest.raises(RequestError, match=r"regex: missing \), unterminated subpattern \(column 5\)"):
        trigram_query("func(a")


# Patterns over a small alphabet, so that random texts match them often.
_atom = st.sampled_from(["a", "b", "c", "A", "ab", "abc", "[ab]", "[^a]", ".", r"\w", r"\b", "^", "$", "\\n"])


def _regexes(children):
    return st.one_of(
        st.lists(children, min_size=1, max_size=4).map("".join),
        st.tuples(children, children).map(lambda p: f"(?:{p[0]}|{p[1]})"),
        st.tuples(children, st.sampled_from(["*", "+", "?", "{2}", "{1,3}", "*?"])).map(lambda p: f"(?:{p[0]}){p[1]}"),
        children.map(lambda p: f"({p})"),
        children.map(lambda p: f"(?={p})"),
    )


_patterns = st.recursive(_atom, _regexes, max_leaves=12)


@settings(max_examples=400)
@given(_patterns, st.text(alphabet="abcAB \n", max_size=40), st.booleans())
def test_any_text_a_pattern_matches_satisfies_its_prefilter(pattern, text, ignore_case):
    flags = re.MULTILINE | (re.IGNORECASE if ignore_case else 0)
    query = trigram_query(pattern, flags)
    if re.search(pattern, text, flags):
        assert holds(query, trigrams(text)), (pattern, text, query)


def test_a_long_literal_needs_a_bounded_number_of_its_trigrams():
    literal = "".join(chr(ord("a") + (i * 7) % 26) + chr(ord("a") + (i * 11) % 26) for i in range(10_000))
    for query in (trigram_query(re.escape(literal)), literal_trigrams(literal)):
        assert query.op == "and" and not query.subs and len(query.trigrams) == MAX_AND
        assert query.trigrams <= trigrams(literal)  # any of its trigrams: never one it lacks


def test_an_alternation_of_many_branches_needs_nothing():
    branches = [f"{i % 10}{i // 10 % 10}{i // 100}name" for i in range(1000)]  # no prefix in common
    assert trigram_query("|".join(branches)) == ALL


def test_a_literal_needs_the_trigrams_of_its_runs_that_lowercase_to_one_character():
    assert literal_trigrams("ParseDuration") == trigram_query("ParseDuration")
    assert literal_trigrams("abcİdef") == AND("abc", "def")  # İ lowercases to two characters
    assert literal_trigrams("ab") == ALL


# -- verification -------------------------------------------------------------------------------


def test_each_matching_line_is_reported_once_with_its_first_column():
    content = "a = 1\nfoo(x) + foo(y)\n\n  Foo()"
    matches = line_matches(content, 10, [compile_pattern("foo", case_sensitive=False)])
    assert [(m.line, m.column) for m in matches] == [(11, 1), (13, 3)]
    assert line_snippet(content, matches[0]) == ("foo(x) + foo(y)", ((0, 3),))


def test_a_line_snippet_is_raw_text_with_the_offsets_of_every_match_on_the_line():
    content = "if a < b && <b>café</b>(x) {\n  café()"
    pattern = compile_pattern("café", case_sensitive=True)
    (first, _) = line_matches(content, 1, [pattern])
    text, matches = line_snippet(content, first, [pattern])
    assert text == "if a < b && <b>café</b>(x) {"  # nothing escaped, nothing added
    assert [text[s:e] for s, e in matches] == ["café"] and matches == ((15, 19),)


def test_every_pattern_must_match_somewhere_in_the_chunk():
    content = "alpha\nbeta"
    patterns = [compile_pattern(p, case_sensitive=True) for p in ("alpha", "beta")]
    assert [m.line for m in line_matches(content, 1, patterns)] == [1, 2]
    assert line_matches(content, 1, patterns + [compile_pattern("gamma", case_sensitive=True)]) == []


def test_anchors_match_at_line_ends():
    matches = line_matches("x\n}\n  }\n}", 1, [compile_pattern("^}$", case_sensitive=True)])
    assert [m.line for m in matches] == [2, 4]


def test_a_long_line_is_cut_around_the_match_in_its_snippet():
    content = "x" * 1000 + "needle" + "y" * 1000
    (match,) = line_matches(content, 1, [compile_pattern("needle", case_sensitive=True)])
    snippet, matches = line_snippet(content, match)
    assert len(snippet) <= 240 and [snippet[s:e] for s, e in matches] == ["needle"]
    assert match.column == 1001


@given(st.lists(st.text(alphabet="ab \t<&", max_size=12), min_size=1, max_size=8), st.sampled_from(["a", "ab", "b a", "<&"]))
def test_line_matches_agree_with_a_line_by_line_search(lines, literal):
    content = "\n".join(lines)
    found = line_matches(content, 5, [compile_pattern(re.escape(literal), case_sensitive=True)])
    expected = [(i + 5, line.index(literal) + 1) for i, line in enumerate(lines) if literal in line]
    assert [(m.line, m.column) for m in found] == expected


def test_catastrophic_patterns_for_a_backtracking_engine_are_answered():
    line = "b" * 100_000
    assert line_matches(line + "x", 1, [compile_pattern(r"^(b+)+$", case_sensitive=True)]) == []
    assert [m.column for m in line_matches(line, 1, [compile_pattern(r"^(b+)+$", case_sensitive=True)])] == [1]
    assert line_matches("a" * 50_000, 1, [compile_pattern("a+c", case_sensitive=True)]) == []


def _first(pattern: str, text: str, *, case_sensitive: bool = True) -> tuple[int, int] | None:
    found = line_matches(text, 1, [compile_pattern(pattern, case_sensitive=case_sensitive)])
    return (found[0].start, found[0].end) if found else None


@pytest.mark.parametrize(
    "pattern, text, span",
    [
        (r"foo\Z", "foo\nfoo", (4, 7)),  # \Z: the end of the text (RE2 spells it \z)
        (r"\u00e9t\N{EM DASH}", "x ét— y", (2, 5)),  # Python's escapes
        (r"x{,2}y", "xxxy", (1, 4)),  # {,n}: Python's, from 0
        (r"a{1,2}?", "aa", (0, 1)),  # lazy
        (r"(?i:foo)Bar", "FOOBar FOObar", (0, 6)),  # scoped flags
        (r"(?i)(?-i:Foo)bar", "fooBAR FooBAR", (7, 13)),
        (r"(?s)a.b", "a\nb", (0, 3)),
        (r"a.b", "a\nb axb", (4, 7)),
        (r"[\w.-]+@", "  x.y-z@", (2, 8)),
        (r"[^\s]+", "  abc", (2, 5)),
        (r"\d+\.\d+", "v 1.25", (2, 6)),
        (r"(?x) a b  c  # spaces and comments are not the pattern", "abc", (0, 3)),
        (r"[]a]", "x]", (1, 2)),
        ("\\$\\(\\)\\[\\]\\{\\}\\^\\.\\*\\+\\?\\|\\\\", "$()[]{}^.*+?|\\", (0, 14)),
        (r"café", "CAFÉ café", (5, 9)),
        (r"^\s*}$", "x\n  }", (2, 5)),
    ],
)
def test_python_regex_syntax_means_what_it_means_in_python(pattern, text, span):
    assert _first(pattern, text) == span
    assert re.search(pattern, text, re.MULTILINE).span() == span


def test_case_insensitive_matching_folds_non_ascii_letters():
    assert _first("CAFÉ", "x café", case_sensitive=False) == (2, 6)
    assert _first("Straße", "STRASSE straße", case_sensitive=False) == (8, 14)


@pytest.mark.parametrize(
    "pattern, says",
    [
        ("foo(?=bar)", "lookahead is not supported: matching runs in linear time, which it cannot (column 4)"),
        ("(?<!x)foo", "negative lookbehind is not supported: matching runs in linear time, which it cannot (column 1)"),
        (r"(\w+) \1", "a backreference is not supported: matching runs in linear time, which it cannot (column 7)"),
        ("(?P<a>x)(?P=a)", "a backreference is not supported: matching runs in linear time, which it cannot (column 9)"),
        ("x*+y", "a possessive repeat is not supported: matching runs in linear time, which it cannot (column 3)"),
        ("(?>ab)c", "an atomic group is not supported: matching runs in linear time, which it cannot (column 1)"),
        ("a{1001}", "a repeat count above 1000 is not supported"),
        ("(?:(?:a{100}){100})", "a repeat count above 1000, nested repeats multiplied together, is not supported"),
        ("a{99999999999999999999}", "regex: the repetition number is too large"),
        ("(" * 2000 + ")" * 2000, "regex: the pattern is nested too deeply"),
        ("(a.)" * 3000, "regex: the pattern is too large (27,004 instructions compiled, at most 8,192)"),
    ],
)
def test_what_linear_time_matching_cannot_do_is_refused_and_named(pattern, says):
    with pytest.raises(RequestError, match=re.escape(says)) as caught:
        compile_pattern(pattern, case_sensitive=True)
    assert caught.value.code == -32602


def test_an_error_in_a_long_pattern_points_into_an_excerpt_of_it():
    pattern = "x" * 5000 + "(" + "y" * 5000
    with pytest.raises(RequestError) as caught:
        compile_pattern(pattern, case_sensitive=True)
    first, shown, caret = str(caught.value).split("\n")
    assert first == "regex: missing ), unterminated subpattern (column 5001)"
    assert len(shown) < 100 and shown[caret.index("^")] == "("


_plain = st.sampled_from(["a", "b", "ab", "[ab]", "[^a]", ".", r"\w", r"\s", r"\b", "^", "$", r"\n", "(?i:a)"])


def _may_match_empty(pattern: str) -> bool:
    """Whether the pattern can match no text somewhere: assertions (^, $, \\b) taken as always true."""
    return re.fullmatch(re.sub(r"\\b|\$|(?<!\[)\^", "", pattern), "") is not None


# A repeat of something that may match no text is left out: there Perl (and Python's `re`) end
# the loop at the empty pass while RE2 goes on, a difference RE2 documents (its Syntax page).
_plain_patterns = st.recursive(
    _plain,
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=4).map("".join),
        st.tuples(children, children).map(lambda p: f"(?:{p[0]}|{p[1]})"),
        st.tuples(
            children.filter(lambda p: not _may_match_empty(p)),
            st.sampled_from(["*", "+", "?", "{2}", "{1,3}", "*?", "+?"]),
        ).map(lambda p: f"(?:{p[0]}){p[1]}"),
        children.map(lambda p: f"({p})"),
    ),
    max_leaves=10,
)


def _python_line_matches(pattern: str, text: str, flags: int) -> list[tuple[int, int]]:
    """line_matches' walk over the text, with Python's `re` finding each match."""
    compiled, found, pos = re.compile(pattern, flags), {}, 0
    while (m := compiled.search(text, pos)) is not None:
        line = text.count("\n", 0, m.start()) + 1
        found.setdefault(line, m.start() - (text.rfind("\n", 0, m.start()) + 1) + 1)
        next_line = text.find("\n", m.start()) + 1
        if next_line == 0:
            break
        pos = max(m.end(), next_line)
    return sorted(found.items())


@settings(max_examples=400)
@given(_plain_patterns, st.text(alphabet="abAB \n", max_size=30), st.booleans())
def test_every_matching_line_and_column_is_the_one_python_finds(pattern, text, case_sensitive):
    """RE2 finds the match Python's `re` finds (leftmost-first, both) wherever it looks."""
    flags = re.MULTILINE | (0 if case_sensitive else re.IGNORECASE)
    found = line_matches(text, 1, [compile_pattern(pattern, case_sensitive=case_sensitive)])
    assert [(m.line, m.column) for m in found] == _python_line_matches(pattern, text, flags), (pattern, text)


@settings(max_examples=300)
@given(
    st.sampled_from(["ab", "b+a", "a(?:b|ba)*", r"\bab", "ab$", "^b", "abc|b", "(?:ab|b)b?"]),
    st.text(alphabet="ab \n", max_size=200),
)
def test_matching_in_windows_finds_each_match_no_longer_than_a_window(pattern, text):
    whole = compile_pattern(pattern, case_sensitive=True)
    windowed = compile_pattern(pattern, case_sensitive=True)
    windowed.window = 4  # bytes: each search looks at 8 at most
    short = {(m.line, m.column) for m in line_matches(text, 1, [whole]) if m.end - m.start <= 4}
    found = line_matches(text, 1, [windowed])
    assert short <= {(m.line, m.column) for m in found}
    for m in found:  # each one a match where it is said to be
        assert re.compile(pattern, re.MULTILINE).match(text, m.start), (pattern, text, m)


def test_columns_and_snippet_offsets_are_in_characters_in_non_ascii_text():
    content = "// çà et là\n  naïve = café(résumé)"
    pattern = compile_pattern(r"caf\w*\(", case_sensitive=True)
    ((match),) = line_matches(content, 1, [compile_pattern(r"café\(", case_sensitive=True)])
    assert (match.line, match.column) == (2, 11) and content[match.start : match.end] == "café("
    snippet, marks = line_snippet(content, match, [compile_pattern("é", case_sensitive=True)])
    assert snippet == "  naïve = café(résumé)" and [snippet[s:e] for s, e in marks] == ["café(", "é", "é"]
    assert line_matches(content, 1, [pattern]) == []  # \w is ASCII: é is not a word character


@pytest.mark.parametrize("case_sensitive", [True, False])
@pytest.mark.parametrize("size", [5_000, 100_000])
def test_a_long_quoted_literal_is_found_at_its_line_and_column(size, case_sensitive):
    literal = "".join(chr(ord("a") + (i * 7) % 26) for i in range(size))
    content = ("q" * 99 + "\n") * 10 + "  " + literal + "\n" + literal[:-1]
    searched = literal if case_sensitive else literal.upper()
    (match,) = line_matches(content, 1, [Substring(searched, case_sensitive=case_sensitive)])
    assert (match.line, match.column, match.end - match.start) == (11, 3, size)
    assert line_matches(content, 1, [Substring(literal.upper(), case_sensitive=True)]) == []


def test_a_quoted_literal_with_non_ascii_characters_is_found_in_either_case():
    content = "x = 1\nÉté: Ωmega; été: ωMEGA"
    found = line_matches(content, 1, [Substring("été: ωmega", case_sensitive=False)])
    assert [(m.line, m.column, content[m.start : m.end]) for m in found] == [(2, 1, "Été: Ωmega")]
    (match,) = line_matches(content, 1, [Substring("été: ωMEGA", case_sensitive=True)])
    assert (match.line, match.column) == (2, 13)
    assert line_snippet(content, match, [Substring("ω", case_sensitive=False)])[1] == ((5, 6), (12, 22))


def test_text_offsets_convert_between_bytes_and_characters_either_way():
    text = Text("aé\n😀b\udc80c")
    data = text.data
    for char in [0, 1, 2, 3, 4, 5, 6, 7, 3, 0, 7, 1]:
        byte = text.byte(char)
        assert len(data[:byte].decode("utf-8", "surrogatepass")) == char
        assert text.char(byte) == char
    assert text.char(2) == 2  # inside é: the next character


def test_matching_stops_once_its_budget_is_spent():
    with pytest.raises(RequestError) as caught:
        line_matches("ab\n" * 10, 1, [compile_pattern("b", case_sensitive=True)], Budget(0))
    assert caught.value.code == TIMED_OUT
    assert str(caught.value) == "search stopped after 0 s of matching: narrow it with path:, lang: or a longer literal"


# -- search over a real index ----------------------------------------------------------------------


def _record(path: str, chunks: list[tuple[int, str, str]], facets=frozenset()) -> FileRecord:
    """A file of chunks (start line, symbol, content)."""
    built = tuple(
        Chunk(start, start + content.count("\n"), 0, len(content), symbol, "function" if symbol else "text", symbol, content)
        for start, symbol, content in chunks
    )
    return FileRecord(
        "go",
        path,
        "blob-" + path,
        "go",
        built,
        tuple(hashlib.md5(f"{path}{i}".encode()).hexdigest() for i in range(len(built))),
        facets=facets,
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("regex") / "index")
    store.write_file(
        _record(
            "time/format.go",
            [
                (1, "", "package time\n\n// ParseDuration parses a duration string."),
                (
                    4,
                    "ParseDuration",
                    'func ParseDuration(s string) (Duration, error) {\n\tif s == "" {\n\t\treturn 0, errLeadingInt\n\t}\n\treturn parse(s)\n}',
                ),
                # An overlapping window: line 8 is in both chunks.
                (8, "", '\treturn parse(s)\n}\n\nvar errLeadingInt = errors.New("time: bad [0-9]*")'),
            ],
        )
    )
    store.write_file(
        _record(
            "time/format_test.go",
            [(1, "TestParse", 'func TestParse(t *testing.T) {\n\tParseDuration("1h")\n}')],
            frozenset({"test"}),
        )
    )
    store.write_file(_record("vendor/x/dur.go", [(1, "", "x := ParseDuration(y)")], frozenset({"vendored"})))
    store.write_file(_record("net/url.go", [(1, "parse", "func parse(rawURL string) (*URL, error) {\n\treturn nil, nil\n}")]))
    store.commit()
    return store


def search(store, *patterns, limit=50, case_sensitive=True, **filters):
    return search_regex(store, patterns, Filters(**filters), limit, case_sensitive=case_sensitive)


def test_a_literal_finds_every_line_with_its_line_and_column(store):
    hits = search(store, "ParseDuration").hits
    found = [(h.path, h.line, h.column) for h in hits]
    # The definition first, then the rest of the source, then the test, then vendored code.
    assert found == [
        ("time/format.go", 4, 6),
        ("time/format.go", 3, 4),
        ("time/format_test.go", 2, 2),
        ("vendor/x/dur.go", 1, 6),
    ]
    assert hits[0].facets == () and hits[2].facets == ("test",) and hits[3].facets == ("vendored",)
    assert hits[0].snippet == "func ParseDuration(s string) (Duration, error) {" and hits[0].matches == ((5, 18),)


def test_lines_in_overlapping_chunks_are_reported_once(store):
    assert [(h.path, h.line) for h in search(store, r"return parse\(").hits] == [("time/format.go", 8)]


def test_case_sensitivity_is_an_option(store):
    assert {h.line for h in search(store, "parseduration", case_sensitive=False).hits} == {1, 2, 3, 4}
    assert search(store, "parseduration").hits == []


def test_a_regex_is_verified_not_just_prefiltered(store):
    # Every trigram of "errLeadingInt" is in format.go's chunks, but only lines 6 and 11 match.
    hits = search(store, r"errLeading\w+$").hits
    assert [(h.line, h.column) for h in hits] == [(6, 13)]
    assert [h.line for h in search(store, r"errors\.New\(").hits] == [11]


def test_filters_apply_to_regex_search(store):
    assert {h.path for h in search(store, "ParseDuration", not_facets=("test", "vendored")).hits} == {"time/format.go"}
    assert {h.path for h in search(store, "ParseDuration", facets=("test",)).hits} == {"time/format_test.go"}
    assert {h.path for h in search(store, "ParseDuration", path="vendor/**").hits} == {"vendor/x/dur.go"}


def test_a_pattern_without_trigrams_scans_a_bounded_number_of_chunks_and_says_so(store, monkeypatch):
    monkeypatch.setattr(regex_search, "MAX_SCAN_CHUNKS", 2)
    result = search(store, r"\(\w\)")
    assert "scanned the first 2 of 6 chunks" in result.notes[0]


def test_the_limit_stops_the_search_and_says_so(store):
    result = search(store, "ParseDuration", limit=2)
    assert len(result.hits) == 2 and "stopped at 2" in result.notes[-1]


def test_a_hit_explains_its_score(store):
    first, *_, last = search_regex(store, ["ParseDuration"], Filters(), 10, case_sensitive=True, explain=True).hits
    assert first.explain == {"match": 1.0, "definition": 1.0, "facet": 2.0}
    assert last.explain == {"match": 1.0, "definition": 0.0, "facet": 1.2}
    assert first.score == pytest.approx(4.0)


# -- through the daemon's socket -------------------------------------------------------------------

GO = """package timeutil

// ParseDuration parses a duration string such as "1h30m".
func ParseDuration(s string) (int, error) {
\tif s == "" {
\t\treturn 0, errEmpty
\t}
\treturn len(s), nil
}
"""

GO_TEST = """package timeutil

func TestParseDuration(t *testing.T) {
\tif _, err := ParseDuration("1h"); err != nil {
\t\tt.Fatal(err)
\t}
}
"""


@pytest.fixture
def served_repo(tmp_path):
    """A bare repository indexed at its ref: its ref is polled every 30 s, so a test can move
    it and see hits go stale before any resync."""
    work = make_repo(tmp_path / "work", {"time/parse.go": GO, "time/parse_test.go": GO_TEST, "README.md": "# t\n"})
    return work, work.clone_bare(tmp_path / "proj.git")


@pytest.fixture
async def conn(tmp_path, served_repo, nursery):
    _, bare = served_repo
    config = parse_config(
        {
            "state_dir": str(tmp_path / "state"),
            "socket": str(tmp_path / "run" / "codeweir.sock"),
            "repositories": [{"name": "proj", "path": str(bare.root), "ref": "main"}],
            "limits": {"files_in_flight": 2, "parse_workers": 1},
            "model": {"enabled": False},
        },
        base_dir=tmp_path,
    )
    daemon = await nursery.start(run_daemon, config)
    async with await trio.open_unix_socket(config.socket) as stream:
        conn = Conn(stream)
        assert (await conn.call("sync", {"repo": "proj", "wait": True}))["result"]["jobs"][0]["state"] == "completed"
        yield conn
    daemon.shutdown()


async def results(conn, query, **params):
    reply = await conn.call("search", {"query": query, **params})
    assert "result" in reply, reply
    return reply["result"]


async def test_regex_mode_reports_each_matching_line_and_column(conn):
    found = await results(conn, r"lang:go return \S+, (nil|errEmpty)$", mode="regex")
    assert [(h["path"], h["line"], h["column"]) for h in found["results"]] == [("time/parse.go", 6, 3), ("time/parse.go", 8, 2)]
    assert found["mode"] == "regex"


async def test_a_quoted_literal_is_an_exact_substring_search(conn):
    hits = (await results(conn, '"err != nil" ParseDuration', mode="lexical"))["results"]
    assert [(h["path"], h["line"], h["column"], h["facets"]) for h in hits] == [("time/parse_test.go", 4, 36, ["test"])]


async def test_query_filters_and_case(conn):
    assert (await results(conn, '"parseduration" case:yes'))["results"] == []
    hits = (await results(conn, '"parseduration" -is:test'))["results"]
    assert {h["path"] for h in hits} == {"time/parse.go"}
    hits = (await results(conn, "sym:ParseDuration kind:function"))["results"]
    assert [(h["path"], h["symbol"]) for h in hits][0] == ("time/parse.go", "ParseDuration")


async def test_hits_explain_their_scores_when_asked(conn):
    plain = (await results(conn, "parse duration", mode="lexical"))["results"]
    assert all("explain" not in h for h in plain)
    explained = (await results(conn, "parse duration", mode="lexical", explain=True))["results"]
    first = explained[0]
    assert first["path"] == "time/parse.go" and first["explain"]["facet"] == 4.0  # source: weight 2, squared
    parts = sum(v for k, v in first["explain"].items() if k != "facet")
    assert first["score"] == pytest.approx(parts * first["explain"]["facet"], rel=1e-3)


async def test_a_hit_whose_file_changed_since_it_was_indexed_is_stale(conn, served_repo):
    work, bare = served_repo
    hits = (await results(conn, '"errEmpty"'))["results"]
    assert hits and not any(h["stale"] for h in hits)
    work.write("time/parse.go", GO.replace("errEmpty", "errBlank"))
    work.commit("rename the error")
    work.git("push", "-q", str(bare.root), "main")
    hits = (await results(conn, '"errEmpty"'))["results"]
    assert hits and all(h["stale"] for h in hits)


@pytest.mark.parametrize(
    "query, says",
    [
        ("parse lnag:go", "did you mean lang:"),
        ('"unterminated', "unterminated quote (column 1)"),
        ("lang:go", "nothing to search for"),
    ],
)
async def test_an_invalid_query_is_answered_with_what_and_where(conn, query, says):
    error = (await conn.call("search", {"query": query, "mode": "lexical"}))["error"]
    assert error["code"] == -32602 and says in error["message"]


async def test_an_invalid_regex_is_answered_with_its_column(conn):
    error = (await conn.call("search", {"query": "func(a", "mode": "regex"}))["error"]
    assert "column 5" in error["message"]


async def test_a_search_over_its_budget_stops_with_an_error_and_others_are_served_meanwhile(tmp_path, nursery):
    """A regex whose matching is slow even in linear time (a long case-insensitive pattern over a
    long line: RE2's DFA outgrows its memory, its NFA costs line x pattern) stops at its budget,
    and `status` requests from another client are answered while it runs (in a search worker,
    whose budget is the module's own)."""
    repo = make_repo(tmp_path / "proj", {"min.js": "x" * 300_000 + "y\n"})
    config = parse_config(
        {
            "state_dir": str(tmp_path / "state"),
            "socket": str(tmp_path / "run" / "codeweir.sock"),
            "repositories": [{"name": "proj", "path": str(repo.root)}],
            "limits": {"files_in_flight": 2, "parse_workers": 1},
            "model": {"enabled": False},
        },
        base_dir=tmp_path,
    )
    daemon = await nursery.start(run_daemon, config)
    searcher = Conn(await trio.open_unix_socket(config.socket))
    poller = Conn(await trio.open_unix_socket(config.socket))
    assert (await searcher.call("sync", {"repo": "proj", "wait": True}))["result"]["jobs"][0]["state"] == "completed"
    answers: list[tuple[str, dict]] = []

    async def search() -> None:
        answers.append(("search", await searcher.call("search", {"query": "x" * 2999 + "y", "mode": "regex"})))

    async with trio.open_nursery() as clients:
        clients.start_soon(search)
        while not any(kind == "search" for kind, _ in answers):
            answers.append(("status", await poller.call("status")))
    kinds = [kind for kind, _ in answers]
    assert kinds[:3] == ["status"] * 3, kinds  # answered while the search was matching
    assert all("result" in reply for kind, reply in answers if kind == "status")
    error = answers[kinds.index("search")][1]["error"]
    assert error == {
        "code": TIMED_OUT,
        "message": f"search stopped after {MATCH_SECONDS:g} s of matching: narrow it with path:, lang: or a longer literal",
    }
    daemon.shutdown()


async def test_a_regex_the_engine_cannot_run_is_a_request_error_naming_it(conn):
    error = (await conn.call("search", {"query": r"lang:go (\w+) \1", "mode": "regex"}))["error"]
    assert error["code"] == -32602 and error["message"].startswith("regex: a backreference is not supported")
