"""Filters, and the views a search sees: a real Tantivy index holding one repository on its main
view and two refs, whose file versions are written once each (Store.write_file with the views
holding them), searched by every chunk search with and without `ref:`."""

import hashlib

import numpy as np
import pytest

from codeweir.errors import RequestError
from codeweir.index.membership import MAIN
from codeweir.index.store import Store
from codeweir.index.vectors import VectorStore
from codeweir.records import Chunk, FileRecord
from codeweir.search.filters import EXACT_CANDIDATES, Filters, visible
from codeweir.search.lexical import search_lexical, search_symbols
from codeweir.search.query import parse_query
from codeweir.search.references import find_references
from codeweir.search.regex import search_regex
from codeweir.search.semantic import search_definitions, search_semantic

DIM = 8


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def record(repo: str, path: str, blob: str, body: str, symbol: str = "") -> FileRecord:
    chunk = Chunk(1, body.count("\n") + 1, 0, len(body), symbol, "function" if symbol else "text", symbol, body)
    return FileRecord(repo, path, blob, "python", (chunk,), (content_hash(body),))


# (path, blob, content, the views holding it)
VERSIONS = [
    ("clock.py", "clock-main", "def parse_duration(text):\n    return 'main'\n", (MAIN,)),
    ("clock.py", "clock-v1", "def parse_duration(text):\n    return 'v1'\n", ("v1",)),
    ("clock.py", "clock-v2", "def parse_duration(text):\n    return 'v2'\n", ("v2",)),
    ("shared.py", "shared", "def parse_duration_everywhere(text):\n    return parse_duration(text)\n", (MAIN, "v1", "v2")),
    ("legacy.py", "legacy", "def parse_duration_legacy(text):\n    return parse_duration(text)\n", ("v1",)),
    ("modern.py", "modern", "def parse_duration_modern(text):\n    return parse_duration(text)\n", (MAIN,)),
]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("views") / "index")
    for path, blob, body, views in VERSIONS:
        store.write_file(record("app", path, blob, body, body.split("(")[0].removeprefix("def ")), views=views)
    store.write_file(record("lib", "clock.py", "lib-clock", "def parse_duration(text):\n    return 'lib'\n", "parse_duration"))
    store.commit()
    return store


def versions(hits) -> set[tuple[str, str, str]]:
    return {(h.repo, h.path, h.blob) for h in hits}


MAIN_VIEW = {
    ("app", "clock.py", "clock-main"),
    ("app", "shared.py", "shared"),
    ("app", "modern.py", "modern"),
    ("lib", "clock.py", "lib-clock"),
}
V1_VIEW = {("app", "clock.py", "clock-v1"), ("app", "shared.py", "shared"), ("app", "legacy.py", "legacy")}


def test_ref_params_and_query_refs_merge_like_repo():
    query = parse_query("parse ref:v1 ref:v2 ref:v1")
    assert Filters.of(query, repo=None, path=None, lang=None, kind=None).refs == ("v1", "v2")
    assert Filters.of(parse_query("parse"), repo=None, path=None, lang=None, kind=None, refs=("v1",)).refs == ("v1",)
    assert Filters.of(query, repo=None, path=None, lang=None, kind=None, refs=("v2", "v1")).refs == ("v1", "v2")
    with pytest.raises(RequestError, match="ref: the request says \\['v2'\\] and the query says ref:v1 ref:v2 ref:v1"):
        Filters.of(query, repo=None, path=None, lang=None, kind=None, refs=("v2",))


def test_without_ref_a_search_sees_each_main_view_version_once(store):
    hits = search_lexical(store, "parse duration", Filters(), 50)
    assert versions(hits) == MAIN_VIEW
    assert len(hits) == len(MAIN_VIEW)  # the version every view holds is one document, one hit


def test_a_ref_sees_that_refs_versions_and_no_repository_without_it(store):
    assert versions(search_lexical(store, "parse duration", Filters(refs=("v1",)), 50)) == V1_VIEW
    assert search_lexical(store, "parse duration", Filters(repo="lib", refs=("v1",)), 50) == []
    assert search_lexical(store, "parse duration", Filters(refs=("nowhere",)), 50) == []


def test_several_refs_see_the_versions_of_any_of_them_each_once(store):
    hits = search_lexical(store, "parse duration", Filters(refs=("v1", "v2")), 50)
    assert versions(hits) == V1_VIEW | {("app", "clock.py", "clock-v2")}
    assert len(hits) == 4


