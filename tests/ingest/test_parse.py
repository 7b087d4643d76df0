"""parse_file, the work of a parse worker process, and what a worker must import for it."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from codeweir.embedded_text import content_hash, document_text
from codeweir.errors import RepoError
from codeweir.ingest.parse import parse_file
from codeweir.records import TrackedFile
from tests.gitrepo import GitRepo, make_repo

# What the index and the embedder need, and no parse worker should pay for.
NOT_FOR_WORKERS = ("tantivy", "numpy", "onnxruntime", "onnx", "tokenizers", "trio", "trio_parallel")
PYTHON_FILE = "def parse_duration(text):\n    return int(text)\n"


def tracked(repo: GitRepo, path: str) -> TrackedFile:
    return TrackedFile(path, repo.hash_object(path), repo.path(path).stat().st_size)


def test_importing_the_parse_module_loads_no_index_embedder_or_trio_modules() -> None:
    """A fresh interpreter that imports codeweir.ingest.parse has none of them in sys.modules."""
    probe = f"import sys, codeweir.ingest.parse; print(' '.join(m for m in {NOT_FOR_WORKERS!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.split() == []


def test_a_source_file_becomes_chunks_keyed_by_the_text_the_model_sees(tmp_path) -> None:
    repo = make_repo(tmp_path / "r", {"tests/test_time.py": PYTHON_FILE})
    record = parse_file(repo.config(), tracked(repo, "tests/test_time.py"), 1 << 20)
    assert record is not None
    assert (record.status, record.language, record.blob) == ("indexed", "python", repo.hash_object("tests/test_time.py"))
    assert [c.symbol for c in record.chunks] == ["parse_duration"]
    assert record.content_hashes == tuple(
        content_hash(document_text(language="python", symbol_path=c.symbol_path, kind=c.kind, content=c.content))
        for c in record.chunks
    )
    assert record.facets == frozenset({"test"})


@pytest.mark.parametrize(
    ("content", "max_bytes", "status", "error"),
    [
        (b"\x89PNG\r\n\x00\x00", 1 << 20, "binary", ""),
        (b"caf\xe9\n", 1 << 20, "undecodable", "not UTF-8 at byte 3"),
        (b"x" * 100, 99, "too_large", ""),
    ],
)
def test_a_file_that_cannot_be_chunked_is_recorded_with_the_reason_and_no_chunks(
    tmp_path, content: bytes, max_bytes: int, status: str, error: str
) -> None:
    repo = make_repo(tmp_path / "r", {"f": content})
    record = parse_file(repo.config(), tracked(repo, "f"), max_bytes)
    assert record is not None
    assert (record.status, record.error, record.chunks, record.blob) == (status, error, (), repo.hash_object("f"))


def test_a_worktree_file_edited_since_the_scan_is_indexed_under_the_id_of_what_was_read(tmp_path) -> None:
    repo = make_repo(tmp_path / "r", {"a.py": PYTHON_FILE})
    scanned = tracked(repo, "a.py")
    repo.write("a.py", PYTHON_FILE + "\n\ndef later():\n    pass\n")
    record = parse_file(repo.config(), scanned, 1 << 20)
    assert record is not None
    assert record.blob == repo.hash_object("a.py") != scanned.blob
    assert [c.symbol for c in record.chunks] == ["parse_duration", "later"]


def test_a_file_gone_from_the_worktree_since_the_scan_gives_none(tmp_path) -> None:
    repo = make_repo(tmp_path / "r", {"a.py": PYTHON_FILE, "b.py": PYTHON_FILE})
    scanned = tracked(repo, "a.py")
    repo.remove("a.py")
    assert parse_file(repo.config(), scanned, 1 << 20) is None


def test_a_repository_removed_since_the_scan_raises_repo_error_naming_it(tmp_path) -> None:
    repo = make_repo(tmp_path / "r", {"a.py": PYTHON_FILE})
    scanned = tracked(repo, "a.py")
    shutil.rmtree(repo.root)
    with pytest.raises(RepoError, match="'repo'"):
        parse_file(repo.config(), scanned, 1 << 20)


def test_a_ref_is_read_from_the_object_database_not_the_worktree(tmp_path) -> None:
    repo = make_repo(tmp_path / "r", {"a.py": PYTHON_FILE})
    scanned = tracked(repo, "a.py")
    repo.write("a.py", "x = 1\n")
    record = parse_file(repo.config(ref="main"), scanned, 1 << 20)
    assert record is not None
    assert (record.blob, [c.symbol for c in record.chunks]) == (scanned.blob, ["parse_duration"])
