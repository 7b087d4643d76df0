"""The writer's side of the index: the messages every stage sends it, the tracker that tells a
sender when its writes are committed, and the writer task itself, the only IndexWriter.

The writer commits every K files or T seconds, as soon as a sync's last write is applied, and
(shielded, with a deadline) on shutdown. A write or commit that fails (disk full, read-only, a
record the index rejects) fails the syncs it held (StoreError) after a rollback; the writer
itself goes on. A failed or cancelled sync's writes that reach the writer later are dropped, not
applied: its last write, the repository's metadata (`SetRepoMeta`: the commit walked up to),
never claims what an earlier write of the same sync failed to store.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import trio

from codeweir.config import Limits
from codeweir.errors import CodeweirError, StoreError
from codeweir.index.membership import MAIN
from codeweir.records import CommitRecord, Draft, FileRecord

if TYPE_CHECKING:
    from codeweir.index.store import Store

log = logging.getLogger(__name__)

Report = Callable[[dict], None]


def ignore(event: dict) -> None:
    """A Report for writes nobody follows."""


class IndexGivenUp(StoreError):
    """A sync's writes were planned against an index given up since (rebuilt after damage): the
    sync plans again."""


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
    interactive: bool = False  # a watcher's or a hook's sync: its chunks are embedded first
    # The store's generation its writes were planned against (what the index held then): once a
    # rebuild after damage starts (Store.start_rebuild), they are void. None: any generation.
    generation: int | None = None
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
class WriteFile:
    """A file version, parsed, and the views that hold it at its path from now on."""

    tracker: SyncTracker
    record: FileRecord
    views: tuple[str, ...] = (MAIN,)


@attrs.frozen
class WriteDrafts:
    """Versions' whole texts, before their chunks (ingest/drafts.py)."""

    tracker: SyncTracker
    drafts: tuple[Draft, ...]


@attrs.frozen
class DeleteDrafts:
    """The drafts of `repo` left after a sync: their versions are written, or no longer wanted."""

    tracker: SyncTracker
    repo: str


@attrs.frozen
class DeleteFile:
    """A view no longer has a file at `path` (its version goes when no view holds it)."""

    tracker: SyncTracker
    repo: str
    path: str
    reason: str = "deleted"  # or "vanished": gone from the worktree between scan and read
    view: str = MAIN


@attrs.frozen
class AdoptFiles:
    """A view holds versions the index has already, at these paths: nothing is parsed again."""

    tracker: SyncTracker
    repo: str
    view: str
    files: tuple[tuple[str, str], ...]  # (path, blob)


@attrs.frozen
class DeleteRepo:
    tracker: SyncTracker
    repo: str


@attrs.frozen
class FinishRebuild:
    """The rebuilt index holds every repository: searches switch to it (Store.finish_rebuild)."""

    tracker: SyncTracker


@attrs.frozen
class StartRebuild:
    """The index in `damaged` was found damaged: searches read a new index, which every
    repository is synced into again (Store.start_rebuild)."""

    tracker: SyncTracker
    reason: str
    damaged: Path


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


Write = (
    WriteFile
    | WriteDrafts
    | DeleteDrafts
    | DeleteFile
    | AdoptFiles
    | DeleteRepo
    | FinishRebuild
    | StartRebuild
    | WriteCommits
    | DeleteCommits
    | SetRepoMeta
)


async def write_and_wait(tracker: SyncTracker, send: Callable[[], Awaitable[None]]) -> None:
    """Run `send` (which sends `tracker`'s writes), then wait until all of them are committed.

    Raises the error that ended the tracker's writes. Cancelled, the writes still queued are
    dropped; what is already committed stays.
    """
    try:
        await send()
        await tracker.done.wait()
    except BaseException:
        tracker.cancelled = True
        raise
    if tracker.error:
        raise tracker.error


