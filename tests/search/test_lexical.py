import hashlib

import attrs
import pytest

from codeweir.errors import RequestError
from codeweir.index.store import Store
from codeweir.records import Chunk, FileRecord
from codeweir.search.filters import Filters
from codeweir.search.hits import best_fragment
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
    return FileRecord(
        repo,
        path,
        "blob-" + path,
        language,
        chunks,
        tuple(hashlib.md5(f"{path}{i}".encode()).hexdigest() for i in range(len(defs))),
    )


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
    # Raw source, and where the words matched in it: no markup, no escaping.
    assert hit.snippet == "def parse_duration(value):\n    return value"
    assert [hit.snippet[s:e] for s, e in hit.matches] == ["parse", "duration"]
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


def test_a_hit_explains_its_score_as_the_sum_of_its_parts_times_its_source_weight_squared(copies):
    hits = search_lexical(copies, "read_timeout", Filters(), 10, explain=True)
    for hit in hits:
        parts = sum(v for k, v in hit.explain.items() if k != "facet")
        assert hit.score == pytest.approx(parts * hit.explain["facet"], rel=1e-3)
    by_path = {h.path: h.explain for h in hits}
    assert by_path["net/conn.py"]["definition"] > 0 and by_path["net/serve.py"]["definition"] == 0
    assert by_path["net/conn.py"]["facet"] == 4.0 and by_path["tests/test_conn.py"]["facet"] == 1.96
    assert search_lexical(copies, "read_timeout", Filters(), 1)[0].explain is None


def test_symbol_tiers_hold_whatever_the_facets(copies):
    hits = search_symbols(copies, "read_timeout", Filters(), 10, explain=True)
    assert all(h.explain["name"] == 120.0 for h in hits)
    paths = [h.path for h in hits]
    assert paths[:2] == ["net/conn.py", "tests/test_conn.py"] and set(paths[2:]) == {"gen/conn_pb2.py", "vendor/net/conn.py"}


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
        store.write_file(
            FileRecord("r", path, "b", detect_language(path), chunks, tuple(f"{i:032x}" for i in range(len(chunks))))
        )
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


# -- definitions by name, on real files -----------------------------------------------------------

