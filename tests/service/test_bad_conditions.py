"""The daemon under bad conditions: a state dir that fills up or turns read-only, a repository
deleted while it syncs, a file that vanishes between scan and read, corrupt git objects.

Each time the daemon stays up, the failing sync says why (and so does `status`, for that
repository only), the other repositories go on, and nothing already indexed is lost.
Daemon-level tests index refs (`ref = "main"`): a ref is polled every 30 s, so no watcher
starts syncs of its own while a test changes a repository.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import zlib
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import attrs
import pytest
import trio

from codeweir.client import Client
from codeweir.config import Limits, parse_config
from codeweir.errors import RepoError
from codeweir.index.store import Store
from codeweir.index.writes import writer_stage
from codeweir.ingest.pipeline import parse_stage, sync_repository
from codeweir.service.daemon import run_daemon
from tests.gitrepo import GitRepo, make_repo
from tests.index_reading import chunks_of

FILES = {f"pkg/mod{i}.py": f"def handler_{i}(request):\n    return request + {i}\n" for i in range(12)}
OTHER = {"lib/util.py": "def other_helper():\n    return 42\n"}
LIMITS = Limits(files_in_flight=2, parse_workers=1, commit_every_files=4)


@attrs.frozen
class Repos:
    a: GitRepo
    b: GitRepo


@pytest.fixture
def repos(tmp_path) -> Repos:
    return Repos(make_repo(tmp_path / "a", FILES), make_repo(tmp_path / "b", OTHER))


# -- a daemon over its real socket ---------------------------------------------------------------


class Api:
    """JSON-RPC calls through codeweir's own client, in a thread: the daemon runs in this loop."""

    def __init__(self, socket: str) -> None:
        self.socket = socket

    async def call(self, method: str, params: dict | None = None) -> dict:
        def call() -> dict:
            with Client(self.socket, timeout=60) as client:
                return client.call(method, params)

        return await trio.to_thread.run_sync(call)

    async def sync(self, repo: str) -> dict:
        return (await self.call("sync", {"repo": repo, "wait": True}))["jobs"][0]

    async def repo_status(self) -> dict[str, dict]:
        return {r["name"]: r for r in (await self.call("status"))["repos"]}

    async def found(self, query: str) -> set[tuple[str, str]]:
        hits = (await self.call("search", {"query": query, "mode": "lexical"}))["results"]
        return {(h["repo"], h["path"]) for h in hits}


@asynccontextmanager
async def serving(tmp_path: Path, repos: Repos, server: dict | None = None):
    """A daemon indexing both repositories' `main`, with its first syncs done."""
    config = parse_config(
        {
            "state_dir": str(tmp_path / "state"),
            "socket": str(tmp_path / "run" / "codeweir.sock"),
            "repositories": [
                {"name": "a", "path": str(repos.a.root), "ref": "main"},
                {"name": "b", "path": str(repos.b.root), "ref": "main"},
            ],
            "limits": attrs.asdict(LIMITS),
            "model": {"enabled": False},
            "server": server or {},
        },
        base_dir=tmp_path,
    )
    async with trio.open_nursery() as nursery:
        daemon = await nursery.start(run_daemon, config)
        api = Api(config.socket)
        try:
            assert (await api.call("wait"))["done"]
            yield daemon, api
        finally:
            daemon.shutdown()


async def retry_now(daemon, repo: str) -> None:
    """Forget the repository's backoff, as a reload does: the problem has been fixed."""
    daemon.runner.backoff.succeeded(repo)


# -- a state dir that fails ----------------------------------------------------------------------


def _writable(directory: Path) -> bool:
    probe = directory / ".probe"
    try:
        probe.write_bytes(b"x")
    except OSError:
        return False
    probe.unlink()
    return True


class _FailingCommits:
    """Tantivy's writer, except that commit fails with the OSError the disk would give."""

    def __init__(self, writer, error: OSError) -> None:
        self._writer = writer
        self._error = error

    def commit(self):
        raise self._error

    def __getattr__(self, name):
        return getattr(self._writer, name)


