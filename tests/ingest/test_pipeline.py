"""Syncs through the real stages (scan, parse workers, the writer, Tantivy) over hostile worktrees:
names git stores that are no plain UTF-8, directories swapped for symlinks between scan and read,
repositories deleted while their files are parsed, directories nested deeper than libgit2 walks."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import attrs
import pytest
import trio
import trio_parallel

from codeweir.config import Limits
from codeweir.errors import RepoError, StoreError
from codeweir.git import history
from codeweir.git.freshness import stale_paths
from codeweir.git.scan import scan
from codeweir.git.worktree import path_bytes
from codeweir.index.store import Store
from codeweir.index.writes import SyncTracker, writer_stage
from codeweir.ingest.pipeline import FileTask, parse_stage, sync_repository
from tests.gitrepo import GitRepo, make_repo
from tests.index_reading import chunks_of, commits_of

LIMITS = Limits(files_in_flight=2, parse_workers=1, commit_every_files=4)
FILES = {f"src/mod{i}.py": f"def handler_{i}(request):\n    return request + {i}\n" for i in range(8)}
DEEP = "/".join(["d"] * 100)


@asynccontextmanager
async def pipeline(index: Path, before_read=lambda path: None, parse_timeout: float = 60.0):
    """The shared stages over a real store, and `sync(repo, name)`. Each file a sync sends passes
    through `before_read(path)` on its way to the parse stage: the moment between scan and read."""
    store = Store(index)
    async with trio.open_nursery() as nursery:
        files_send, files_recv = trio.open_memory_channel(8)
        writes_send, writes_recv = trio.open_memory_channel(8)
        relay_send, relay_recv = trio.open_memory_channel(0)
        await nursery.start(partial(writer_stage, writes_recv, store, store_limiter=trio.CapacityLimiter(1), limits=LIMITS))
        nursery.start_soon(
            partial(
                parse_stage,
                files_recv,
                writes_send.clone(),
                in_flight=trio.CapacityLimiter(2),
                workers=trio.CapacityLimiter(1),
                max_bytes=LIMITS.max_file_bytes,
                timeout=parse_timeout,
            )
        )

        async def relay() -> None:
            async for task in relay_recv:
                before_read(task.file.path)
                await files_send.send(task)

        nursery.start_soon(relay)

        async def sync(repo: GitRepo, name: str, *, draft_min_files: int | None = None, **fields):
            return await sync_repository(
                repo.config(name, **fields),
                store=store,
                files=relay_send,
                writes=writes_send,
                git_limiter=trio.CapacityLimiter(1),
                max_bytes=LIMITS.max_file_bytes,
                report=lambda event: None,
                draft_min_files=draft_min_files,
            )

        try:
            yield store, sync
        finally:
            nursery.cancel_scope.cancel()


def write_raw(repo: GitRepo, relative: bytes, content: bytes) -> None:
    path = os.path.join(os.fsencode(repo.root), relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as file:
        file.write(content)


ODD = {
    b"odd/bad\xffname.py": r"odd/bad\xffname.py",
    b"odd/new\nline.py": r"odd/new\x0aline.py",
    b"odd/esc\x1b[31m.py": r"odd/esc\x1b[31m.py",
    b"odd/back\\slash.py": r"odd/back\\slash.py",
}


async def test_paths_that_are_not_utf8_or_hold_controls_are_indexed_under_their_names_and_stay_in_step(tmp_path) -> None:
    repo = make_repo(tmp_path / "r", {".gitignore": "build/\n"})
    for i, raw in enumerate(ODD):
        write_raw(repo, raw, f"def odd_{i}():\n    pass\n".encode())
    repo.commit("odd names")
    write_raw(repo, b"odd/untracked\xfe.py", b"def untracked_odd():\n    pass\n")
    write_raw(repo, b"build/ignored\xfd.py", b"def ignored_odd():\n    pass\n")  # in an ignored directory
    names = {*ODD.values(), r"odd/untracked\xfe.py"}
    async with pipeline(tmp_path / "index") as (store, sync):
        result = await sync(repo, "r")
        assert result.statuses == {"indexed": len(names) + 1}
        assert set(store.file_blobs("r")) == names | {".gitignore"}
        for i, name in enumerate(ODD.values()):
            assert [c.symbol for c in chunks_of(store, "r", name)] == [f"odd_{i}"]
        assert [c.symbol for c in chunks_of(store, "r", r"odd/untracked\xfe.py")] == ["untracked_odd"]
        assert set(ODD.values()) <= {path for commit in commits_of(store, "r") for path in commit.paths}
        assert stale_paths(repo.config("r"), store.file_blobs("r")) == set()
        again = await sync(repo, "r")
        assert (again.indexed, again.deleted) == (0, 0)
    # A restart reads the names back from the index: still nothing to do.
    async with pipeline(tmp_path / "index") as (store, sync):
        again = await sync(repo, "r")
        assert (again.indexed, again.deleted) == (0, 0)
        write_raw(repo, b"odd/bad\xffname.py", b"def renamed_odd():\n    pass\n")
        edited = await sync(repo, "r")
        assert (edited.indexed, edited.deleted) == (1, 0)
        assert [c.symbol for c in chunks_of(store, "r", r"odd/bad\xffname.py")] == ["renamed_odd"]


async def test_a_directory_swapped_for_a_symlink_before_its_files_are_read_indexes_nothing_from_its_target(tmp_path) -> None:
    repo = make_repo(tmp_path / "r", FILES)
    outside = tmp_path / "outside"
    outside.mkdir()
    for path in FILES:  # the same names, outside the repository
        (outside / Path(path).name).write_text(f"SECRET_{Path(path).stem} = 'not the repository's'\n")

    armed: list[bool] = []

    def swap_src_for_a_symlink(path: str) -> None:
        if armed and not repo.path("src").is_symlink():
            shutil.rmtree(repo.path("src"))
            repo.symlink("src", str(outside))

    async with pipeline(tmp_path / "index", before_read=swap_src_for_a_symlink) as (store, sync):
        await sync(repo, "r")
        for path, text in FILES.items():
            repo.write(path, text.replace("request", "req"))
        armed.append(True)  # after the next scan, before its first read
        result = await sync(repo, "r")
        assert result.statuses == {"unreadable": len(FILES)}
        for path in FILES:
            assert chunks_of(store, "r", path) == []
        errors = store.file_errors("r", 100)
        assert {e["path"] for e in errors} == set(FILES)
        assert all(e["error"].endswith("it, or a directory on its path, is a symlink: not followed") for e in errors)
        # The next scan sees what git sees: a symlink where src/ was, and its files gone.
        after = await sync(repo, "r")
        assert (after.deleted, after.skipped) == (len(FILES), {"symlink": 1})


@pytest.mark.parametrize("damage", ["deleted", "moved", "git data wiped"])
async def test_a_repository_deleted_moved_or_wiped_while_its_files_are_parsed_fails_that_sync_only(tmp_path, damage) -> None:
    repo = make_repo(tmp_path / "r", FILES)
    other = make_repo(tmp_path / "other", {"lib/util.py": "def other_helper():\n    return 42\n"})
    sent: list[str] = []

    def before_read(path: str) -> None:
        sent.append(path)
        if len(sent) == len(FILES) + 4:  # the second sync: three files sent to the worker before this one
            if damage == "deleted":
                shutil.rmtree(repo.root)
            elif damage == "moved":
                repo.root.rename(tmp_path / "elsewhere")
            else:  # a new, empty .git (made before the old one goes, so its inode is new): libgit2 cannot open it
                repo.path(".git").rename(repo.path(".git-old"))
                repo.path(".git").mkdir()
                shutil.rmtree(repo.path(".git-old"))

    async with pipeline(tmp_path / "index", before_read) as (store, sync):
        await sync(repo, "r")
        for path, text in FILES.items():
            repo.write(path, text.replace("request", "req"))
        with pytest.raises(RepoError, match="removed while it was syncing|cannot open"):
            await sync(repo, "r")
        assert sorted(store.file_blobs("r")) == sorted(FILES)  # every file still indexed
        assert store.file_status("r") == {"indexed": len(FILES)}
        assert (await sync(other, "other")).statuses == {"indexed": 1}  # the stages live on


async def test_a_directory_nested_100_deep_is_indexed_as_git_lists_it(tmp_path) -> None:
    repo = make_repo(tmp_path / "r", {f"{DEEP}/deep.py": "def deepest():\n    pass\n", "top.py": "TOP = 1\n"})
    repo.write(f"{DEEP}/untracked.py", "def deep_untracked():\n    pass\n")
    async with pipeline(tmp_path / "index") as (store, sync):
        result = await sync(repo, "r")
        assert result.statuses == {"indexed": 3}
        assert [c.symbol for c in chunks_of(store, "r", f"{DEEP}/deep.py")] == ["deepest"]
        assert [c.symbol for c in chunks_of(store, "r", f"{DEEP}/untracked.py")] == ["deep_untracked"]
        assert path_bytes(f"{DEEP}/deep.py") == f"{DEEP}/deep.py".encode()
        again = await sync(repo, "r")
        assert (again.indexed, again.deleted) == (0, 0)


# -- a read that never ends, a worker that dies: one file lost, the sync goes on ----------------------------


def cut_loose_object_in_half(repo: GitRepo, spec: str) -> None:
    """Leave the loose object of `spec` ("main:src/x.py") cut short, as a crash mid-write does.
    (Loose objects are read-only, and may be hard links shared with a clone: unlink, then write.)"""
    sha = repo.git("rev-parse", spec)
    path = repo.root / ".git" / "objects" / sha[:2] / sha[2:]
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data[: len(data) // 2])


# Never reached by a file that is read: the test moves trio's clock past the hanging read's deadline
# once its worker has begun that read, so no file times out because the machine is loaded.
PARSE_TIMEOUT = 600.0


def _say_when_reading_mod4(address: str) -> None:
    """A parse worker's start-up (trio_parallel's init): as it begins to read src/mod4.py, the
    worker tells the test so, over the unix socket at `address`."""
    import socket

    from codeweir.git import scan

    read_file = scan.read_file

    def say_then_read(repo, file, limit=None):
        if file.path == "src/mod4.py":
            with socket.socket(socket.AF_UNIX) as sock:
                sock.connect(address)
                sock.sendall(b"reading src/mod4.py")
        return read_file(repo, file, limit)

    scan.read_file = say_then_read


async def test_a_file_whose_read_never_ends_is_given_up_on_and_the_sync_goes_on(tmp_path, mock_clock) -> None:
    mock_clock.rate = 1  # trio's clock runs as the wall clock does, but for the jump below
    repo = make_repo(tmp_path / "r", FILES)

    def before_read(path: str) -> None:
        if path == "src/mod4.py":  # scanned whole, read cut short: libgit2 spins on it for good (libgit2 issue 7342)
            cut_loose_object_in_half(repo, "main:src/mod4.py")

    with tempfile.TemporaryDirectory(prefix="cw-") as short:  # a socket path within sun_path's 108 bytes
        address = os.path.join(short, "reading.sock")
        listener = trio.socket.socket(trio.socket.AF_UNIX)
        await listener.bind(address)
        listener.listen()

        async def give_up_whenever_it_reads() -> None:
            # Once for the batch of files it is in, once more alone: a batch that times out is
            # parsed again file by file.
            while True:
                conn, _ = await listener.accept()
                with conn:
                    assert await conn.recv(64) == b"reading src/mod4.py"
                mock_clock.jump(PARSE_TIMEOUT)  # the read has begun: its deadline passes now

        with listener:
            async with trio_parallel.cache_scope(init=partial(_say_when_reading_mod4, address)):
                async with pipeline(tmp_path / "index", before_read, parse_timeout=PARSE_TIMEOUT) as (store, sync):
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(give_up_whenever_it_reads)
                        result = await sync(repo, "r", ref="main")
                        nursery.cancel_scope.cancel()
    assert result.statuses == {"indexed": len(FILES) - 1, "error": 1}
    [problem] = store.file_errors("r", 5)
    assert problem["path"] == "src/mod4.py" and "given up" in problem["error"]


def _die_reading_mod4() -> None:
    """A parse worker's start-up (trio_parallel's init): reading src/mod4.py kills the worker, as
    the kernel's OOM killer would."""
    from codeweir.git import scan

    read_file = scan.read_file

    def read_or_die(repo, file, limit=None):
        if file.path == "src/mod4.py":
            os.kill(os.getpid(), signal.SIGKILL)
        return read_file(repo, file, limit)

    scan.read_file = read_or_die