async def write_one(writes: trio.MemorySendChannel[Write], repo: str, make: Callable[[SyncTracker], Write]) -> None:
    """Send one write, made for its own tracker, and wait until it is committed."""
    tracker = SyncTracker(repo, 1, report=ignore)
    await write_and_wait(tracker, lambda: writes.send(make(tracker)))


@attrs.define
class CommitPace:
    """When the writer commits, besides at the end of each sync: once `files` files are written
    or `seconds` have passed since the first uncommitted write. While a long sync keeps writing,
    each commit it makes doubles both, up to STRETCH_MAX times; a sync's end starts them again.

    A commit is a barrier (Tantivy's indexing thread drains, then writes a segment) and each
    segment is merged again later: committing every 250 files, a full index of go-std made 32
    segments and spent a quarter of its time on merges and drained pipelines. Doubling makes a
    first index a few growing segments, while a small sync (a watcher's) still commits at once.
    Whatever the stretch, TEXT_MAX bytes of chunk text are committed: the store keeps each
    uncommitted chunk until the commit (Store._homed_pending), and so the daemon's memory. So
    are DRAFT_TEXT_MAX bytes of drafts' text: Tantivy's queue of documents to index is bounded
    by their count (10,000), not their size, and whole files outrun its indexing thread (the
    kernel's drafts held 880 MiB there).
    """

    files: int
    seconds: float
    stretch: int = 1

    STRETCH_MAX = 32
    TEXT_MAX = 8 << 20
    DRAFT_TEXT_MAX = 16 << 20

    def due(self, uncommitted_files: int, waited: float, text_bytes: int = 0, draft_bytes: int = 0) -> bool:
        return (
            uncommitted_files >= self.files * self.stretch
            or waited >= self.seconds * self.stretch
            or text_bytes >= self.TEXT_MAX
            or draft_bytes >= self.DRAFT_TEXT_MAX
        )

    def deadline(self, first_uncommitted: float) -> float:
        return first_uncommitted + self.seconds * self.stretch

    def committed(self, *, sync_finished: bool) -> None:
        self.stretch = 1 if sync_finished else min(self.stretch * 2, self.STRETCH_MAX)


