"""Interruptions: a daemon killed with SIGKILL at many points of its syncs, a cancelled sync, an
index rebuilt for new versions.

After each kill the index opens and is whole (every file document has exactly its chunks, and
they are the chunks of that file's blob), `status` agrees with the documents, and the next sync
redoes nothing that was committed. After the last, the index equals a clean full index.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import trio

from codeweir.client import Client
from codeweir.config import parse_config
from codeweir.index.disk import META_FILE
from codeweir.index.schema import VERSIONS, stored_chunk
from codeweir.index.store import Store
from codeweir.ingest.parse import parse_file
from codeweir.records import TrackedFile
from codeweir.service.daemon import run_daemon
from codeweir.service.scheduler import SyncRequest
from tests.gitrepo import GitRepo, make_repo
from tests.index_reading import chunk_docs, chunks_of, file_docs

SITE_PACKAGES = Path(attrs.__file__).parents[1]
CORPUS_PACKAGES = ("trio", "pip", "cattrs", "anyio", "attr")  # real code the test environment has
CORPUS_FILES = 120
KILLS = 20
# Kills fall at random within this many seconds of READY: through the scan, the parse workers'
# start, the commits of the sync the daemon resumes, and now and then after it.
KILL_WITHIN_SECONDS = 1.5
SEED = 5


def copy_corpus(root: Path, count: int) -> GitRepo:
    """A git repository of `count` real Python files (2-12 KB) from the installed packages."""
    files = sorted(
        path
        for package in CORPUS_PACKAGES
        for path in (SITE_PACKAGES / package).rglob("*.py")
        if 2000 <= path.stat().st_size <= 12000
    )[:count]
    assert len(files) == count, f"only {len(files)} files of real code found under {SITE_PACKAGES}"
    repo = make_repo(root)
    for path in files:
        repo.write(str(path.relative_to(SITE_PACKAGES)), path.read_bytes())
    repo.commit("corpus")
    return repo


# -- the index as documents ----------------------------------------------------------------------


@attrs.frozen
class IndexView:
    files: dict[str, tuple[str, int, str]]  # path -> (blob, chunk_count, status)
    chunks: frozenset[tuple[str, str, int, int, str, str]]  # (path, blob, start, end, symbol, content_hash)

    def file_set(self) -> set[tuple[str, str]]:
        return {(path, blob) for path, (blob, _, _) in self.files.items()}

    def chunk_set(self) -> set[tuple[str, int, int, str, str]]:
        return {(path, *rest) for path, _, *rest in self.chunks}

    def counts(self) -> tuple[dict[str, int], int]:
        """Files per status, and chunks: what `status` reports."""
        return dict(Counter(status for _, _, status in self.files.values())), len(self.chunks)


def read_index(state_dir: Path) -> IndexView:
    """Every file and chunk document, read through codeweir's store (as a reader only)."""
    store = Store(state_dir / "index")
    files = {
        d.get_all("path")[0]: (d.get_all("blob")[0], d.get_all("chunk_count")[0], d.get_all("status")[0])
        for d in file_docs(store)
    }
    chunks = [stored_chunk(d) for d in chunk_docs(store)]
    view = IndexView(
        files,
        frozenset((c.path, c.blob, c.start_line, c.end_line, c.symbol, c.content_hash) for c in chunks),
    )
    assert len(view.chunks) == len(chunks), "two chunk documents are identical"
    return view