def test_the_top_k_is_never_short_of_hits_a_hidden_version_would_have_taken(store):
    """A hidden version is left out by the query itself, not after its top-k."""
    for limit in range(1, len(MAIN_VIEW) + 1):
        hits = search_lexical(store, "parse duration", Filters(), limit)
        assert len(hits) == limit and versions(hits) <= MAIN_VIEW


@pytest.mark.parametrize(
    "search",
    [
        pytest.param(lambda store, f: search_lexical(store, "parse_duration", f, 50), id="lexical"),
        pytest.param(lambda store, f: search_symbols(store, "parse_duration", f, 50), id="symbol"),
        pytest.param(
            lambda store, f: search_regex(store, ["parse_duration"], f, 50, case_sensitive=True).hits, id="exact literal"
        ),
        pytest.param(lambda store, f: search_regex(store, [r"return '\w+'"], f, 50, case_sensitive=True).hits, id="regex"),
        pytest.param(lambda store, f: search_definitions(store, "parse duration", f, 50), id="definitions"),
    ],
)
def test_every_chunk_search_sees_only_the_versions_of_the_views_searched(store, search):
    for refs, view in (((), MAIN_VIEW), (("v1",), V1_VIEW)):
        found = versions(search(store, Filters(refs=refs)))
        assert found and found <= view, (refs, found - view)


def test_exact_matches_on_two_versions_of_a_file_are_a_hit_each(store):
    hits = search_regex(store, [r"return '\w+'"], Filters(repo="app", refs=("v1", "v2")), 50, case_sensitive=True).hits
    assert sorted((h.path, h.line, h.snippet.strip()) for h in hits) == [
        ("clock.py", 2, "return 'v1'"),
        ("clock.py", 2, "return 'v2'"),
    ]


def test_references_count_each_use_once_on_the_views_searched(store):
    main = find_references(store, "parse_duration", Filters(repo="app"))
    assert {(o.path, o.blob) for o in main.occurrences} == {("shared.py", "shared"), ("modern.py", "modern")}
    assert [(d.path, d.line) for d in main.definitions] == [("clock.py", 1)]
    v1 = find_references(store, "parse_duration", Filters(repo="app", refs=("v1",)))
    assert {(o.path, o.blob) for o in v1.occurrences} == {("shared.py", "shared"), ("legacy.py", "legacy")}


def test_the_visibility_is_computed_once_and_kept(store):
    filters = visible(store, Filters(refs=("v1",)))
    assert filters.visibility is not None and filters.visibility.repos_without == ("lib",)
    assert visible(store, filters) is filters


# -- a chunk several versions of a file share ------------------------------------------------------

HELPER = "def parse_helper(text):\n    return text.strip()\n"
PREAMBLE = "import os\n\n\n"


@pytest.fixture(scope="module")
def moved(tmp_path_factory):
    """helper.py's function at lines 1-2 on the release ref and, below a new preamble, at lines
    5-6 in the worktree: one chunk document, at the lines of the version written first."""
    store = Store(tmp_path_factory.mktemp("moved") / "index")
    release = FileRecord(
        "app", "helper.py", "helper-release", "python", (Chunk(1, 2, 0, len(HELPER), "parse_helper", "function", "parse_helper", HELPER),),
        (content_hash(HELPER),),
    )  # fmt: skip
    main = FileRecord(
        "app", "helper.py", "helper-main", "python",
        (
            Chunk(1, 3, 0, len(PREAMBLE), "", "text", "", PREAMBLE),
            Chunk(5, 6, len(PREAMBLE), len(PREAMBLE) + len(HELPER), "parse_helper", "function", "parse_helper", HELPER),
        ),
        (content_hash(PREAMBLE), content_hash(HELPER)),
    )  # fmt: skip
    store.write_file(release, views=("release",))
    store.write_file(main, views=(MAIN,))
    store.commit()
    return store


@pytest.mark.parametrize(
    "search",
    [
        pytest.param(lambda store, f: search_lexical(store, "parse helper", f, 10), id="lexical"),
        pytest.param(lambda store, f: search_symbols(store, "parse_helper", f, 10), id="symbol"),
        pytest.param(lambda store, f: search_regex(store, [r"text\.strip"], f, 10, case_sensitive=True).hits, id="regex"),
        pytest.param(lambda store, f: search_definitions(store, "parse helper", f, 10), id="definitions"),
    ],
)
def test_a_chunk_two_versions_share_is_one_hit_at_its_lines_in_the_version_seen(moved, search):
    (main,) = search(moved, Filters())
    assert (main.blob, main.start_line, main.end_line) == ("helper-main", 5, 6)
    (release,) = search(moved, Filters(refs=("release",)))
    assert (release.blob, release.start_line, release.end_line) == ("helper-release", 1, 2)


