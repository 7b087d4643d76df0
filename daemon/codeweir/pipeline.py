"""One sync, and the shared stages every sync feeds.

    scan (git, in a thread) -> plan -> files channel (bounded, FIFO)
      -> parse stage: N tasks, each file parsed and chunked in a worker process (parse.py)
      -> writes channel (bounded) -> writer task (the only IndexWriter): commits every
         K files or T seconds, and as soon as a sync's last file is written

The parse and writer stages run for the daemon's whole life, started by `run_daemon()`,
which also creates the channels and limiters. A sync sends its files in and waits until
all of them are committed; cancelling it drops its files still queued, while what is
already committed stays (each file's documents change in one commit).

Bad conditions end one sync, never the stages: a repository that disappears fails its sync
(RepoError), a write or commit that fails (disk full, read-only) fails the syncs it held
(StoreError) after a rollback, and a file gone from the worktree since the scan loses its
documents like a deleted one.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable

import attrs
import trio
import trio_parallel

from . import commits, git
from .config import Limits, RepoConfig
from .errors import CodeweirError, RepoError, StoreError
from .parse import parse_file
from .plan import plan_sync
from .priority import lower_cpu_priority
from .records import CommitRecord, FileRecord
from .store import Store

log = logging.getLogger(__name__)

# A file that takes longer is given up on and its worker killed: libgit2 spins forever on a
# truncated loose object, and a parser may on a pathological input.
PARSE_TIMEOUT_SECONDS = 60.0
Report = Callable[[dict], None]


# -- shared stages ------------------------------------------------------------------------------


@attrs.define(eq=False)
class SyncTracker:
    """One sync's outstanding work as the shared stages see it."""

    repo: str
    expected: int
    report: Report
    written: int = 0
    committed: int = 0
    statuses: Counter = attrs.Factory(Counter)
    cancelled: bool = False  # its files still queued are dropped
    error: CodeweirError | None = None
    done: trio.Event = attrs.Factory(trio.Event)

    def settle(self, n: int = 1) -> None:
        """`n` items will never reach the index (dropped after a cancel)."""
        self.expected -= n
        self._maybe_done()

    def _maybe_done(self) -> None:
        if self.committed >= self.expected:
            self.done.set()

    def on_commit(self, n: int) -> None:
        self.committed += n
        if not self.done.is_set():  # a failed sync has already ended; its job has no listeners
            self.report({"stage": "index", "done": self.committed, "total": self.expected})
        self._maybe_done()

    def fail(self, error: CodeweirError) -> None:
        """End the sync with `error`; its files still queued are dropped."""
        self.error = self.error or error
        self.cancelled = True
        self.done.set()


@attrs.frozen
class FileTask:
    tracker: SyncTracker
    repo: RepoConfig
    file: git.TrackedFile


@attrs.frozen
class WriteFile:
    tracker: SyncTracker
    record: FileRecord


@attrs.frozen
class DeleteFile:
    tracker: SyncTracker
    repo: str
    path: str
    reason: str = "deleted"  # or "vanished": gone from the worktree between scan and read


@attrs.frozen
class DeleteRepo:
    tracker: SyncTracker
    repo: str


@attrs.frozen
class FinishRebuild:
    """The rebuilt index holds every repository: searches switch to it (Store.finish_rebuild)."""

    tracker: SyncTracker


@attrs.frozen
class WriteCommits:
    tracker: SyncTracker
    repo: str
    commits: tuple[CommitRecord, ...]


@attrs.frozen
class DeleteCommits:
    tracker: SyncTracker
    repo: str


@attrs.frozen
class SetRepoMeta:
    tracker: SyncTracker
    repo: str
    meta: dict = attrs.field(hash=False)


Write = WriteFile | DeleteFile | DeleteRepo | FinishRebuild | WriteCommits | DeleteCommits | SetRepoMeta


def background_workers():
    """The scope of the parse stages' worker processes, which run at background CPU priority:
    enter it before opening the nursery the parse stages run in."""
    return trio_parallel.cache_scope(init=lower_cpu_priority)