async def test_a_parse_worker_that_dies_costs_one_file_and_the_sync_goes_on(tmp_path) -> None:
    repo = make_repo(tmp_path / "r", FILES)
    other = make_repo(tmp_path / "other", {"lib/util.py": "def other_helper():\n    return 42\n"})
    async with trio_parallel.cache_scope(init=_die_reading_mod4):
        async with pipeline(tmp_path / "index") as (store, sync):
            result = await sync(repo, "r")
            assert result.statuses == {"indexed": len(FILES) - 1, "error": 1}
            [problem] = store.file_errors("r", 5)
            assert problem["path"] == "src/mod4.py" and "died" in problem["error"]
            assert (await sync(other, "other")).statuses == {"indexed": 1}


async def test_a_parsed_record_carries_the_scans_own_path_and_blob_strings(tmp_path) -> None:
    """The views keep every file's path and blob: the scan's strings, not the worker's copies."""
    repo = make_repo(tmp_path / "r", FILES)
    config = repo.config("r")
    file = scan(config, LIMITS.max_file_bytes).files[0]
    files_send, files_recv = trio.open_memory_channel(1)
    writes_send, writes_recv = trio.open_memory_channel(1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            partial(
                parse_stage,
                files_recv,
                writes_send,
                in_flight=trio.CapacityLimiter(1),
                workers=trio.CapacityLimiter(1),
                max_bytes=LIMITS.max_file_bytes,
            )
        )
        async with files_send:
            await files_send.send(FileTask(SyncTracker("r", 1, lambda event: None), config, file))
        write = await writes_recv.receive()
    assert write.record.chunks and write.record.path is file.path and write.record.blob is file.blob