SAVE_BODY = "".join(
    f"        if update_fields is not None and not update_fields:  # step {i}\n            return\n" for i in range(30)
)
PYTHON = {
    "django/db/models/query.py": '''\
"""The main QuerySet implementation. This provides the public API for the ORM."""

import copy

from django.db.models import sql


class BaseIterable:
    def __init__(self, queryset, chunked_fetch=False, chunk_size=100):
        self.queryset = queryset
        self.chunked_fetch = chunked_fetch


class QuerySet(AltersData):
    """Represent a lazy database lookup for a set of objects."""

    def __init__(self, model=None, query=None, using=None, hints=None):
        self.model = model
        self._db = using
        self._query = query or sql.Query(self.model)

    @property
    def query(self):
        if self._deferred_filter:
            negate, args, kwargs = self._deferred_filter
            self._filter_or_exclude_inplace(negate, args, kwargs)
        return self._query

    def as_manager(cls):
        from django.db.models.manager import Manager

        manager = Manager.from_queryset(cls)()
        manager._built_with_as_manager = True
        return manager

    as_manager.queryset_only = True
    as_manager = classmethod(as_manager)

    def filter(self, *args, **kwargs):
        self._not_support_combined_queries("filter")
        return self._filter_or_exclude(False, args, kwargs)
''',
    "django/db/models/manager.py": """\
from django.db.models.query import QuerySet


class Manager(BaseManager.from_queryset(QuerySet)):
    def get_queryset(self):
        return self._queryset_class(model=self.model, using=self._db, hints=self._hints)
""",
    "django/contrib/admin/filters.py": '''\
class ListFilter:
    title = None

    def queryset(self, request, queryset):
        """Return the filtered queryset."""
        raise NotImplementedError("subclasses of ListFilter must provide a queryset() method")
''',
    "django/contrib/postgres/fields/array.py": """\
class ArrayField(CheckFieldDefaultMixin, Field):
    empty_strings_allowed = False

    @property
    def model(self):
        try:
            return self.__dict__["model"]
        except KeyError:
            raise AttributeError("'%s' object has no attribute 'model'" % self.__class__.__name__)

    @model.setter
    def model(self, model):
        self.__dict__["model"] = model
        self.base_field.model = model
""",
    "django/db/backends/utils.py": """\
class CursorWrapper:
    def __init__(self, cursor, db):
        self.cursor = cursor
        self.db = db

    def query(self, sql, params=None):
        with self.db.wrap_database_errors:
            return self.cursor.execute(sql, params)
""",
    "django/db/models/base.py": f'''\
class ModelBase(type):
    """Metaclass for all models."""


class Model(AltersData, metaclass=ModelBase):
    def __init__(self, *args, **kwargs):
        self._state = ModelState()

    def _get_pk_val(self, meta=None):
        meta = meta or self._meta
        return getattr(self, meta.pk.attname)

    pk = property(_get_pk_val)

    def save(self, force_insert=False, force_update=False, using=None, update_fields=None):
        self._prepare_related_fields_for_save(operation_name="save")
{SAVE_BODY}        self.save_base(using=using, force_insert=force_insert, update_fields=update_fields)

    save.alters_data = True
''',
    "django/db/models/sql/query.py": '''\
class Query(BaseExpression):
    """A single SQL query."""

    def join(self, join, reuse=None):
        """Return an alias for the join in `join`, reusing one of `reuse` if it is equal."""
        reuse_aliases = [a for a, j in self.alias_map.items() if (reuse is None or a in reuse) and j == join]
        if reuse_aliases:
            return reuse_aliases[-1]
        alias, _ = self.table_alias(join.table_name, create=True)
        return alias


class JoinPromoter:
    def add_votes(self, votes):
        self.votes.update(votes)
''',
    "tests/queryset_pickle/tests.py": '''\
class QuerySet:
    """A stand-in with the name of the real one, to check pickling does not mistake it."""

    def __reduce__(self):
        return (QuerySet, ())
''',
}
GO = {
    "bufio/bufio.go": """\
// Package bufio implements buffered I/O.
package bufio

// Reader implements buffering for an io.Reader object.
type Reader struct {
	buf []byte
	rd  io.Reader
}

// NewReaderSize returns a new Reader whose buffer has at least the specified size.
func NewReaderSize(rd io.Reader, size int) *Reader {
	r := new(Reader)
	r.reset(make([]byte, size), rd)
	return r
}

// NewReader returns a new Reader whose buffer has the default size.
func NewReader(rd io.Reader) *Reader {
	return NewReaderSize(rd, defaultBufSize)
}

// ReadString reads until the first occurrence of delim in the input.
func (b *Reader) ReadString(delim byte) (string, error) {
	full, frag, n, err := b.collectFragments(delim)
	return string(full) + string(frag), err
}
""",
    "bytes/buffer.go": """\
package bytes

// ReadString reads until the first occurrence of delim in the input.
func (b *Buffer) ReadString(delim byte) (line string, err error) {
	slice, err := b.readSlice(delim)
	return string(slice), err
}
""",
    "strings/reader.go": """\
package strings

// A Reader implements the io.Reader interface by reading from a string.
type Reader struct {
	s string
	i int64
}

// NewReader returns a new Reader reading from s.
func NewReader(s string) *Reader { return &Reader{s, 0} }
""",
    "internal/pkgbits/decoder.go": """\
package pkgbits

type pkgReader struct {
	PkgDecoder
}

// NewReader returns a decoder of the export data in input.
func NewReader(input string) PkgDecoder {
	return PkgDecoder{data: input}
}

func (pr *pkgReader) newReader(k RelocKind, idx Index, marker SyncMarker) *reader {
	return &reader{Decoder: pr.NewDecoder(k, idx, marker), p: pr}
}
""",
    "cmd/internal/bio/buf.go": """\
package bio

// NewReader returns a Reader for the file f.
func NewReader(f *os.File) *Reader {
	return &Reader{f: f, Reader: bufio.NewReader(f)}
}
""",
    "net/http/request.go": """\
package http

func ReadRequest(b *bufio.Reader) (*Request, error) {
	tp := textproto.NewReader(b)
	return readRequest(b, tp)
}

func readBody(r io.Reader) *bufio.Reader {
	return bufio.NewReader(io.LimitReader(r, maxPostHandlerReadBytes))
}
""",
    "bufio/example_test.go": """\
package bufio_test

func ExampleReader() {
	r := bufio.NewReader(strings.NewReader("hello\\n"))
	line, _ := r.ReadString('\\n')
	fmt.Print(line)
}
""",
}


