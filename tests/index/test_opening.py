"""Opening the index: the rebuild of an index of other versions, a swap or rebuild a crash cut
short, an index this code cannot read, and a damaged one set aside."""

import json

import pytest
import tantivy

from codeweir.errors import StoreError
from codeweir.index.disk import META_FILE
from codeweir.index.store import Store
from tests.index.test_store import record, written_index
from tests.index_reading import chunks_of


def old_versions_index(directory) -> None:
    """An index with a.py, recorded as written by an older schema and chunker."""
    store = Store(directory)
    store.write_file(record("a.py", "b1", "x = 1"))
    store.commit()
    store.close()
    (directory / META_FILE).write_text(json.dumps({"schema": 0, "chunker": 0}))


def test_an_index_of_other_versions_is_rebuilt_beside_it_while_searches_read_the_old_one(tmp_path):
    old_versions_index(tmp_path / "index")
    store = Store(tmp_path / "index")
    assert store.rebuilding
    assert store.file_blobs("r") == {}  # the planner sees the rebuild: every file is indexed again
    store.write_file(record("b.py", "b2", "y = 2"))
    store.commit()
    assert [c.content for c in chunks_of(store, "r", "a.py")] == ["x = 1"]
    assert chunks_of(store, "r", "b.py") == []
    store.finish_rebuild()
    assert not store.rebuilding
    assert chunks_of(store, "r", "a.py") == []
    assert [c.content for c in chunks_of(store, "r", "b.py")] == ["y = 2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]
    store.close()
    again = Store(tmp_path / "index")
    assert not again.rebuilding and again.file_blobs("r") == {"b.py": "b2"}


def rebuild_in_part(directory) -> None:
    """An index of older versions, and its rebuild with b.py committed, cut short."""
    old_versions_index(directory)
    store = Store(directory)
    store.write_file(record("b.py", "b2", "y = 2"))
    store.commit()
    store.close()


def test_a_rebuild_cut_short_resumes_with_what_it_had_committed(tmp_path):
    rebuild_in_part(tmp_path / "index")
    again = Store(tmp_path / "index")
    assert again.rebuilding and again.file_blobs("r") == {"b.py": "b2"}
    assert [c.content for c in chunks_of(again, "r", "a.py")] == ["x = 1"]


def test_a_swap_cut_short_between_its_renames_is_completed_at_open(tmp_path):
    rebuild_in_part(tmp_path / "index")
    (tmp_path / "index").rename(tmp_path / "index.old")  # the first rename of finish_rebuild
    again = Store(tmp_path / "index")
    assert not again.rebuilding
    assert again.file_blobs("r") == {"b.py": "b2"}
    assert [c.content for c in chunks_of(again, "r", "b.py")] == ["y = 2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]


def test_an_index_of_a_schema_this_code_cannot_read_is_rebuilt_from_empty(tmp_path):
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("title", stored=True)
    (tmp_path / "index").mkdir()
    foreign = tantivy.Index(builder.build(), path=str(tmp_path / "index"))
    writer = foreign.writer(15_000_000, 1)
    writer.add_document(tantivy.Document(title="old"))
    writer.commit()
    writer.wait_merging_threads()
    store = Store(tmp_path / "index")
    assert store.rebuilding and store.count(("doc_kind", "file")) == 0
    store.write_file(record("b.py", "b2", "y = 2"))
    store.commit()
    assert store.count(("doc_kind", "file")) == 1  # searches follow the rebuild as it grows
    store.finish_rebuild()
    assert Store(tmp_path / "index").file_blobs("r") == {"b.py": "b2"}


def test_an_unusable_index_directory_is_a_store_error(tmp_path):
    (tmp_path / "index").write_text("not a directory")
    with pytest.raises(StoreError, match="cannot open the index"):
        Store(tmp_path / "index")


def test_an_index_tantivy_cannot_open_is_moved_aside_and_a_new_one_opened_keeping_only_the_latest(tmp_path, caplog):
    for _ in range(2):
        written_index(tmp_path / "index")
        next((tmp_path / "index").glob("*.term")).unlink()
        store = Store(tmp_path / "index")
        assert store.file_blobs("r") == {} and not store.rebuilding
        assert store.damage.startswith("found damaged at start") and "moved to" in store.damage
        store.close()
    assert len(list(tmp_path.glob("index.damaged-*"))) == 1
    assert "is damaged" in caplog.text
