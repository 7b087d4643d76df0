import hashlib

import pytest

from codeweir.index.store import Store
from codeweir.protocol_results import SearchHit
from codeweir.records import Chunk, FileRecord
from codeweir.search.filters import Filters
from codeweir.search.semantic import search_definitions


def _hit(path: str) -> SearchHit:
    return SearchHit(
        repo="r", path=path, start_line=1, end_line=2, kind="function", language="python", score=0.0, snippet="", blob="b"
    )


def _paths(hits: list[SearchHit]) -> list[str]:
    return [h.path for h in hits]


def _record(path: str, language: str, *defs: tuple[str, str]) -> FileRecord:
    chunks = tuple(
        Chunk(i * 10 + 1, i * 10 + 3, 0, len(body), name.rsplit(".", 1)[-1], "method", name, body)
        for i, (name, body) in enumerate(defs)
    )
    return FileRecord(
        "repo",
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
