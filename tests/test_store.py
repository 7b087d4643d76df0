import json

import pytest

from codeweir.chunk import Chunk
from codeweir.errors import StoreError
from codeweir.store import META_FILE, FileRecord, Store


def record(path: str, blob: str, *bodies: str, repo: str = "r", status: str = "indexed") -> FileRecord:
    chunks = []
    line = 1
    for i, body in enumerate(bodies):
        n = body.count("\n") + 1
        chunks.append(Chunk(line, line + n - 1, 0, len(body), f"f{i}", "function", f"f{i}", body))
        line += n
    return FileRecord(repo, path, blob, "python", tuple(chunks), tuple(f"h-{path}-{i}" for i in range(len(bodies))), status)


def test_a_file_update_replaces_its_chunks_in_one_commit(tmp_path):
    store = Store(tmp_path / "index")
    store.write_file(record("a.py", "b1", "def one(): pass", "def two(): pass"))
    store.commit()
    assert [c.symbol for c in store.chunks_of("r", "a.py")] == ["f0", "f1"]
    store.write_file(record("a.py", "b2", "def three(): pass"))
    # Not visible before the commit: searches read the last committed generation.
    assert len(store.chunks_of("r", "a.py")) == 2
    store.commit()
    assert [c.content for c in store.chunks_of("r", "a.py")] == ["def three(): pass"]
    assert store.file_blobs("r") == {"a.py": "b2"}
    assert store.count(("doc_kind", "file")) == 1


def test_delete_file_and_delete_repo_remove_every_document(tmp_path):
    store = Store(tmp_path / "index")
    store.write_file(record("a.py", "b1", "x = 1"))
    store.write_file(record("b.py", "b2", "y = 2"))
    store.write_file(record("c.py", "b3", "z = 3", repo="other"))
    store.commit()
    store.delete_file("r", "a.py")
    store.commit()
    assert store.file_blobs("r") == {"b.py": "b2"}
    assert store.chunks_of("r", "a.py") == []
    store.delete_repo("r")
    store.commit()
    assert store.repos() == ["other"]
    assert store.count(("repo", "r")) == 0


def test_committed_state_survives_reopening_and_uncommitted_does_not(tmp_path):
    store = Store(tmp_path / "index")
    store.write_file(record("a.py", "b1", "x = 1"))
    store.commit()
    store.write_file(record("b.py", "b2", "y = 2"))
    store.rollback()
    store.close()
    again = Store(tmp_path / "index")
    assert again.file_blobs("r") == {"a.py": "b1"}


def test_file_status_counts_skip_reasons(tmp_path):
    store = Store(tmp_path / "index")
    store.write_file(record("a.py", "b1", "x = 1"))
    store.write_file(record("img.png", "b2", status="binary"))
    store.commit()
    assert store.file_status("r") == {"indexed": 1, "binary": 1}


def test_an_index_of_another_schema_version_is_rebuilt_not_a_crash(tmp_path):
    store = Store(tmp_path / "index")
    store.write_file(record("a.py", "b1", "x = 1"))
    store.commit()
    store.close()
    (tmp_path / "index" / META_FILE).write_text(json.dumps({"schema": 0, "chunker": 0}))
    again = Store(tmp_path / "index")
    assert again.rebuilt
    assert again.file_blobs("r") == {}


def test_an_unusable_index_directory_is_a_store_error(tmp_path):
    (tmp_path / "index").write_text("not a directory")
    with pytest.raises(StoreError, match="cannot open the index"):
        Store(tmp_path / "index")
