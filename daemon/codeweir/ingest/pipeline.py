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
from collections import deque
from typing import TYPE_CHECKING

import attrs
import trio
import trio_parallel

from codeweir.config import RepoConfig
from codeweir.errors import RepoError
from codeweir.git import history
from codeweir.git import repo as git_repo
from codeweir.git import scan as git
from codeweir.host.priority import lower_cpu_priority
from codeweir.index.membership import MAIN, VIEWS_KEY
from codeweir.index.writes import (
    AdoptFiles,
    DeleteCommits,
    DeleteDrafts,
    DeleteFile,
    Report,
    SetRepoMeta,
    SyncTracker,
    Write,
    WriteCommits,
    WriteDrafts,
    WriteFile,
    ignore,
    write_and_wait,
    write_one,
)
from codeweir.ingest.drafts import draft_batches
from codeweir.ingest.parse import parse_files, read_drafts
from codeweir.ingest.plan import Version, plan_views
from codeweir.records import FileRecord, TrackedFile

if TYPE_CHECKING:
    from codeweir.index.store import Store

log = logging.getLogger(__name__)

# A file that takes longer is given up on and its worker killed: libgit2 spins forever on a
# truncated loose object, and a parser may on a pathological input.
PARSE_TIMEOUT_SECONDS = 60.0
# Files handed to a worker in one call. Each call costs the event loop a round trip (the job
# pickled, pipes written and read, the worker checked alive) and leaves the worker idle
# meanwhile: a full index of go-std took 4.5-4.9 CPU s of the loop one file a call, 2.3-2.5 at
# 8. The bytes bound keeps short the unpickling of a call's records, which the loop does at once
# (go-std's calls: p99 1 ms at 8 files / 256 KiB, 3 ms at 16 / 512 KiB).
PARSE_BATCH_FILES = 8
PARSE_BATCH_BYTES = 256 << 10


@attrs.frozen
class FileTask:
    tracker: SyncTracker
    repo: RepoConfig  # the view it is read from: `ref` set for a ref's
    file: TrackedFile
    views: tuple[str, ...] = (MAIN,)  # the views that hold it once written


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
    """One of the N parse tasks: files in, parsed records out, until `files` closes. It takes
    the files waiting in the channel with the one it receives, up to a batch (`_batch`), and
    hands them to a worker in one call."""
    async with files, writes:
        async for task in files:
            batch = []
            for each in _batch(files, task):
                if each.tracker.cancelled:
                    each.tracker.settle()
                else:
                    batch.append(each)
            if not batch:
                continue
            async with in_flight, workers:
                outcomes = await _parse(batch, max_bytes, timeout)
            for task, outcome in zip(batch, outcomes, strict=True):
                if task.tracker.cancelled:  # cancelled while it parsed: a removed repository stays removed
                    task.tracker.settle()
                elif isinstance(outcome, RepoError):
                    task.tracker.fail(outcome)
                elif outcome is None:  # only a worktree's file vanishes, and only the main view reads one
                    await writes.send(DeleteFile(task.tracker, task.repo.name, task.file.path, reason="vanished"))
                else:
                    # The scan's own path and blob strings, not the worker's copies: the views keep
                    # them for every file, and the scan's listing holds them already (the kernel's
                    # 78,000 files: 13 MiB less).
                    record = attrs.evolve(outcome, path=task.file.path, blob=task.file.blob)
                    await writes.send(WriteFile(task.tracker, record, task.views))


def _batch(files: trio.MemoryReceiveChannel[FileTask], first: FileTask) -> list[FileTask]:
    """`first`, and the files waiting behind it up to PARSE_BATCH_FILES files or PARSE_BATCH_BYTES."""
    batch, size = [first], first.file.size
    while len(batch) < PARSE_BATCH_FILES and size < PARSE_BATCH_BYTES:
        try:
            task = files.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel):
            break
        batch.append(task)
        size += task.file.size
    return batch


async def _parse(batch: list[FileTask], max_bytes: int, timeout: float) -> list[FileRecord | RepoError | None]:
    """What each file of `batch` came to, from one call to a worker. A call that takes over
    `timeout` or whose worker dies is made again file by file, so only the file at fault is lost."""
    try:
        # A worker is held already, so the timeout counts this batch's work alone.
        with trio.move_on_after(timeout):
            return await trio_parallel.run_sync(
                parse_files,
                [(task.repo, task.file) for task in batch],
                max_bytes,
                limiter=trio.CapacityLimiter(1),
                kill_on_cancel=True,
            )
        failure = f"reading and chunking it took over {timeout:g} s: given up"
    except trio_parallel.BrokenWorkerError:  # killed, or out of memory; the next call gets a new one
        failure = "the worker reading and chunking it died"
    except Exception as exc:  # parse_files translates every error; should one still cross, it costs this file
        log.error("parsing %s/%s failed in its worker: %r", batch[0].repo.name, batch[0].file.path, exc)
        failure = f"its worker failed: {type(exc).__name__}: {exc}"
    if len(batch) == 1:
        return [_failed(batch[0], failure)]
    return [outcome for task in batch for outcome in await _parse([task], max_bytes, timeout)]