def _every_file(tmp_path: Path) -> list[FileTask]:
    """A parse task for each file of a repository of FILES, in the scan's order."""
    config = make_repo(tmp_path / "r", FILES).config("r")
    tracker = SyncTracker("r", len(FILES), lambda event: None)
    return [FileTask(tracker, config, file) for file in scan(config, LIMITS.max_file_bytes).files]


async def _parse_waiting(tasks: list[FileTask], monkeypatch) -> tuple[list, list[int]]:
    """The writes the parse stage makes of `tasks`, all waiting in the channel as it starts, and
    the number of files each of its calls to a worker took."""
    calls: list[int] = []
    run_sync = trio_parallel.run_sync

    async def counted(function, files, *args, **kwargs):
        calls.append(len(files))
        return await run_sync(function, files, *args, **kwargs)

    monkeypatch.setattr(trio_parallel, "run_sync", counted)
    files_send, files_recv = trio.open_memory_channel(len(tasks))
    writes_send, writes_recv = trio.open_memory_channel(len(tasks))
    async with files_send:
        for task in tasks:
            files_send.send_nowait(task)
    stage = partial(
        parse_stage, in_flight=trio.CapacityLimiter(1), workers=trio.CapacityLimiter(1), max_bytes=LIMITS.max_file_bytes
    )
    await stage(files_recv, writes_send)
    async with writes_recv:
        return [write async for write in writes_recv], calls


