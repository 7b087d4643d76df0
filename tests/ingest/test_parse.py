"""parse_file, the work of a parse worker process, and what a worker must import for it."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys

import pygit2
import pytest
import trio_parallel

from codeweir import client, errors
from codeweir.embedded_text import content_hash, document_text
from codeweir.errors import CodeweirError, RepoError
from codeweir.git.scan import blob_id, scan
from codeweir.git.worktree import path_bytes
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


# -- the worker boundary: what crosses back to the daemon --------------------------------------------


def every_codeweir_error() -> list[type[CodeweirError]]:
    found, todo = [], [CodeweirError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    assert {errors.RepoError, errors.RequestError, client.DaemonError} <= set(found)
    return sorted(found, key=lambda cls: cls.__qualname__)


@pytest.mark.parametrize("cls", every_codeweir_error(), ids=lambda cls: cls.__qualname__)
def test_every_codeweir_error_pickles_with_its_message_and_fields(cls: type[CodeweirError]) -> None:
    error = cls(7, "the message", {"x": 1}) if cls is client.DaemonError else cls("the message")
    if cls is errors.RequestError:
        error = cls("the message", code=-32001)
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.args, vars(copy)) == (cls, "the message", error.args, vars(error))


async def test_a_repository_removed_since_the_scan_is_a_repo_error_in_the_daemon_not_a_broken_worker(tmp_path) -> None:
    repo = make_repo(tmp_path / "r", {"a.py": PYTHON_FILE})
    scanned = tracked(repo, "a.py")
    shutil.rmtree(repo.root)
    with pytest.raises(
        RepoError, match=r"^repository 'repo' at .*: (removed while it was syncing|cannot open: no such directory)$"
    ):
        await trio_parallel.run_sync(parse_file, repo.config(), scanned, 1 << 20)


async def test_a_repository_whose_git_data_is_wiped_mid_sync_is_a_repo_error_without_the_git_error_it_replaced(tmp_path) -> None:
    repo = make_repo(tmp_path / "r", {"a.py": PYTHON_FILE})
    scanned = tracked(repo, "a.py")
    shutil.rmtree(repo.path(".git"))
    repo.path(".git").mkdir()  # libgit2 fails to open it: a pygit2 error, which the adapter replaces
    async with trio_parallel.open_worker_context() as worker:
        with pytest.raises(RepoError, match=r"^repository 'repo' at .*: cannot open: not a git repository$") as raised:
            await worker.run_sync(parse_file, repo.config(), scanned, 1 << 20)
    assert raised.value.__context__ is None


def _read_file_raising_a_git_error(repo, file, limit=None):
    raise pygit2.GitError("failed to read object")


def _make_reads_raise_git_errors() -> None:
    """A worker's start-up (trio_parallel's init): every read of this worker raises what no adapter
    translated, a pygit2 error, which does not pickle."""
    from codeweir.git import scan

    scan.read_file = _read_file_raising_a_git_error


async def test_an_error_no_adapter_translated_crosses_back_as_the_files_error_or_a_repo_error(tmp_path) -> None:
    repo = make_repo(tmp_path / "r", {"a.py": PYTHON_FILE})
    scanned = tracked(repo, "a.py")
    with pytest.raises(pickle.PicklingError):
        pickle.dumps(pygit2.GitError("failed to read object"))
    async with trio_parallel.open_worker_context(init=_make_reads_raise_git_errors) as worker:
        record = await worker.run_sync(parse_file, repo.config(), scanned, 1 << 20)
        assert record is not None
        assert (record.status, record.error, record.blob) == ("error", "GitError: failed to read object", scanned.blob)
        shutil.rmtree(repo.root)  # deleted while it syncs: what failed is the repository, not the file
        with pytest.raises(RepoError, match=r"^repository 'repo' at .*: removed while it was syncing$"):
            await worker.run_sync(parse_file, repo.config(), scanned, 1 << 20)


# -- hostile worktrees ---------------------------------------------------------------------------------


def test_a_file_named_in_bytes_that_are_not_utf8_is_read_and_chunked_under_its_name(tmp_path) -> None:
    repo = make_repo(tmp_path / "r", {"keep.py": "x = 1\n"})
    with open(os.path.join(os.fsencode(repo.root), b"bad\xff\nname.py"), "wb") as file:
        file.write(PYTHON_FILE.encode())
    [file] = [f for f in scan(repo.config(), 1 << 20).files if f.path != "keep.py"]
    record = parse_file(repo.config(), file, 1 << 20)
    assert record is not None
    assert (record.path, record.status, record.language) == (r"bad\xff\x0aname.py", "indexed", "python")
    assert path_bytes(record.path) == b"bad\xff\nname.py"
    assert [c.symbol for c in record.chunks] == ["parse_duration"]


def test_a_directory_swapped_for_a_symlink_is_skipped_as_unreadable_and_its_target_never_read(tmp_path) -> None:
    repo = make_repo(tmp_path / "r", {"src/a.py": PYTHON_FILE})
    scanned = tracked(repo, "src/a.py")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "a.py").write_text("SECRET = 'outside the repository'\n")
    shutil.rmtree(repo.path("src"))
    repo.symlink("src", str(tmp_path / "outside"))
    record = parse_file(repo.config(), scanned, 1 << 20)
    assert record is not None
    assert (record.status, record.chunks, record.blob) == ("unreadable", (), scanned.blob)
    assert record.error.endswith("src/a.py: it, or a directory on its path, is a symlink: not followed")


def test_a_file_swapped_for_a_fifo_is_skipped_as_unreadable_at_once(tmp_path) -> None:
    repo = make_repo(tmp_path / "r", {"a.py": PYTHON_FILE})
    scanned = tracked(repo, "a.py")
    repo.remove("a.py")
    os.mkfifo(repo.path("a.py"))  # nobody writes to it: a blocking open would wait for good
    record = parse_file(repo.config(), scanned, 1 << 20)
    assert record is not None
    assert record.status == "unreadable" and "not a regular file" in record.error


def test_a_file_grown_past_the_limit_since_the_scan_is_too_large_under_its_scanned_id(tmp_path) -> None:
    repo = make_repo(tmp_path / "r", {"a.py": PYTHON_FILE})
    scanned = tracked(repo, "a.py")
    repo.write("a.py", "x" * 10_000)
    record = parse_file(repo.config(), scanned, 1000)
    assert record is not None
    assert (record.status, record.blob) == ("too_large", scanned.blob)
    assert scanned.blob != blob_id(repo.path("a.py").read_bytes())