def write_corpus(store: Store, files: dict[str, str]) -> None:
    from codeweir.chunk.chunker import chunk_file, detect_language
    from codeweir.facets import classify

    for path, text in files.items():
        language = detect_language(path)
        repo = "go" if language == "go" else "django"
        chunks = tuple(chunk_file(path, text, language))
        hashes = tuple(hashlib.md5(f"{path}{i}".encode()).hexdigest() for i in range(len(chunks)))
        store.write_file(FileRecord(repo, path, "b", language, chunks, hashes, facets=classify(path, text)))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("corpus") / "index")
    write_corpus(store, PYTHON | GO)
    store.commit()
    return store


def found(store, query: str, limit: int = 10) -> list[tuple[str, str]]:
    parsed = parse_query(query)
    filters = Filters.of(parsed, repo=None, path=None, lang=None, kind=None)
    return [(h.path, h.symbol) for h in search_symbols(store, parsed.symbol, filters, limit)]


def test_exact_case_names_rank_before_case_different_ones(corpus):
    assert found(corpus, "sym:QuerySet")[:2] == [
        ("django/db/models/query.py", "QuerySet"),
        ("tests/queryset_pickle/tests.py", "QuerySet"),
    ]
    assert ("django/contrib/admin/filters.py", "ListFilter.queryset") in found(corpus, "sym:QuerySet")[2:]
    assert found(corpus, "sym:Model")[0] == ("django/db/models/base.py", "Model")
    newreader = found(corpus, "sym:NewReader")
    assert newreader.index(("internal/pkgbits/decoder.go", "pkgReader.newReader")) > max(
        i for i, (_, symbol) in enumerate(newreader) if symbol == "NewReader"
    )


def test_a_definition_ranks_before_an_attribute_of_the_same_name(corpus):
    assert found(corpus, "sym:query")[:2] == [
        ("django/db/backends/utils.py", "CursorWrapper.query"),
        ("django/db/models/query.py", "QuerySet.query"),  # a property
    ]


def test_one_hit_per_definition_whose_class_or_body_is_cut_into_pieces(corpus):
    assert [s for _, s in found(corpus, "sym:Model kind:class")].count("Model") == 1
    assert [s for _, s in found(corpus, "sym:save path:django/db/models/base.py")] == ["Model.save"]
    assert [s for _, s in found(corpus, "sym:as_manager")] == ["QuerySet.as_manager"]


def test_public_before_internal_and_source_before_tool_code_and_the_most_referenced_first(corpus):
    assert found(corpus, "sym:NewReader")[:5] == [
        ("bufio/bufio.go", "NewReader"),  # `bufio.NewReader` is named most
        ("strings/reader.go", "NewReader"),
        ("internal/pkgbits/decoder.go", "NewReader"),  # exported from an internal package
        ("cmd/internal/bio/buf.go", "NewReader"),  # internal, and tool code
        ("internal/pkgbits/decoder.go", "pkgReader.newReader"),  # another case, and unexported
    ]
    assert found(corpus, "sym:NewReader")[5] == ("bufio/bufio.go", "NewReaderSize")  # then prefixes


class SearchSpy:
    """The store's searcher, recording the query of each search (each gives the GIL up and, in a
    busy daemon, waits a switch interval to have it back) with whether it only counted."""

    def __init__(self, searcher):
        self.searcher = searcher
        self.searches: list[tuple[str, bool]] = []

    def search(self, query, **kwargs):
        self.searches.append((repr(query), bool(kwargs.get("count")) and kwargs.get("limit") == 1))
        return self.searcher.search(query, **kwargs)

    def __getattr__(self, name):
        return getattr(self.searcher, name)


