import attrs
import pytest

from codeweir.errors import RequestError
from codeweir.index.store import Store
from codeweir.records import Chunk, FileRecord
from codeweir.search.filters import Filters
from codeweir.search.lexical import search_lexical, search_symbols
from codeweir.search.query import parse_query


@pytest.mark.parametrize("glob", ["/", "!vendor"])
def test_an_unusable_path_glob_is_a_request_error_naming_it(tmp_path, glob):
    store = Store(tmp_path / "index")
    with pytest.raises(RequestError, match=f"path: glob {glob!r}"):
        search_lexical(store, "x", Filters(path=glob), 10)


def _file(repo, path, language, *defs):
    chunks = tuple(
        Chunk(i * 10 + 1, i * 10 + 3, 0, len(body), symbol, "function", symbol, body) for i, (symbol, body) in enumerate(defs)
    )
    return FileRecord(repo, path, "blob-" + path, language, chunks, tuple(f"{path}{i}" for i in range(len(defs))))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("idx") / "index")
    store.write_file(
        _file(
            "go",
            "time/format.go",
            "go",
            ("ParseDuration", "func ParseDuration(s string) (Duration, error) {\n\treturn 0, nil\n}"),
        )
    )
    store.write_file(
        _file("py", "utils/dateparse.py", "python", ("parse_duration", "def parse_duration(value):\n    return value"))
    )
    store.write_file(_file("js", "src/time.js", "javascript", ("parseDuration", "function parseDuration(text) { return text }")))
    store.write_file(
        _file("docs", "guide.md", "markdown", ("Durations", "You can parse the duration of a task with the helpers below."))
    )
    store.write_file(_file("py", "utils/other.py", "python", ("unrelated", "def unrelated():\n    return 42")))
    store.commit()
    return store


def test_parse_duration_finds_every_spelling_of_the_identifier(store):
    hits = search_lexical(store, "parse duration", Filters(), 10)
    paths = [h.path for h in hits]
    assert {"time/format.go", "utils/dateparse.py", "src/time.js"} <= set(paths)
    # Identifiers where the words are adjacent outrank prose that merely mentions both.
    assert paths.index("guide.md") > max(paths.index(p) for p in ("time/format.go", "utils/dateparse.py", "src/time.js"))


def test_an_exact_identifier_query_ranks_its_exact_match_first(store):
    assert search_lexical(store, "parse_duration", Filters(), 10)[0].path == "utils/dateparse.py"
    assert search_lexical(store, "ParseDuration", Filters(), 10)[0].path in ("time/format.go", "src/time.js")


def test_filters_apply_inside_the_query(store):
    assert [h.repo for h in search_lexical(store, "parse duration", Filters(repo="go"), 10)] == ["go"]
    assert [h.language for h in search_lexical(store, "parse duration", Filters(lang="python"), 10)] == ["python"]
    assert [h.path for h in search_lexical(store, "parse duration", Filters(path="*.js"), 10)] == ["src/time.js"]
    assert search_lexical(store, "parse duration", Filters(path="utils/**"), 10)[0].path == "utils/dateparse.py"


def test_a_hit_is_flat_and_marks_matched_terms(store):
    hit = search_lexical(store, "parse_duration", Filters(), 1)[0]
    assert (hit.repo, hit.start_line, hit.end_line, hit.symbol, hit.kind, hit.blob) == (
        "py",
        1,
        3,
        "parse_duration",
        "function",
        "blob-utils/dateparse.py",
    )
    assert "<b>" in hit.snippet
    assert hit.score > 0


def test_every_word_must_match(store):
    assert search_lexical(store, "parse unrelated", Filters(), 10) == []
    assert search_lexical(store, "!!!", Filters(), 10) == []


def test_symbol_search_ranks_exact_then_prefix_then_fuzzy(tmp_path):
    store = Store(tmp_path / "index")
    store.write_file(
        _file(
            "r",
            "a.go",
            "go",
            ("Reader", "type Reader struct{}"),
            ("ReaderAt", "type ReaderAt interface{}"),
            ("Readers", "var Readers = 1"),
            ("Reeder", "func Reeder() {}"),
            ("Writer", "type Writer struct{}"),
        )
    )
    store.commit()
    names = [h.symbol for h in search_symbols(store, "reader", Filters(), 10)]
    assert names[0] == "Reader"
    assert set(names[1:3]) == {"ReaderAt", "Readers"}
    assert "Reeder" in names[3:] and "Writer" not in names


def test_a_symbol_query_with_spaces_is_a_request_error(store):
    with pytest.raises(RequestError, match="one name"):
        search_symbols(store, "two names", Filters(), 10)


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    """The same function in source, a test, vendored code and generated code, and a caller."""
    store = Store(tmp_path_factory.mktemp("facets") / "index")
    body = "def read_timeout(conn):\n    return conn.timeout"
    for path, facets in (
        ("net/conn.py", frozenset()),
        ("tests/test_conn.py", frozenset({"test"})),
        ("vendor/net/conn.py", frozenset({"vendored"})),
        ("gen/conn_pb2.py", frozenset({"generated"})),
    ):
        store.write_file(attrs.evolve(_file("r", path, "python", ("read_timeout", body)), facets=facets))
    caller = "def serve(conn):\n    # read_timeout, then read_timeout again\n    return read_timeout(conn) + read_timeout(conn)"
    store.write_file(_file("r", "net/serve.py", "python", ("serve", caller)))
    store.commit()
    return store