async def parse_stage(
    files: trio.MemoryReceiveChannel[FileTask],
    writes: trio.MemorySendChannel[Write],
    *,
    in_flight: trio.CapacityLimiter,
    workers: trio.CapacityLimiter,
    max_bytes: int,
    timeout: float = PARSE_TIMEOUT_SECONDS,
) -> None:
    """One of the N parse tasks: files in, parsed records out, until `files` closes."""
    async with files, writes:
        async for task in files:
            if task.tracker.cancelled:
                task.tracker.settle()
                continue
            async with in_flight, workers:
                try:
                    # A worker is held already, so the timeout counts this file's work alone.
                    with trio.move_on_after(timeout) as deadline:
                        record = await trio_parallel.run_sync(
                            parse_file, task.repo, task.file, max_bytes,
                            limiter=trio.CapacityLimiter(1), kill_on_cancel=True,
                        )
                    if deadline.cancelled_caught:
                        record = _failed(task, f"reading and chunking it took over {timeout:g} s: given up")
                except trio_parallel.BrokenWorkerError:  # killed, or out of memory; the next file gets a new one
                    record = _failed(task, "the worker reading and chunking it died")
                except RepoError as exc:
                    task.tracker.fail(exc)
                    continue
            if task.tracker.cancelled:  # cancelled while it parsed: a removed repository stays removed
                task.tracker.settle()
                continue
            if record is None:
                await writes.send(DeleteFile(task.tracker, task.repo.name, task.file.path, reason="vanished"))
            else:
                await writes.send(WriteFile(task.tracker, record))


def _failed(task: FileTask, error: str) -> FileRecord:
    return FileRecord(task.repo.name, task.file.path, task.file.blob, "", (), (), status="error", error=error)


async def writer_stage(
    writes: trio.MemoryReceiveChannel[Write],
    store: Store,
    *,
    store_limiter: trio.CapacityLimiter,
    limits: Limits,
    on_written: Callable[[list[Write]], None] | None = None,
    task_status=trio.TASK_STATUS_IGNORED,
) -> None:
    """The only task that writes the index. Commits every K files or T seconds, at the end
    of each sync, and (shielded, with a deadline) on shutdown. `on_written` sees each batch
    of applied writes (the embed backlog takes their chunks and commit messages; it must not block)."""
    uncommitted: Counter[SyncTracker] = Counter()
    first_uncommitted = math.inf
    task_status.started()

    async def commit() -> None:
        nonlocal first_uncommitted
        if not uncommitted:
            return
        batch = dict(uncommitted)
        uncommitted.clear()
        first_uncommitted = math.inf
        try:
            await trio.to_thread.run_sync(store.commit, limiter=store_limiter)
        except StoreError as exc:
            log.error("%s", exc)
            for tracker in batch:
                tracker.fail(exc)
            return
        for tracker, n in batch.items():
            tracker.on_commit(n)

    def apply(items: list[Write]) -> None:
        for item in items:
            if isinstance(item, WriteFile):
                store.write_file(item.record)
                item.tracker.statuses[item.record.status] += 1
            elif isinstance(item, DeleteFile):
                store.delete_file(item.repo, item.path)
                item.tracker.statuses[item.reason] += 1
            elif isinstance(item, DeleteRepo):
                store.delete_repo(item.repo)
            elif isinstance(item, WriteCommits):
                store.write_commits(item.repo, item.commits)
            elif isinstance(item, DeleteCommits):
                store.delete_commits(item.repo)
            elif isinstance(item, SetRepoMeta):
                store.set_repo_meta(item.repo, item.meta)
            else:
                store.finish_rebuild()

    try:
        async with writes:
            while True:
                items: list[Write] = []
                # Only the wait for work times out. A deadline passing later, at the store
                # limiter, would drop a batch already received and leave its sync waiting forever.
                with trio.move_on_at(first_uncommitted + limits.commit_every_seconds):
                    try:
                        items.append(await writes.receive())
                    except trio.EndOfChannel:
                        break
                if items:
                    while len(items) < 256:
                        try:
                            items.append(writes.receive_nowait())
                        except (trio.WouldBlock, trio.EndOfChannel):
                            break
                    try:
                        await trio.to_thread.run_sync(apply, items, limiter=store_limiter)
                    except StoreError as exc:
                        log.error("%s", exc)
                        await trio.to_thread.run_sync(store.rollback, limiter=store_limiter)
                        for tracker in {i.tracker for i in items} | set(uncommitted):
                            tracker.fail(exc)
                        uncommitted.clear()
                        first_uncommitted = math.inf
                        continue
                    for item in items:
                        item.tracker.written += 1
                        uncommitted[item.tracker] += 1
                    if on_written is not None:
                        on_written(items)
                    first_uncommitted = min(first_uncommitted, trio.current_time())
                sync_finished = any(t.written >= t.expected for t in uncommitted)
                if (
                    sync_finished
                    or sum(uncommitted.values()) >= limits.commit_every_files
                    or trio.current_time() >= first_uncommitted + limits.commit_every_seconds
                ):
                    await commit()
    finally:
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + 10
            await commit()