@attrs.define
class Tree:
    """The repository's files now, and every version each path has had, with its chunks as a clean
    parse of that version gives them."""

    repo: GitRepo
    current: dict[str, str] = attrs.Factory(dict)  # path -> blob
    versions: dict[tuple[str, str], tuple[str, frozenset]] = attrs.Factory(dict)  # -> (status, chunks)

    def refresh(self) -> None:
        self.current = {}
        config = self.repo.config("corpus")
        for line in self.repo.git("ls-files", "-s").splitlines():
            _, blob, _, path = line.split(maxsplit=3)
            self.current[path] = blob
            if (path, blob) not in self.versions:
                record = parse_file(config, TrackedFile(path, blob, self.repo.path(path).stat().st_size), 1 << 20)
                chunks = frozenset((c.start_line, c.end_line, c.symbol, h) for c, h in zip(record.chunks, record.content_hashes))
                self.versions[(path, blob)] = (record.status, chunks)

    def change(self, rng: random.Random) -> None:
        """Edit a quarter of the files, delete and add a few, and commit: work for the next sync."""
        paths = sorted(self.current)
        for path in rng.sample(paths, len(paths) // 4):
            self.repo.write(path, self.repo.path(path).read_text() + f"\n\ndef added_{rng.randrange(10**6)}():\n    return 1\n")
        for path in rng.sample(paths, 2):
            self.repo.write(path.removesuffix(".py") + "_copy.py", self.repo.path(path).read_bytes())
        for path in rng.sample(paths, 3):
            self.repo.remove(path)
        self.repo.commit("change some files")
        self.refresh()

    def pending_work(self, view: IndexView) -> tuple[int, int]:
        """What a sync after this index must do: (files to index, paths to delete)."""
        indexed = {path: blob for path, (blob, _, _) in view.files.items()}
        return (
            sum(indexed.get(path) != blob for path, blob in self.current.items()),
            sum(path not in self.current for path in indexed),
        )


def check_whole(view: IndexView, tree: Tree) -> None:
    """Each file document holds one version the path really had, with exactly that version's chunks."""
    chunks_by_path: dict[str, set] = {}
    for path, blob, *chunk in view.chunks:
        assert path in view.files, f"chunk of {path}, which has no file document"
        assert view.files[path][0] == blob, f"chunk of {path} at {blob}, but the file is at {view.files[path][0]}"
        chunks_by_path.setdefault(path, set()).add(tuple(chunk))
    for path, (blob, count, status) in view.files.items():
        assert (path, blob) in tree.versions, f"{path} at {blob}: a version it never had"
        want_status, want_chunks = tree.versions[(path, blob)]
        assert (status, count) == (want_status, len(want_chunks)), path
        assert chunks_by_path.get(path, set()) == want_chunks, f"{path}: chunks differ from its version's"


# -- a daemon process ------------------------------------------------------------------------------


class DaemonProcess:
    """`codeweir daemon` as a subprocess; READY=1 arrives on our own $NOTIFY_SOCKET."""

    def __init__(self, tmp: Path, repo: GitRepo, state_dir: Path, refs: tuple[str, ...] = ()) -> None:
        self.tmp = tmp
        self.state_dir = state_dir
        self.socket = tmp / "run" / "codeweir.sock"
        self.config = tmp / "config.toml"
        self.config.write_text(
            f'state_dir = "{state_dir}"\nsocket = "{self.socket}"\nlog_level = "warning"\n'
            f'[[repository]]\nname = "corpus"\npath = "{repo.root}"\nrefs = {list(refs)!r}\n'
            # One parse worker: each start spawns it afresh, and two cores are all CI has.
            "[limits]\ncommit_every_files = 20\ncommit_every_seconds = 0.25\nparse_workers = 1\nfiles_in_flight = 2\n"
            "[model]\nenabled = false\n"
        )
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(tmp / "notify.sock"))
        self.notify.settimeout(1)
        self.log = tmp / "daemon.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "codeweir.cli.main", "daemon", "--config", str(self.config)],
                env={**os.environ, "NOTIFY_SOCKET": str(self.tmp / "notify.sock")},
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if b"READY=1" in self.notify.recv(65536):
                    return
            except TimeoutError:
                if self.proc.poll() is not None:
                    break
        raise AssertionError(f"the daemon never became ready:\n{self.log.read_text()[-3000:]}")

    def client(self) -> Client:
        return Client(self.socket, timeout=60)

    def start_until_indexed(self) -> None:
        """Start it, and wait until every sync it starts (or resumes) has committed."""
        self.start()
        with self.client() as client:
            assert client.call("wait")["done"]

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=60) == 0, self.log.read_text()[-3000:]

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill()
        self.notify.close()


def indexed_afresh(directory: Path, repo: GitRepo, refs: tuple[str, ...] = ()) -> Path:
    """The state dir of a daemon that indexed `repo` from nothing, to the end, and stopped."""
    directory.mkdir()
    clean = DaemonProcess(directory, repo, directory / "state", refs=refs)
    try:
        clean.start_until_indexed()
        clean.stop()
    finally:
        clean.close()
    return clean.state_dir


def first_job(daemon: DaemonProcess) -> dict:
    """The sync that the daemon starts by itself: it resumes what the last run left."""
    with daemon.client() as client:
        return next(j for j in client.call("jobs")["jobs"] if j["id"] == "j1")