@attrs.define
class FailingDisk:
    """Makes the state dir fail for real where the machine allows it, else injects the OSError
    at the store adapter's Tantivy writer (the store's own error handling still runs)."""

    kind: str  # "full" or "read_only"
    state_dir: Path
    monkeypatch: pytest.MonkeyPatch
    mounted: bool = False
    how: str = ""  # what fail() does: "tmpfs", "chattr", "chmod" or "injected"
    reason: str = ""  # the OS's words that the error must carry

    def prepare(self) -> None:
        """Before the daemon starts: a full disk needs a small filesystem of its own."""
        self.state_dir.mkdir(parents=True)
        if self.kind == "full":
            mount = ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(self.state_dir)]
            self.mounted = shutil.which("mount") is not None and subprocess.run(mount, capture_output=True).returncode == 0

    def fail(self) -> None:
        index = self.state_dir / "index"
        if self.kind == "full" and self.mounted:
            with open(self.state_dir / "filler", "wb") as filler:
                try:
                    while True:
                        filler.write(b"\0" * (1 << 20))
                        filler.flush()
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
            self.how, self.reason = "tmpfs", os.strerror(errno.ENOSPC)
            return
        if self.kind == "read_only":
            os.chmod(index, 0o555)
            if not _writable(index):
                self.how, self.reason = "chmod", os.strerror(errno.EACCES)
                return
            os.chmod(index, 0o755)
            chattr = shutil.which("chattr")
            if chattr and subprocess.run([chattr, "+i", str(index)], capture_output=True).returncode == 0:
                if not _writable(index):
                    self.how, self.reason = "chattr", os.strerror(errno.EPERM)
                    return
                subprocess.run([chattr, "-i", str(index)], check=True)
        code = errno.ENOSPC if self.kind == "full" else errno.EROFS
        real = Store.writer
        error = OSError(code, os.strerror(code))
        self.monkeypatch.setattr(Store, "writer", property(lambda store: _FailingCommits(real.fget(store), error)))
        self.how, self.reason = "injected", os.strerror(code)

    def restore(self) -> None:
        index = self.state_dir / "index"
        if self.how == "tmpfs":
            (self.state_dir / "filler").unlink()
        elif self.how == "chmod":
            os.chmod(index, 0o755)
        elif self.how == "chattr":
            subprocess.run(["chattr", "-i", str(index)], check=True)
        elif self.how == "injected":
            self.monkeypatch.undo()
        self.how = ""

    def release(self) -> None:
        if self.how:
            self.restore()
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.state_dir)], check=True)


@pytest.fixture(params=["full", "read_only"])
def failing_disk(request, tmp_path, monkeypatch):
    disk = FailingDisk(request.param, tmp_path / "state", monkeypatch)
    disk.prepare()
    yield disk
    disk.release()


async def test_a_state_dir_that_fills_up_or_turns_read_only_fails_writes_and_loses_nothing(tmp_path, repos, failing_disk):
    async with serving(tmp_path, repos) as (daemon, api):
        failing_disk.fail()
        repos.a.write("pkg/mod0.py", "def renamed_handler(request):\n    return 0\n")
        repos.a.commit("rename a handler")

        job = await api.sync("a")
        assert job["state"] == "failed", job
        assert failing_disk.reason in job["error"], (failing_disk.how, job["error"])
        status = await api.repo_status()
        assert failing_disk.reason in status["a"]["error"] and "index" in status["a"]["error"]
        assert status["b"]["error"] is None
        # Nothing committed is lost; searches and the other repository go on.
        assert status["a"]["files_indexed"] == len(FILES)
        assert ("a", "pkg/mod0.py") in await api.found("handler_0")
        assert (await api.sync("b"))["state"] == "completed"
        assert ("b", "lib/util.py") in await api.found("other_helper")

        failing_disk.restore()
        await retry_now(daemon, "a")
        job = await api.sync("a")
        assert job["state"] == "completed" and job["counts"]["indexed"] == 1, job
        assert (await api.repo_status())["a"]["error"] is None
        assert ("a", "pkg/mod0.py") in await api.found("renamed_handler")


async def test_a_deleted_repository_fails_its_sync_and_keeps_its_documents(tmp_path, repos):
    async with serving(tmp_path, repos) as (daemon, api):
        shutil.rmtree(repos.a.root)
        job = await api.sync("a")
        assert job["state"] == "failed" and "no such directory" in job["error"], job
        status = await api.repo_status()
        assert "no such directory" in status["a"]["error"] and status["b"]["error"] is None
        assert status["a"]["files_indexed"] == len(FILES)
        assert ("a", "pkg/mod3.py") in await api.found("handler_3")
        assert (await api.sync("b"))["state"] == "completed"


async def test_a_failed_repository_says_when_it_is_retried_and_is_retried_then_by_itself(tmp_path, repos, mock_clock):
    # The backoff's 10 s pass a hundred times faster; the server's timeouts are out of the way.
    mock_clock.rate = 100
    async with serving(tmp_path, repos, {"request_timeout_seconds": 1e6, "idle_timeout_seconds": 1e6}) as (daemon, api):
        moved = repos.a.root.with_name("a-moved")
        repos.a.root.rename(moved)
        failed = await api.sync("a")
        assert failed["state"] == "failed"
        backoff = (await api.repo_status())["a"]["backoff"]
        assert backoff["failures"] == 1 and 0 < backoff["retry_in_s"] <= 10
        moved.rename(repos.a.root)
        await trio.sleep(backoff["retry_in_s"] + 1)  # no request: the backoff's end starts the retry
        assert (await api.call("wait", {"repo": "a"}))["done"]
        retried = [j for j in (await api.call("jobs"))["jobs"] if j["repo"] == "a" and j["created"] > failed["ended"]]
        assert [j["state"] for j in retried] == ["completed"]
        status = (await api.repo_status())["a"]
        assert status["error"] is None and status["backoff"] is None