async def test_files_waiting_in_the_channel_go_to_a_worker_in_one_call_and_come_out_each_as_its_write(
    tmp_path, monkeypatch
) -> None:
    tasks = _every_file(tmp_path)
    writes, calls = await _parse_waiting(tasks, monkeypatch)
    assert calls == [len(FILES)]
    assert [write.record.path for write in writes] == [task.file.path for task in tasks]
    assert all(write.record.chunks for write in writes)


async def test_a_batch_whose_worker_dies_is_parsed_again_file_by_file_and_only_the_file_at_fault_is_lost(
    tmp_path, monkeypatch
) -> None:
    tasks = _every_file(tmp_path)
    async with trio_parallel.cache_scope(init=_die_reading_mod4):
        writes, calls = await _parse_waiting(tasks, monkeypatch)
    assert calls == [len(FILES)] + [1] * len(FILES)
    statuses = {write.record.path: write.record.status for write in writes}
    assert statuses == {task.file.path: "error" if task.file.path == "src/mod4.py" else "indexed" for task in tasks}


async def test_a_commit_the_index_rejects_fails_the_sync_without_recording_the_tip_and_the_next_sync_redoes_the_walk(
    tmp_path, monkeypatch
) -> None:
    repo = make_repo(tmp_path / "r", {"a.py": "def first():\n    pass\n"})
    for i in range(5):
        repo.write(f"m{i}.py", f"def more_{i}():\n    pass\n")
        repo.commit(f"add more_{i}")
    walk = history.walk_commits

    def one_at_a_time_and_the_first_rejected(repo_config, head, since, hide=()):
        for n, batch in enumerate(walk(repo_config, head, since, batch=1, hide=hide)):
            if n == 0:  # a content hash that is no hash: the store refuses the document
                batch = [attrs.evolve(batch[0], content_hash="not a hash")]
            yield batch

    monkeypatch.setattr(history, "walk_commits", one_at_a_time_and_the_first_rejected)
    async with pipeline(tmp_path / "index") as (store, sync):
        with pytest.raises(StoreError, match="writing commits of r"):
            await sync(repo, "r")
        assert history.META_KEY not in store.repo_meta("r")  # the walk is not recorded as done
        assert len(commits_of(store, "r")) < 6
        monkeypatch.undo()
        result = await sync(repo, "r")
        assert result.commits == 6  # walked again from the start
        assert len(commits_of(store, "r")) == 6
        assert store.repo_meta("r")[history.META_KEY] == repo.head()