def _failed(task: FileTask, error: str) -> FileRecord:
    error = error.encode("utf-8", "backslashreplace").decode("utf-8")  # the index stores UTF-8 only
    return FileRecord(task.repo.name, task.file.path, task.file.blob, "", (), (), status="error", error=error)


# -- one sync ----------------------------------------------------------------------------------


@attrs.frozen
class SyncResult:
    total: int  # files in the main view's snapshot
    indexed: int  # file versions parsed
    deleted: int  # (view, path) pairs gone
    unchanged: int
    statuses: dict[str, int]
    skipped: dict[str, int]  # by the main view's scan: too_large, symlink, submodule, excluded
    head: str
    commits: int = 0  # new commits indexed
    shared: int = 0  # (view, path) pairs that took a version indexed already: not parsed
    drafted: int = 0  # versions written as drafts first (ingest/drafts.py)
    views: dict[str, str] = attrs.field(factory=dict)  # ref view -> its commit
    unmatched: tuple[str, ...] = ()  # `refs` patterns that named no ref


ADOPT_BATCH = 500  # paths per AdoptFiles message


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
    draft_min_files: int | None = None,
) -> SyncResult:
    """Scan every view (the worktree, or the configured ref, and each ref `repo.refs` names),
    plan, feed the shared stages and wait until every planned write is committed. A partial
    sync (`paths`: a watcher's changes) looks at the main view alone. `interactive` (a
    watcher's or hook's sync) puts its chunks first in the embed backlog. With
    `draft_min_files` or more versions to parse, the main view's are written as drafts first."""
    report({"stage": "scan", "done": 0, "total": None})
    refs, unmatched = (
        ({}, ()) if paths is not None else await trio.to_thread.run_sync(git_repo.resolve_views, repo, limiter=git_limiter)
    )
    readers = {MAIN: repo} | {view: attrs.evolve(repo, ref=ref, refs=()) for view, ref in refs.items()}
    snapshots = {}
    for view, reader in readers.items():
        snapshots[view] = await trio.to_thread.run_sync(git.scan, reader, max_bytes, paths, limiter=git_limiter)
    generation = store.generation  # before what the index holds is read: see SyncTracker.generation
    current = {view: snapshot.files for view, snapshot in snapshots.items()}
    indexed = {view: store.file_blobs(repo.name, view) for view in store.membership.views(repo.name)}
    if paths is None:  # a ref no longer named (deleted, or no longer matching): its view goes
        current |= {view: () for view in indexed if view not in current}
    plan = plan_views(indexed, current, full=full, only_paths=paths)
    scanned = sum(len(files) for files in current.values())
    report({"stage": "scan", "done": scanned, "total": scanned})
    heads = {view: snapshot.head for view, snapshot in snapshots.items()}
    total, skipped = len(snapshots[MAIN].files), dict(snapshots[MAIN].skipped)
    # Each planned version goes once it is sent: the kernel's 78,000 held 12 MiB through a whole
    # first sync. (The scan keeps its listing, for the next rescan: see git/scan.py.)
    parsed, unchanged, leave = len(plan.parse), plan.unchanged, plan.leave
    to_parse = deque(plan.parse)
    del snapshots, current
    drafted = 0
    if draft_min_files is not None and parsed >= draft_min_files:
        drafted = await write_drafts(
            repo.name,
            [version for version in to_parse if MAIN in version.views],
            readers,
            writes=writes,
            git_limiter=git_limiter,
            max_bytes=max_bytes,
            report=report,
            generation=generation,
        )
    adopted = sum(len(files) for _, files in plan.adopt)
    batches = [(view, files[i : i + ADOPT_BATCH]) for view, files in plan.adopt for i in range(0, len(files), ADOPT_BATCH)]
    del plan
    expected = len(batches) + parsed + len(leave)
    tracker = SyncTracker(repo.name, expected, report, interactive=interactive, generation=generation)
    report({"stage": "index", "done": 0, "total": tracker.expected})

    async def send() -> None:
        # Views adopt versions before any view lets one go: a version leaves the index only
        # when no view holds it, and one adopted here is never dropped in between.
        for view, batch in batches:
            await writes.send(AdoptFiles(tracker, repo.name, view, batch))
        while to_parse:
            version = to_parse.popleft()
            await files.send(FileTask(tracker, readers[version.read_from], version.file, version.views))
        for view, path in leave:
            await writes.send(DeleteFile(tracker, repo.name, path, view=view))

    if tracker.expected:
        await write_and_wait(tracker, send)
    new_commits = 0
    if paths is None:
        # Drafts whose versions were written went in that commit; what is left (a file changed
        # since, a sync cut short before) goes now.
        if await trio.to_thread.run_sync(store.has_drafts, repo.name):
            await write_one(writes, repo.name, lambda tracker: DeleteDrafts(tracker, repo.name))
        for view, reader in readers.items():
            new_commits += await index_commits(
                reader, store=store, writes=writes, git_limiter=git_limiter, report=report, view=view
            )
        meta = await trio.to_thread.run_sync(store.repo_meta, repo.name)
        if meta.get(VIEWS_KEY) != heads:
            await write_one(writes, repo.name, lambda tracker: SetRepoMeta(tracker, repo.name, {**meta, VIEWS_KEY: heads}))
    return SyncResult(
        total=total,
        indexed=parsed,
        deleted=len(leave),
        unchanged=unchanged,
        statuses=dict(tracker.statuses),
        skipped=skipped,
        head=heads[MAIN],
        commits=new_commits,
        shared=adopted,
        drafted=drafted,
        views={view: head for view, head in heads.items() if view != MAIN},
        unmatched=unmatched,
    )