def object_path(repo: GitRepo, spec: str) -> Path:
    """The loose object file of `spec` ("main:pkg/x.py")."""
    sha = repo.git("rev-parse", spec)
    return repo.root / ".git" / "objects" / sha[:2] / sha[2:]


def replace_object(repo: GitRepo, spec: str, damage) -> None:
    """Rewrite a loose object as `damage(its bytes)` would leave it. (Loose objects are read-only,
    and may be hard links shared with a clone: unlink, then write.)"""
    path = object_path(repo, spec)
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(damage(data))


async def test_a_corrupt_blob_is_skipped_as_unreadable_and_the_rest_is_indexed(tmp_path, repos):
    async with serving(tmp_path, repos) as (daemon, api):
        repos.a.write("pkg/new.py", "def fresh_handler():\n    return 1\n")
        repos.a.commit("add a file")
        replace_object(repos.a, "main:pkg/new.py", lambda data: b"x\x9c not a zlib stream")
        job = await api.sync("a")
        assert job["state"] == "completed", job
        status = await api.repo_status()
        assert status["a"]["error"] is None and status["a"]["files_skipped"].get("unreadable") == 1, status["a"]
        assert status["a"]["files_indexed"] == len(FILES)
        assert ("a", "pkg/mod5.py") in await api.found("handler_5")
        assert not await api.found("fresh_handler")


async def test_status_adds_up_files_skipped_by_the_scan_and_by_their_read(tmp_path, repos):
    """A blob whose header cannot be read (the scan skips it) and one whose content does not hash
    to its id (its read fails) are both counted as unreadable."""
    async with serving(tmp_path, repos) as (daemon, api):
        repos.a.write("pkg/new.py", "def fresh_handler():\n    return 1\n")
        repos.a.write("pkg/other.py", "def other_handler():\n    return 2\n")
        repos.a.commit("add two files")
        replace_object(repos.a, "main:pkg/new.py", lambda data: b"x\x9c not a zlib stream")
        replace_object(
            repos.a,
            "main:pkg/other.py",
            lambda data: zlib.compress(zlib.decompress(data).replace(b"other_handler", b"OTHER_HANDLER")),
        )
        assert (await api.sync("a"))["state"] == "completed"
        status = (await api.repo_status())["a"]
        assert status["files_skipped"].get("unreadable") == 2, status
        assert status["files_indexed"] == len(FILES)


# -- the pipeline, with the test between the scan and the parse stage --------------------------------


@asynccontextmanager
async def pipeline(tmp_path: Path, before_read=lambda path: None, parse_timeout: float = 60.0):
    """The shared stages over a real store, and `sync(repo, name)`. Each file a sync sends passes
    through `before_read(path)` on its way to the parse stage: the moment between scan and read."""
    store = Store(tmp_path / "index")
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

        async def sync(repo: GitRepo, name: str, **fields):
            return await sync_repository(
                repo.config(name, **fields),
                store=store,
                files=relay_send,
                writes=writes_send,
                git_limiter=trio.CapacityLimiter(1),
                max_bytes=LIMITS.max_file_bytes,
                report=lambda event: None,
            )

        try:
            yield store, sync
        finally:
            nursery.cancel_scope.cancel()


async def test_a_repository_deleted_while_it_syncs_fails_that_sync_only(tmp_path, repos):
    sent: list[str] = []

    def before_read(path: str) -> None:
        sent.append(path)
        if len(sent) == len(FILES) + 1:  # the second sync has scanned and planned
            shutil.rmtree(repos.a.root)

    async with pipeline(tmp_path, before_read) as (store, sync):
        await sync(repos.a, "a")
        for path in FILES:
            repos.a.write(path, FILES[path].replace("request", "req"))
        with pytest.raises(RepoError, match="removed while it was syncing|no such directory"):
            await sync(repos.a, "a")
        assert sorted(store.file_blobs("a")) == sorted(FILES)  # every file still indexed
        assert store.file_status("a") == {"indexed": len(FILES)}
        result = await sync(repos.b, "b")  # the stages live on
        assert result.statuses == {"indexed": 1}


async def test_a_file_that_vanishes_between_scan_and_read_loses_its_documents(tmp_path, repos):
    vanish: set[str] = set()

    def before_read(path: str) -> None:
        if path in vanish:
            vanish.discard(path)
            repos.a.remove(path)

    async with pipeline(tmp_path, before_read) as (store, sync):
        await sync(repos.a, "a")
        repos.a.write("pkg/mod3.py", "def changed_3():\n    pass\n")
        repos.a.write("pkg/mod7.py", "def changed_7():\n    pass\n")
        vanish.add("pkg/mod3.py")
        result = await sync(repos.a, "a")
        assert result.statuses == {"indexed": 1, "vanished": 1}
        assert "pkg/mod3.py" not in store.file_blobs("a")
        assert chunks_of(store, "a", "pkg/mod3.py") == []
        assert [c.symbol for c in chunks_of(store, "a", "pkg/mod7.py")] == ["changed_7"]
        again = await sync(repos.a, "a")  # the next scan no longer lists it: nothing left to do
        assert (again.indexed, again.deleted) == (0, 0)
