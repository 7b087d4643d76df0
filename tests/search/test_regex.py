import re

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from codeweir.config import parse_config
from codeweir.errors import RequestError
from codeweir.index.store import Store
from codeweir.records import Chunk, FileRecord
from codeweir.search import regex as regex_search
from codeweir.search.filters import Filters
from codeweir.search.regex import (
    ALL,
    NONE,
    TrigramQuery,
    any_of_strings,
    compile_pattern,
    line_matches,
    line_snippet,
    search_regex,
    trigram_query,
)
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


# -- search over a real index ----------------------------------------------------------------------


def _record(path: str, chunks: list[tuple[int, str, str]], facets=frozenset()) -> FileRecord:
    """A file of chunks (start line, symbol, content)."""
    built = tuple(
        Chunk(start, start + content.count("\n"), 0, len(content), symbol, "function" if symbol else "text", symbol, content)
        for start, symbol, content in chunks
    )
    return FileRecord("go", path, "blob-" + path, "go", built, tuple(f"{path}{i}" for i in range(len(built))), facets=facets)


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