def check_status(daemon: DaemonProcess) -> None:
    """`status` counts what the documents hold. The daemon may commit meanwhile: the documents
    are counted before and after, and only an answer between two equal counts is compared."""
    store = Store(daemon.state_dir / "index")

    def counts() -> tuple[dict[str, int], int]:
        store.reload()
        return store.file_status("corpus"), store.count(("doc_kind", "chunk"))

    for _ in range(50):
        before = counts()
        with daemon.client() as client:
            repo = client.call("status")["repos"][0]
        if counts() != before:
            continue
        statuses, chunks = before
        skipped = {k: v for k, v in statuses.items() if k != "indexed"}
        reported = (repo["files_indexed"], repo["files_seen"], repo["chunks"])
        if reported == (statuses.get("indexed", 0), sum(statuses.values()), chunks):
            assert skipped.items() <= repo["files_skipped"].items()
            return
    raise AssertionError(f"status {repo} never agreed with the documents {before}")


def test_a_daemon_killed_at_any_point_of_its_syncs_keeps_a_whole_index_and_resumes(tmp_path):
    rng = random.Random(SEED)
    tree = Tree(copy_corpus(tmp_path / "corpus", CORPUS_FILES))
    tree.refresh()
    daemon = DaemonProcess(tmp_path, tree.repo, tmp_path / "state")
    try:
        work = (len(tree.current), 0)
        for kill in range(KILLS):
            if kill and rng.random() < 0.5:
                tree.change(rng)
                work = tree.pending_work(read_index(daemon.state_dir))
            daemon.start()
            check_status(daemon)
            time.sleep(rng.uniform(0, KILL_WITHIN_SECONDS))
            job = first_job(daemon)
            if job["state"] == "completed":  # resumed: only what was not committed was redone
                assert (job["counts"]["indexed"], job["counts"]["deleted"]) == work, (kill, job)
            else:
                assert job["state"] in ("queued", "running"), job
            daemon.kill()
            view = read_index(daemon.state_dir)
            check_whole(view, tree)
            work = tree.pending_work(view)

        daemon.start_until_indexed()
        job = first_job(daemon)
        assert job["state"] == "completed" and (job["counts"]["indexed"], job["counts"]["deleted"]) == work
        check_status(daemon)
        daemon.stop()
    finally:
        daemon.close()
    survivor = read_index(daemon.state_dir)
    check_whole(survivor, tree)

    fresh = read_index(indexed_afresh(tmp_path / "clean", tree.repo))
    assert survivor.file_set() == fresh.file_set() == set(tree.current.items())
    assert survivor.chunk_set() == fresh.chunk_set()
    assert survivor.counts() == fresh.counts()


def versions_and_views(state_dir: Path) -> tuple[set, dict, dict]:
    """Every file version, every chunk placed in each view, and which views hold which versions;
    checking that each version is stored once and each chunk a view holds is stored once."""
    store = Store(state_dir / "index")
    versions = file_docs(store)
    files = [(d.get_first("path"), d.get_first("blob")) for d in versions]
    assert len(set(files)) == len(files), "a version is stored twice"
    chunk_counts = {(d.get_first("path"), d.get_first("blob")): d.get_first("chunk_count") for d in versions}
    keys = [d.get_first("chunk_key") for d in chunk_docs(store)]
    assert len(set(keys)) == len(keys), "a chunk is stored twice"
    views = {view: dict(store.file_blobs("corpus", view)) for view in store.membership.views("corpus")}
    placed = {}
    for view, held in views.items():
        assert set(held.items()) <= set(files)  # no view points at a missing version
        for path in held:
            chunks = chunks_of(store, "corpus", path, view)
            assert len(chunks) == chunk_counts[path, held[path]], "a chunk of a version a view holds is missing"
            placed[view, path] = [(c.start_line, c.end_line, c.content_hash) for c in chunks]
    return set(files), placed, views