# -- one sync ----------------------------------------------------------------------------------


@attrs.frozen
class SyncResult:
    total: int  # files in the snapshot
    indexed: int
    deleted: int
    unchanged: int
    statuses: dict[str, int]
    skipped: dict[str, int]  # by the scan: too_large, symlink, submodule, excluded
    head: str
    commits: int = 0  # new commits indexed


async def sync_repository(
    repo: RepoConfig,
    *,
    store: Store,
    files: trio.MemorySendChannel[FileTask],
    writes: trio.MemorySendChannel[Write],
    git_limiter: trio.CapacityLimiter,
    max_bytes: int,
    report: Report,
    full: bool = False,
    paths: frozenset[str] | None = None,
) -> SyncResult:
    """Scan, plan, feed the shared stages and wait until every planned file is committed."""
    report({"stage": "scan", "done": 0, "total": None})
    snapshot = await trio.to_thread.run_sync(git.scan, repo, max_bytes, paths, limiter=git_limiter)
    plan = plan_sync(store.file_blobs(repo.name), snapshot.files, full=full, only_paths=paths)
    report({"stage": "scan", "done": len(snapshot.files), "total": len(snapshot.files)})
    tracker = SyncTracker(repo.name, len(plan.index) + len(plan.delete), report)
    report({"stage": "index", "done": 0, "total": tracker.expected})
    if tracker.expected:
        try:
            for path in plan.delete:
                await writes.send(DeleteFile(tracker, repo.name, path))
            for file in plan.index:
                await files.send(FileTask(tracker, repo, file))
            await tracker.done.wait()
        except BaseException:
            tracker.cancelled = True
            raise
    if tracker.error:
        raise tracker.error
    new_commits = 0
    if paths is None:
        new_commits = await index_commits(repo, store=store, writes=writes, git_limiter=git_limiter, report=report)
    return SyncResult(
        total=len(snapshot.files),
        indexed=len(plan.index),
        deleted=len(plan.delete),
        unchanged=plan.unchanged,
        statuses=dict(tracker.statuses),
        skipped=dict(snapshot.skipped),
        head=snapshot.head,
        commits=new_commits,
    )


async def index_commits(
    repo: RepoConfig,
    *,
    store: Store,
    writes: trio.MemorySendChannel[Write],
    git_limiter: trio.CapacityLimiter,
    report: Report,
) -> int:
    """Index the commits made since the last walk, a batch at a time; returns how many.

    The tip walked from is recorded (in the repository's meta document) after the last batch,
    so an interrupted walk is simply done again: commits are replaced by sha.
    """
    meta = await trio.to_thread.run_sync(store.repo_meta, repo.name)
    indexed_tip = meta.get(commits.META_KEY)
    plan = await trio.to_thread.run_sync(commits.plan_walk, repo, indexed_tip, limiter=git_limiter)
    if not plan.head or plan.head == indexed_tip:
        return 0
    # One item is always outstanding (the meta), so the writer never sees this done early.
    tracker = SyncTracker(repo.name, 1, report=lambda event: None)
    walked = 0
    try:
        if plan.rewritten:
            tracker.expected += 1
            await writes.send(DeleteCommits(tracker, repo.name))
        batches = commits.walk_commits(repo, plan.head, plan.since)
        while batch := await trio.to_thread.run_sync(next, batches, None, limiter=git_limiter):
            tracker.expected += 1
            await writes.send(WriteCommits(tracker, repo.name, tuple(batch)))
            walked += len(batch)
            report({"stage": "commits", "done": walked, "total": None})
        await writes.send(SetRepoMeta(tracker, repo.name, {**meta, commits.META_KEY: plan.head}))
        await tracker.done.wait()
    except BaseException:
        tracker.cancelled = True
        raise
    if tracker.error:
        raise tracker.error
    return walked