async def writer_stage(
    writes: trio.MemoryReceiveChannel[Write],
    store: Store,
    *,
    store_limiter: trio.CapacityLimiter,
    limits: Limits,
    on_written: Callable[[list[Write]], None] | None = None,
    on_committed: Callable[[], None] | None = None,
    task_status=trio.TASK_STATUS_IGNORED,
) -> None:
    """The only task that writes the index. Commits at the end of each sync, as `CommitPace`
    says while one runs long, and (shielded, with a deadline) on shutdown. `on_written` sees each batch
    of applied writes before it is committed (the embed backlog takes their chunks and commit
    messages), `on_committed` is told of each commit that succeeded; neither may block."""
    uncommitted: Counter[SyncTracker] = Counter()
    first_uncommitted = math.inf
    uncommitted_text = uncommitted_drafts = 0  # bytes of chunk text, of drafts' text
    pace = CommitPace(limits.commit_every_files, limits.commit_every_seconds)
    task_status.started()

    async def commit() -> None:
        nonlocal first_uncommitted, uncommitted_text, uncommitted_drafts
        if not uncommitted:
            return
        batch = dict(uncommitted)
        uncommitted.clear()
        first_uncommitted, uncommitted_text, uncommitted_drafts = math.inf, 0, 0
        try:
            await trio.to_thread.run_sync(store.commit, limiter=store_limiter)
        except StoreError as exc:
            log.error("%s", exc)
            for tracker in batch:
                tracker.fail(exc)
            return
        if on_committed is not None:
            on_committed()
        for tracker, n in batch.items():
            tracker.on_commit(n)

    def apply(items: list[Write]) -> list[Write]:
        """Apply `items` in order; returns those planned against an index given up since (void)."""
        stale = []
        for item in items:
            if item.tracker.generation not in (None, store.generation):
                stale.append(item)
            elif isinstance(item, WriteFile):
                store.write_file(item.record, item.views)
                item.tracker.statuses[item.record.status] += 1
            elif isinstance(item, WriteDrafts):
                store.write_drafts(item.drafts)
            elif isinstance(item, DeleteDrafts):
                store.delete_drafts(item.repo)
            elif isinstance(item, DeleteFile):
                store.set_member(item.repo, item.view, item.path, None)
                item.tracker.statuses[item.reason] += 1
            elif isinstance(item, AdoptFiles):
                for path, blob in item.files:
                    store.set_member(item.repo, item.view, path, blob)
                item.tracker.statuses["shared"] += len(item.files)
            elif isinstance(item, DeleteRepo):
                store.delete_repo(item.repo)
            elif isinstance(item, WriteCommits):
                store.write_commits(item.repo, item.commits)
            elif isinstance(item, DeleteCommits):
                store.delete_commits(item.repo)
            elif isinstance(item, SetRepoMeta):
                store.set_repo_meta(item.repo, item.meta)
            elif isinstance(item, StartRebuild):
                store.start_rebuild(item.reason, item.damaged)
            else:
                store.finish_rebuild()
        return stale

    try:
        async with writes:
            while True:
                items: list[Write] = []
                # Only the wait for work times out. A deadline passing later, at the store
                # limiter, would drop a batch already received and leave its sync waiting forever.
                with trio.move_on_at(pace.deadline(first_uncommitted)):
                    try:
                        items.append(await writes.receive())
                    except trio.EndOfChannel:
                        break
                if items:
                    # Drafts are taken up to their bound, which is checked between batches.
                    drafted = uncommitted_drafts + _draft_bytes(items[0])
                    while len(items) < 256 and drafted < pace.DRAFT_TEXT_MAX:
                        try:
                            items.append(writes.receive_nowait())
                        except (trio.WouldBlock, trio.EndOfChannel):
                            break
                        drafted += _draft_bytes(items[-1])
                    # A failed or cancelled sync's writes are void: none of them is applied.
                    for void in [i for i in items if i.tracker.cancelled]:
                        void.tracker.settle()
                    items = [i for i in items if not i.tracker.cancelled]
                if items:
                    try:
                        stale = await trio.to_thread.run_sync(apply, items, limiter=store_limiter)
                    except StoreError as exc:
                        log.error("%s", exc)
                        await trio.to_thread.run_sync(store.rollback, limiter=store_limiter)
                        for tracker in {i.tracker for i in items} | set(uncommitted):
                            tracker.fail(exc)
                        uncommitted.clear()
                        first_uncommitted, uncommitted_text, uncommitted_drafts = math.inf, 0, 0
                        continue
                    if stale:
                        given_up = IndexGivenUp(
                            "the index is rebuilt after damage: this sync was planned against the damaged one"
                        )
                        for item in stale:
                            item.tracker.fail(given_up)
                        items = [i for i in items if all(i is not s for s in stale)]
                    for item in items:
                        item.tracker.written += 1
                        uncommitted[item.tracker] += 1
                        if isinstance(item, WriteFile):
                            uncommitted_text += sum(len(chunk.content) for chunk in item.record.chunks)
                        uncommitted_drafts += _draft_bytes(item)
                    if on_written is not None:
                        on_written(items)
                    first_uncommitted = min(first_uncommitted, trio.current_time())
                sync_finished = any(t.written >= t.expected for t in uncommitted)
                if sync_finished or pace.due(
                    sum(uncommitted.values()), trio.current_time() - first_uncommitted, uncommitted_text, uncommitted_drafts
                ):
                    await commit()
                    pace.committed(sync_finished=sync_finished)
    finally:
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + 10
            await commit()


def _draft_bytes(item: Write) -> int:
    return sum(len(draft.text) for draft in item.drafts) if isinstance(item, WriteDrafts) else 0