def test_a_daemon_killed_while_it_indexes_several_refs_keeps_a_whole_index_and_ends_as_a_fresh_one(tmp_path):
    rng = random.Random(SEED)
    repo = copy_corpus(tmp_path / "corpus", CORPUS_FILES // 2)
    repo.git("branch", "old")
    for path in sorted(repo.git("ls-files").split())[::5]:  # main changes every fifth file
        repo.write(path, repo.path(path).read_text() + "\n# changed on main\n")
    repo.commit("main moves on")
    daemon = DaemonProcess(tmp_path, repo, tmp_path / "state", refs=("old", "main"))
    try:
        for _ in range(KILLS // 4):
            daemon.start()
            time.sleep(rng.uniform(0, KILL_WITHIN_SECONDS))
            daemon.kill()
            versions_and_views(daemon.state_dir)  # whole after each kill
        daemon.start_until_indexed()
        daemon.stop()
    finally:
        daemon.close()
    fresh_state = indexed_afresh(tmp_path / "clean", repo, refs=("old", "main"))
    survivor, fresh = versions_and_views(daemon.state_dir), versions_and_views(fresh_state)
    assert survivor == fresh
    assert sorted(fresh[2]) == ["", "main", "old"] and fresh[2][""] == fresh[2]["main"] != fresh[2]["old"]


# -- cancel, and versions, in-process -------------------------------------------------------------


def daemon_config(tmp_path: Path, repos: dict[str, Path], commit_every_files: int = 250):
    return parse_config(
        {
            "state_dir": str(tmp_path / "state"),
            "socket": str(tmp_path / "run" / "codeweir.sock"),
            "repositories": [{"name": name, "path": str(path), "ref": "main"} for name, path in repos.items()],
            "limits": {"files_in_flight": 2, "parse_workers": 1, "commit_every_files": commit_every_files},
            "model": {"enabled": False},
        },
        base_dir=tmp_path,
    )


@asynccontextmanager
async def serving(config):
    """A daemon in this process; leaving the block stops it and waits until it has."""
    async with trio.open_nursery() as nursery:
        daemon = await nursery.start(run_daemon, config)
        try:
            yield daemon
        finally:
            daemon.shutdown()


async def test_a_cancelled_sync_resumes_without_redoing_what_it_committed(tmp_path):
    repo = copy_corpus(tmp_path / "corpus", 120)
    config = daemon_config(tmp_path, {"corpus": repo.root}, commit_every_files=10)
    async with serving(config) as daemon:
        async with daemon.runner.subscribe("j1") as events:
            async for event in events:
                if event["stage"] == "index" and event["done"]:
                    daemon.runner.cancel(job_id="j1")
                    break
        assert (await daemon.runner.wait("j1")).state == "cancelled"
    committed = len(Store(Path(config.state_dir) / "index").file_blobs("corpus"))
    assert 0 < committed < 120
    async with serving(config) as daemon:
        job = await daemon.runner.wait("j1")
        assert job.state == "completed" and job.counts["indexed"] == 120 - committed, job


async def test_an_index_of_old_versions_serves_searches_until_its_rebuild_is_complete(tmp_path):
    a = make_repo(tmp_path / "a", {"x.py": "def old_name():\n    pass\n"})
    b_root = tmp_path / "b"  # not there yet: the rebuild cannot complete without it
    config = daemon_config(tmp_path, {"a": a.root, "b": b_root})
    index = Path(config.state_dir) / "index"

    def found(daemon, word: str) -> bool:
        return any(c.symbol == word for c in chunks_of(daemon.store, "a", "x.py"))

    async with serving(config) as daemon:
        await daemon.runner.wait("j1")
    (index / META_FILE).write_text(json.dumps({"schema": 0, "chunker": 0}))
    a.write("x.py", "def new_name():\n    pass\n")
    a.commit("rename")

    async with serving(config) as daemon:
        for job in ("j1", "j2"):
            await daemon.runner.wait(job)
        assert daemon.store.rebuilding
        assert found(daemon, "old_name") and not found(daemon, "new_name")  # the old index answers
        assert daemon.store.file_blobs("a") == {"x.py": a.hash_object("x.py")}  # the rebuild has a
        status = await status_of(config)
        assert status["index"]["rebuilding"] and status["index"]["rebuilt_repos"] == ["a"]
        make_repo(b_root, {"y.py": "def other():\n    pass\n"})
        daemon.runner.backoff.succeeded("b")  # as a reload would: b is there now
        job = daemon.runner.submit(SyncRequest("b"))
        assert (await daemon.runner.wait(job.id)).state == "completed"
        assert not daemon.store.rebuilding
        assert found(daemon, "new_name") and not found(daemon, "old_name")
        assert not (await status_of(config))["index"]["rebuilding"]
    assert sorted(p.name for p in index.parent.iterdir() if p.name.startswith("index")) == ["index"]
    assert json.loads((index / META_FILE).read_text()) == VERSIONS


async def status_of(config) -> dict:
    def call() -> dict:
        with Client(config.socket) as client:
            return client.call("status")

    return await trio.to_thread.run_sync(call)