def spied(store, monkeypatch) -> SearchSpy:
    spy = SearchSpy(store.searcher())
    monkeypatch.setattr(store, "searcher", lambda: spy)
    return spy


def test_a_name_is_counted_once_for_all_its_definitions_and_each_qualified_form_once(corpus, monkeypatch):
    spy = spied(corpus, monkeypatch)
    assert found(corpus, "sym:NewReader")[:2] == [("bufio/bufio.go", "NewReader"), ("strings/reader.go", "NewReader")]
    counts = [query for query, counted in spy.searches if counted]
    assert len(counts) == len(set(counts))  # four definitions named NewReader: one count of the name
    assert sum(c.startswith("Query(TermQuery") and '"newreader"' in c for c in counts) == 1


def test_a_lexical_search_without_ties_at_its_cut_is_one_search(corpus, monkeypatch):
    spy = spied(corpus, monkeypatch)
    hits = search_lexical(corpus, "NewReader", Filters(), 2)
    assert len(hits) == 2 and len(spy.searches) == 1


def test_equals_are_ordered_by_path_whatever_the_order_they_were_indexed_in(tmp_path):
    orders = []
    for name, files in (("a", GO), ("b", dict(reversed(GO.items())))):
        store = Store(tmp_path / name)
        for path, text in files.items():
            write_corpus(store, {path: text})
            store.commit()  # a segment each: Tantivy's document order differs
        orders.append(found(store, "sym:ReadString"))
    assert orders[0] == orders[1] == [("bufio/bufio.go", "Reader.ReadString"), ("bytes/buffer.go", "Buffer.ReadString")]


@pytest.mark.parametrize(
    "query, first",
    [
        ("sym:Query.join", ("django/db/models/sql/query.py", "Query.join")),
        ("sym:QuerySet.query", ("django/db/models/query.py", "QuerySet.query")),
        ("sym:models.QuerySet", ("django/db/models/query.py", "QuerySet")),  # module path, parts between
        ("sym:django.db.models.query.QuerySet", ("django/db/models/query.py", "QuerySet")),
        ("sym:bufio.NewReader", ("bufio/bufio.go", "NewReader")),
        ("sym:strings.NewReader", ("strings/reader.go", "NewReader")),
        ("sym:pkgbits.newReader", ("internal/pkgbits/decoder.go", "pkgReader.newReader")),
        ("sym:internal/pkgbits.NewReader", ("internal/pkgbits/decoder.go", "NewReader")),
        ("sym:bufio.Reader.ReadString", ("bufio/bufio.go", "Reader.ReadString")),
    ],
)
def test_qualified_names_find_a_method_by_its_class_and_a_name_by_its_package_or_module(corpus, query, first):
    hits = found(corpus, query)
    assert hits[0] == first
    name = query.rsplit(".", 1)[-1].lower()
    assert all(not s.lower().endswith(name) or p == first[0] for p, s in hits)  # same names elsewhere: not found


def test_a_qualified_name_whose_qualifier_matches_nothing_finds_nothing(corpus):
    assert found(corpus, "sym:bytes.NewReader") == []
    assert found(corpus, "sym:ListFilter.join") == []


def test_a_symbol_hit_shows_its_definition_line_with_the_name_marked(corpus):
    hit = search_symbols(corpus, "NewReader", Filters(path="bufio/*"), 1)[0]
    assert hit.snippet.startswith("func NewReader(rd io.Reader) *Reader {")  # below its doc comment
    assert [hit.snippet[s:e] for s, e in hit.matches] == ["NewReader"]


def test_a_symbol_hit_explains_its_score_as_the_sum_of_its_parts(corpus):
    hits = search_symbols(corpus, "NewReader", Filters(), 10, explain=True)
    for hit in hits:
        assert hit.score == pytest.approx(sum(v for k, v in hit.explain.items() if k != "referenced_by"), abs=1e-3)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert hits[0].explain["referenced_by"] > hits[1].explain["referenced_by"]