# -- several views of one repository -------------------------------------------------------------


def branch_repo(tmp_path: Path) -> GitRepo:
    """main with FILES; branch `old` one commit behind, where two files differ and one is missing."""
    repo = make_repo(tmp_path / "r", {**FILES, "src/mod0.py": "def handler_0(request):\n    return 'old'\n"})
    repo.git("branch", "old")
    repo.write_files({"src/mod0.py": FILES["src/mod0.py"], "src/mod1.py": "def handler_1(request):\n    return 'new'\n"})
    repo.write("src/added.py", "def added():\n    pass\n")
    repo.commit("main moves on")
    return repo


async def test_a_second_ref_parses_only_the_versions_the_first_lacks_and_each_view_sees_its_own(tmp_path) -> None:
    repo = branch_repo(tmp_path)
    async with pipeline(tmp_path / "index") as (store, sync):
        first = await sync(repo, "r")
        assert first.indexed == len(FILES) + 1 and first.views == {}
        second = await sync(repo, "r", refs=("old", "ma*"))
        assert second.views == {"main": repo.head(), "old": repo.git("rev-parse", "old").strip()}
        # `main` holds what the worktree holds; `old` differs in two files and lacks one.
        assert (second.indexed, second.shared) == (2, len(FILES) + 1 + len(FILES) - 2)
        assert chunks_of(store, "r", "src/mod0.py", "old")[0].content.endswith("'old'")
        assert chunks_of(store, "r", "src/mod0.py")[0].content.endswith("0")
        assert "src/added.py" not in store.file_blobs("r", "old")
        assert store.count(("doc_kind", "file")) == len(FILES) + 3  # one document per version


async def test_a_ref_that_moves_parses_only_its_changed_files_and_a_version_no_view_holds_goes(tmp_path) -> None:
    repo = branch_repo(tmp_path)
    async with pipeline(tmp_path / "index") as (store, sync):
        await sync(repo, "r", refs=("old",))
        old_mod0 = store.file_blobs("r", "old")["src/mod0.py"]
        repo.git("branch", "-f", "old", "main")  # old catches up with main
        moved = await sync(repo, "r", refs=("old",))
        assert (moved.indexed, moved.shared, moved.deleted) == (0, 3, 0)
        assert store.count(("blob", old_mod0)) == 0  # no view holds the old version: its documents went
        assert store.file_blobs("r", "old") == store.file_blobs("r")


async def test_a_ref_deleted_or_no_longer_named_loses_its_view_and_a_pattern_naming_nothing_is_reported(tmp_path) -> None:
    repo = branch_repo(tmp_path)
    async with pipeline(tmp_path / "index") as (store, sync):
        await sync(repo, "r", refs=("old",))
        repo.git("branch", "-D", "old")
        gone = await sync(repo, "r", refs=("old", "release/*"))
        assert gone.unmatched == ("old", "release/*") and gone.views == {}
        assert store.membership.views("r") == [""]
        assert store.count(("doc_kind", "file")) == len(FILES) + 1


async def test_a_refs_history_walk_stops_where_the_main_views_walk_reached(tmp_path) -> None:
    repo = branch_repo(tmp_path)
    repo.git("checkout", "-q", "-b", "topic", "old")
    repo.write("topic.py", "x = 1\n")
    repo.commit("on topic")
    repo.git("checkout", "-q", "main")
    async with pipeline(tmp_path / "index") as (store, sync):
        assert (await sync(repo, "r")).commits == 2
        assert (await sync(repo, "r", refs=("topic",))).commits == 1  # only the commit main lacks
        assert len(commits_of(store, "r")) == 3