def test_source_ranks_above_tests_then_vendored_and_generated_copies(copies):
    paths = [h.path for h in search_lexical(copies, "read_timeout", Filters(), 10) if h.symbol == "read_timeout"]
    assert paths[0] == "net/conn.py" and paths[1] == "tests/test_conn.py"
    assert set(paths[2:]) == {"vendor/net/conn.py", "gen/conn_pb2.py"}


def test_a_definition_ranks_above_a_chunk_that_only_uses_the_name(copies):
    paths = [h.path for h in search_lexical(copies, "read_timeout", Filters(), 10)]
    assert paths.index("net/conn.py") < paths.index("net/serve.py")


def test_hits_show_their_facets(copies):
    facets = {h.path: h.facets for h in search_lexical(copies, "read_timeout", Filters(), 10)}
    assert facets["net/conn.py"] == () and facets["tests/test_conn.py"] == ("test",)


def test_facet_path_language_and_word_filters_include_or_exclude(copies):
    def paths(**filters):
        return {h.path for h in search_lexical(copies, "read_timeout", Filters(**filters), 10)}

    assert paths(facets=("test", "vendored")) == {"tests/test_conn.py", "vendor/net/conn.py"}
    assert paths(facets=("source",)) == {"net/conn.py", "net/serve.py"}
    assert paths(not_facets=("test", "vendored", "generated")) == {"net/conn.py", "net/serve.py"}
    assert paths(not_paths=("vendor/**", "gen/**")) == {"net/conn.py", "net/serve.py", "tests/test_conn.py"}
    assert paths(not_words=("serve",)) == {"net/conn.py", "tests/test_conn.py", "vendor/net/conn.py", "gen/conn_pb2.py"}
    assert paths(not_langs=("python",)) == set() and paths(not_repos=("r",)) == set()


def test_a_hit_explains_its_score_as_the_sum_of_its_parts_times_its_facet_weight(copies):
    hits = search_lexical(copies, "read_timeout", Filters(), 10, explain=True)
    for hit in hits:
        parts = sum(v for k, v in hit.explain.items() if k != "facet")
        assert hit.score == pytest.approx(parts * hit.explain["facet"], rel=1e-3)
    by_path = {h.path: h.explain for h in hits}
    assert by_path["net/conn.py"]["definition"] > 0 and by_path["net/serve.py"]["definition"] == 0
    assert by_path["net/conn.py"]["facet"] == 2.0 and by_path["tests/test_conn.py"]["facet"] == 1.4
    assert search_lexical(copies, "read_timeout", Filters(), 1)[0].explain is None


def test_symbol_tiers_hold_whatever_the_facets(copies):
    hits = search_symbols(copies, "read_timeout", Filters(), 10, explain=True)
    assert all(h.explain["exact"] == 9.0 for h in hits)
    assert [h.path for h in hits][0] == "net/conn.py"


SOURCES = {
    "io/reader.go": "package io\n\ntype Reader struct{ n int }\n\ntype Closer interface{ Close() error }\n\n"
    "func (r *Reader) Read(p []byte) (int, error) { return 0, nil }\n\nfunc NewReader() *Reader { return nil }\n\ntype ID int\n",
    "src/speak.rs": "pub trait Speak { fn speak(&self); }\n\npub struct Reader;\n\nimpl Speak for Reader { fn speak(&self) {} }\n",
    "web/shape.ts": "interface Shape { area(): number }\n\ntype Id = string;\n\nclass Circle implements Shape { area() { return 1 } }\n",
}


@pytest.fixture(scope="module")
def chunked(tmp_path_factory):
    """Real files cut by the real chunker."""
    from codeweir.chunk.chunker import chunk_file, detect_language

    store = Store(tmp_path_factory.mktemp("kinds") / "index")
    for path, text in SOURCES.items():
        chunks = tuple(chunk_file(path, text, detect_language(path)))
        store.write_file(FileRecord("r", path, "b", detect_language(path), chunks, tuple(str(i) for i in range(len(chunks)))))
    store.commit()
    return store


@pytest.mark.parametrize(
    "query, found",
    [
        ("sym:Reader", {("Reader", "struct"), ("Reader", "impl")}),  # Go's and Rust's
        ("sym:Reader kind:struct lang:go", {("Reader", "struct")}),
        ("sym:Closer kind:interface", {("Closer", "interface")}),
        ("sym:Read kind:method", {("Reader.Read", "method")}),
        ("sym:NewReader kind:function", {("NewReader", "function")}),
        ("sym:ID kind:type", {("ID", "type"), ("Id", "type")}),  # names match in any case
        ("sym:ID kind:type -lang:typescript", {("ID", "type")}),
        ("sym:Speak kind:trait", {("Speak", "trait")}),
        ("sym:Shape kind:interface", {("Shape", "interface")}),
        ("sym:Id kind:type lang:typescript", {("Id", "type")}),
        ("sym:Circle kind:class", {("Circle", "class")}),
    ],
)
def test_definitions_by_name_and_kind_through_the_query_language(chunked, query, found):
    parsed = parse_query(query)
    filters = Filters.of(parsed, repo=None, path=None, lang=None, kind=None)
    hits = search_symbols(chunked, parsed.symbol, filters, 10)
    exact = {(h.symbol, h.kind) for h in hits if h.symbol.rsplit(".", 1)[-1].lower() == parsed.symbol.lower()}
    assert exact == found