AUTODETECTOR = {
    "django/db/migrations/autodetector.py": '''\
class MigrationAutodetector:
    def create_renamed_fields(self):
        """Work out renamed fields."""
        self.renamed_operations = []
        old_field_keys = self.old_field_keys.copy()
        for app_label, model_name, field_name in sorted(self.new_field_keys - old_field_keys):
            field = self.to_state.models[app_label, model_name].get_field(field_name)
            # Scan to see if this is actually a rename!
            field_dec = self.deep_deconstruct(field)
            for rem_app_label, rem_model_name, rem_field_name in sorted(old_field_keys - self.new_field_keys):
                if rem_app_label == app_label and rem_model_name == model_name:
                    self.add_operation(app_label, operations.RenameField(model_name, rem_field_name, field_name))
''',
    "tests/migrations/test_autodetector.py": '''\
class AutodetectorTests(BaseAutodetectorTests):
    def test_rename_field(self):
        """Tests autodetection of a field rename."""
        changes = self.get_changes([self.author_name], [self.author_name_renamed], MigrationQuestioner({"ask_rename": True}))
        self.assertNumberMigrations(changes, "testapp", 1)
        self.assertOperationTypes(changes, "testapp", 0, ["RenameField"])
        self.assertOperationAttributes(changes, "testapp", 0, 0, old_name="name", new_name="names")
''',
}


def test_source_outranks_a_test_whose_name_spells_out_the_query(tmp_path):
    store = Store(tmp_path / "index")
    write_corpus(store, PYTHON | AUTODETECTOR)
    store.commit()
    hits = search_lexical(store, "autodetector rename field", Filters(), 10, explain=True)
    assert hits[0].path == "django/db/migrations/autodetector.py"
    source, test = hits[0].explain, next(h.explain for h in hits if h.facets == ("test",))
    # Why the facet weight alone (2 against 1.4) fell short: the test's name and body spell out
    # the words (its name's subwords give it a definition part), while the source's
    # `create_renamed_fields` has only `renamed` and `fields`: the test's parts sum to half again
    # the source's, more than 2 / 1.4 gives back; squared (4 against 1.96), it does.
    words = {name: sum(v for k, v in parts.items() if k != "facet") for name, parts in (("source", source), ("test", test))}
    assert words["test"] / words["source"] > 2.0 / 1.4
    assert (source["facet"], test["facet"]) == (4.0, 1.96)


def test_tool_code_ranks_below_the_library_it_serves(corpus):
    hits = search_lexical(corpus, "NewReader", Filters(lang="go"), 10, explain=True)
    factors = {h.path: h.explain["facet"] for h in hits}
    assert factors["bufio/bufio.go"] == 4.0 and factors["cmd/internal/bio/buf.go"] == pytest.approx(2.56)


def test_a_piece_of_a_long_definition_gets_no_definition_part(tmp_path):
    body = "".join(f"        self.assertOperationTypes(changes, 'testapp', {i}, ['RenameField'])\n" for i in range(60))
    text = f"class AutodetectorTests(TestCase):\n    def test_rename_field(self):\n{body}"
    store = Store(tmp_path / "index")
    write_corpus(store, {"tests/migrations/test_autodetector.py": text})
    store.commit()
    hits = search_lexical(store, "rename field", Filters(), 10, explain=True)
    assert len(hits) > 1
    assert [h.explain["definition"] > 0 for h in sorted(hits, key=lambda h: h.start_line)] == [True] + [False] * (len(hits) - 1)


def test_a_snippet_is_the_fragment_whose_matched_subwords_weigh_most_the_first_of_equals():
    text = "alpha beta gamma delta alpha epsilon beta zeta"
    assert best_fragment(text, {"beta": 1.0}, 12) == ("alpha beta", ((6, 10),))
    assert best_fragment(text, {"epsilon": 0.5, "zeta": 0.4}, 12) == ("epsilon beta", ((0, 7),))
    assert best_fragment(text, {"beta": 0.5, "zeta": 0.4, "epsilon": 0.5}, 20) == ("beta zeta", ((0, 4), (5, 9)))
    assert best_fragment("parseDuration(x)", {"duration": 1.0}, 240) == ("parseDuration(x", ((5, 13),))
    assert best_fragment(text, {"omega": 1.0}, 12) == ("", ())