def test_an_exact_match_in_a_shared_chunk_is_on_its_line_in_the_version_seen(moved):
    (main,) = search_regex(moved, [r"text\.strip"], Filters(), 10, case_sensitive=True).hits
    (release,) = search_regex(moved, [r"text\.strip"], Filters(refs=("release",)), 10, case_sensitive=True).hits
    assert (main.line, release.line) == (6, 2)


# -- semantic: the exact-candidate path and the nearest-neighbour path ----------------------------

BODIES = sorted({body for _, _, body, _ in VERSIONS} | {"def parse_duration(text):\n    return 'lib'\n"})


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture(scope="module")
def vectors(tmp_path_factory, store):
    vectors = VectorStore(tmp_path_factory.mktemp("vectors"), "m", DIM)
    vectors.add([content_hash(b) for b in BODIES], np.stack([unit(i) for i in range(len(BODIES))]))
    return vectors


@pytest.mark.parametrize(
    "refs, seen",
    [
        ((), {("app", "clock.py", "clock-main"), ("app", "shared.py", "shared"), ("app", "modern.py", "modern")}),
        (("v2",), {("app", "clock.py", "clock-v2"), ("app", "shared.py", "shared")}),
    ],
)
def test_semantic_search_scores_only_the_versions_of_the_views_searched(store, vectors, refs, seen):
    """Few candidates: scored exactly, and a hidden version's vector is never among them, even
    the one nearest the query."""
    nearest_hidden = unit(BODIES.index("def parse_duration(text):\n    return 'v1'\n"))
    assert versions(search_semantic(store, vectors, nearest_hidden, Filters(repo="app", refs=refs), 10)) == seen


@pytest.fixture(scope="module")
def crowded(tmp_path_factory):
    """More chunks on every view than are scored exactly as candidates, so semantic search asks
    the vector store for the nearest neighbours of all and widens the search past the hidden
    versions."""
    store = Store(tmp_path_factory.mktemp("crowded") / "index")
    chunks = tuple(Chunk(i + 1, i + 1, 0, 5, "", "text", "", f"row {i}") for i in range(EXACT_CANDIDATES + 1))
    hashes = tuple(content_hash(c.content) for c in chunks)
    store.write_file(FileRecord("app", "rows.txt", "rows", "text", chunks, hashes), views=(MAIN, "v1", "v2"))
    for path, blob, body, views in VERSIONS:
        store.write_file(record("app", path, blob, body), views=views)
    store.commit()
    vectors = VectorStore(tmp_path_factory.mktemp("crowded-vectors"), "m", DIM)
    rows = np.stack([unit(1000 + i) for i in range(len(chunks))])
    rows[:, 0] = -np.abs(rows[:, 0]) - 2  # far from the query, which points along the first axis
    vectors.add(list(hashes), rows / np.linalg.norm(rows, axis=1, keepdims=True))
    near = {"v1": 0.99, "v2": 0.98, "main": 0.9}  # clock.py's versions: the main view's is the farthest
    close = np.zeros((len(near), DIM), dtype=np.float32)
    close[:, 0] = list(near.values())
    close[:, 1] = np.sqrt(1 - close[:, 0] ** 2)
    vectors.add([content_hash(f"def parse_duration(text):\n    return '{name}'\n") for name in near], close)
    return store, vectors


def test_semantic_search_through_the_nearest_neighbours_widens_past_hidden_versions(crowded):
    store, vectors = crowded
    query = np.zeros(DIM, dtype=np.float32)
    query[0] = 1.0
    assert versions(search_semantic(store, vectors, query, Filters(), 1)) == {("app", "clock.py", "clock-main")}
    assert versions(search_semantic(store, vectors, query, Filters(refs=("v2",)), 1)) == {("app", "clock.py", "clock-v2")}
    assert versions(search_semantic(store, vectors, query, Filters(refs=("v1", "v2")), 2)) == {
        ("app", "clock.py", "clock-v1"),
        ("app", "clock.py", "clock-v2"),
    }
