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

import attrs
import trio
import trio_parallel

from codeweir.config import RepoConfig
from codeweir.errors import RepoError
from codeweir.git import history
from codeweir.git import scan as git
from codeweir.host.priority import lower_cpu_priority
from codeweir.index.store import Store
from codeweir.index.writes import (
    DeleteCommits,
    DeleteFile,
    Report,
    SetRepoMeta,
    SyncTracker,
    Write,
    WriteCommits,
    WriteFile,
    ignore,
    write_and_wait,
)
from codeweir.ingest.parse import parse_file
from codeweir.ingest.plan import plan_sync
from codeweir.records import FileRecord, TrackedFile

log = logging.getLogger(__name__)

# A file that takes longer is given up on and its worker killed: libgit2 spins forever on a
# truncated loose object, and a parser may on a pathological input.
PARSE_TIMEOUT_SECONDS = 60.0


@attrs.frozen
class FileTask:
    tracker: SyncTracker
    repo: RepoConfig
    file: TrackedFile


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
                            parse_file,
                            task.repo,
                            task.file,
                            max_bytes,
                            limiter=trio.CapacityLimiter(1),
                            kill_on_cancel=True,
                        )
                    if deadline.cancelled_caught:
                        record = _failed(task, f"reading and chunking it took over {timeout:g} s: given up")
                except trio_parallel.BrokenWorkerError:  # killed, or out of memory; the next file gets a new one
                    record = _failed(task, "the worker reading and chunking it died")
                except RepoError as exc:
                    task.tracker.fail(exc)
                    continue
                except Exception as exc:  # parse_file translates every error; should one still cross, it costs this file
                    log.error("parsing %s/%s failed in its worker: %r", task.repo.name, task.file.path, exc)
                    record = _failed(task, f"its worker failed: {type(exc).__name__}: {exc}")
            if task.tracker.cancelled:  # cancelled while it parsed: a removed repository stays removed
                task.tracker.settle()
                continue
            if record is None:
                await writes.send(DeleteFile(task.tracker, task.repo.name, task.file.path, reason="vanished"))
            else:
                await writes.send(WriteFile(task.tracker, record))


def _failed(task: FileTask, error: str) -> FileRecord:
    error = error.encode("utf-8", "backslashreplace").decode("utf-8")  # the index stores UTF-8 only
    return FileRecord(task.repo.name, task.file.path, task.file.blob, "", (), (), status="error", error=error)


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
    interactive: bool = False,
) -> SyncResult:
    """Scan, plan, feed the shared stages and wait until every planned file is committed.
    `interactive` (a watcher's or hook's sync) puts its chunks first in the embed backlog."""
    report({"stage": "scan", "done": 0, "total": None})
    snapshot = await trio.to_thread.run_sync(git.scan, repo, max_bytes, paths, limiter=git_limiter)
    generation = store.generation  # before what the index holds is read: see SyncTracker.generation
    plan = plan_sync(store.file_blobs(repo.name), snapshot.files, full=full, only_paths=paths)
    report({"stage": "scan", "done": len(snapshot.files), "total": len(snapshot.files)})
    tracker = SyncTracker(repo.name, len(plan.index) + len(plan.delete), report, interactive=interactive, generation=generation)
    report({"stage": "index", "done": 0, "total": tracker.expected})

    async def send() -> None:
        for path in plan.delete:
            await writes.send(DeleteFile(tracker, repo.name, path))
        for file in plan.index:
            await files.send(FileTask(tracker, repo, file))

    if tracker.expected:
        await write_and_wait(tracker, send)
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
    generation = store.generation  # before what the index holds is read: see SyncTracker.generation
    meta = await trio.to_thread.run_sync(store.repo_meta, repo.name)
    indexed_tip = meta.get(history.META_KEY)
    plan = await trio.to_thread.run_sync(history.plan_walk, repo, indexed_tip, limiter=git_limiter)
    if not plan.head or plan.head == indexed_tip:
        return 0
    # One item is always outstanding (the meta), so the writer never sees this done early.
    tracker = SyncTracker(repo.name, 1, report=ignore, generation=generation)
    walked = 0

    async def send() -> None:
        nonlocal walked
        if plan.rewritten:
            tracker.expected += 1
            await writes.send(DeleteCommits(tracker, repo.name))
        batches = history.walk_commits(repo, plan.head, plan.since)
        while batch := await trio.to_thread.run_sync(next, batches, None, limiter=git_limiter):
            if tracker.cancelled:  # a batch failed to be written: the walk is done again next time
                return
            tracker.expected += 1
            await writes.send(WriteCommits(tracker, repo.name, tuple(batch)))
            walked += len(batch)
            report({"stage": "commits", "done": walked, "total": None})
        # The writer drops it if any batch failed: the tip walked from is recorded only once
        # every commit up to it is in the index.
        await writes.send(SetRepoMeta(tracker, repo.name, {**meta, history.META_KEY: plan.head}))

    await write_and_wait(tracker, send)
    return walked
