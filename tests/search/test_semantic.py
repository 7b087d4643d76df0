import pytest
from hypothesis import given
from hypothesis import strategies as st

from codeweir.index.store import Store
from codeweir.protocol import SearchHit
from codeweir.records import Chunk, FileRecord
from codeweir.search.lexical import Filters
from codeweir.search.semantic import fuse_hybrid, reciprocal_rank_fusion, search_definitions


def _hit(path: str) -> SearchHit:
    return SearchHit(
        repo="r", path=path, start_line=1, end_line=2, kind="function", language="python", score=0.0, snippet="", blob="b"
    )


def _paths(hits: list[SearchHit]) -> list[str]:
    return [h.path for h in hits]


def test_a_lighter_ranking_sways_the_fused_order_less():
    heavy, light = [_hit("a"), _hit("b")], [_hit("b"), _hit("a")]
    assert _paths(reciprocal_rank_fusion([heavy, light], 2, k=5, weights=(1.0, 0.5))) == ["a", "b"]
    assert _paths(reciprocal_rank_fusion([heavy, light], 2, k=5, weights=(0.5, 1.0))) == ["b", "a"]


def test_rankings_and_weights_must_pair_up():
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([[_hit("a")], [_hit("b")]], 2, weights=(1.0,))


@given(st.lists(st.lists(st.sampled_from("abcdefgh"), unique=True, max_size=6), min_size=1, max_size=3))
def test_fusion_lists_each_hit_once_best_first(rankings):
    fused = fuse_hybrid(*([[_hit(p) for p in r] for r in rankings] + [[]] * (3 - len(rankings))), limit=20)
    assert sorted(_paths(fused)) == sorted({p for r in rankings for p in r})
    assert [h.score for h in fused] == sorted((h.score for h in fused), reverse=True)


def test_a_hit_first_in_two_rankings_leads_the_hybrid_order():
    fused = fuse_hybrid([_hit("lexical"), _hit("both")], [_hit("both"), _hit("semantic")], [], limit=3)
    assert _paths(fused)[0] == "both"


def _record(path: str, language: str, *defs: tuple[str, str]) -> FileRecord:
    chunks = tuple(
        Chunk(i * 10 + 1, i * 10 + 3, 0, len(body), name.rsplit(".", 1)[-1], "method", name, body)
        for i, (name, body) in enumerate(defs)
    )
    return FileRecord("repo", path, "blob-" + path, language, chunks, tuple(f"{path}{i}" for i in range(len(defs))))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("idx") / "index")
    store.write_file(
        _record(
            "db/base.py",
            "python",
            ("Wrapper.close", "def close(self):\n    self.connection.close()"),
            ("Wrapper.close_if_unusable", "def close_if_unusable(self):\n    pass"),
            ("Wrapper.cursor", "def cursor(self):\n    return self._cursor()"),
        )
    )
    store.write_file(_record("net/conn.go", "go", ("Conn.CloseConnection", "func (c *Conn) CloseConnection() error {}")))
    store.write_file(_record("db/util.py", "python", ("format_number", "def format_number(value):\n    return value")))
    store.commit()
    return store


def test_definitions_named_with_the_query_words_come_first(store):
    hits = search_definitions(store, "Close the connection to the database", Filters(), 10)
    assert _paths(hits)[0] == "net/conn.go"  # its name has both words: close, connection
    assert {h.symbol for h in hits} == {"Conn.CloseConnection", "Wrapper.close", "Wrapper.close_if_unusable"}


def test_definitions_obey_the_filters(store):
    hits = search_definitions(store, "close connection", Filters(lang="python"), 10)
    assert {h.symbol for h in hits} == {"Wrapper.close", "Wrapper.close_if_unusable"}


def test_a_query_without_words_names_no_definitions(store):
    assert search_definitions(store, "!= ()", Filters(), 10) == []