async def write_drafts(
    repo: str,
    versions: list[Version],
    readers: dict[str, RepoConfig],
    *,
    writes: trio.MemorySendChannel[Write],
    git_limiter: trio.CapacityLimiter,
    max_bytes: int,
    report: Report,
    generation: int,
) -> int:
    """Write `versions` as drafts (ingest/drafts.py) and wait until they are committed; returns
    how many files had text to draft."""
    batches: list[tuple[RepoConfig, list[TrackedFile]]] = []
    for read_from in dict.fromkeys(version.read_from for version in versions):
        files = [version.file for version in versions if version.read_from == read_from]
        batches += [(readers[read_from], batch) for batch in draft_batches(files)]
    tracker = SyncTracker(repo, len(batches), ignore, generation=generation)
    drafted = read = 0

    async def send() -> None:
        nonlocal drafted, read
        for reader, batch in batches:
            drafts = await trio.to_thread.run_sync(read_drafts, reader, batch, max_bytes, limiter=git_limiter)
            await writes.send(WriteDrafts(tracker, tuple(drafts)))
            drafted += len(drafts)
            read += len(batch)
            report({"stage": "drafts", "done": read, "total": len(versions)})

    await write_and_wait(tracker, send)
    log.info("%s: %s files searchable by exact and regex search as drafts; chunking them", repo, f"{drafted:,}")
    return drafted


async def index_commits(
    repo: RepoConfig,
    *,
    store: Store,
    writes: trio.MemorySendChannel[Write],
    git_limiter: trio.CapacityLimiter,
    report: Report,
    view: str = MAIN,
) -> int:
    """Index the commits of `view` (`repo` reads it) made since its last walk, a batch at a time;
    returns how many.

    The tip walked from is recorded (in the repository's meta document) after the last batch,
    so an interrupted walk is simply done again: commits are replaced by sha. A ref's walk stops
    at the commits other views' walks reached; a rewritten history drops every view's commits,
    and each view walks again.
    """
    generation = store.generation  # before what the index holds is read: see SyncTracker.generation
    meta = await trio.to_thread.run_sync(store.repo_meta, repo.name)
    key = history.META_KEY if view == MAIN else f"{history.META_KEY}@{view}"
    indexed_tip = meta.get(key)
    plan = await trio.to_thread.run_sync(history.plan_walk, repo, indexed_tip, limiter=git_limiter)
    if not plan.head or plan.head == indexed_tip:
        return 0
    if plan.rewritten:
        meta = {k: v for k, v in meta.items() if not k.startswith(history.META_KEY)}
    walked_elsewhere = tuple(tip for k, tip in meta.items() if k.startswith(history.META_KEY) and k != key)
    # One item is always outstanding (the meta), so the writer never sees this done early.
    tracker = SyncTracker(repo.name, 1, report=ignore, generation=generation)
    walked = 0

    async def send() -> None:
        nonlocal walked
        if plan.rewritten:
            tracker.expected += 1
            await writes.send(DeleteCommits(tracker, repo.name))
        batches = history.walk_commits(repo, plan.head, plan.since, hide=walked_elsewhere)
        while batch := await trio.to_thread.run_sync(next, batches, None, limiter=git_limiter):
            if tracker.cancelled:  # a batch failed to be written: the walk is done again next time
                return
            tracker.expected += 1
            await writes.send(WriteCommits(tracker, repo.name, tuple(batch)))
            walked += len(batch)
            report({"stage": "commits", "done": walked, "total": None})
        # The writer drops it if any batch failed: the tip walked from is recorded only once
        # every commit up to it is in the index.
        await writes.send(SetRepoMeta(tracker, repo.name, {**meta, key: plan.head}))

    await write_and_wait(tracker, send)
    return walked
