"""Rebuild bookkeeping: which repositories have been synced into an index being rebuilt, and
swapping the rebuilt index in once every configured one has; and healing a damaged index.

An index of other versions is rebuilt beside the old one while searches read the old one; the
writer replaces it when told to (FinishRebuild), which this asks for after the last full sync.

A damaged index is rebuilt the same way (`Healer`): found at open, the store has already set it
aside for an empty one, which the first syncs fill; found while serving (a read that fails, or
the checksum scan run once after start), the writer starts a rebuild (StartRebuild: searches
read it as it grows) and every repository is synced into it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from codeweir.errors import Busy, StoreError
from codeweir.host.priority import start_in_background
from codeweir.index.writes import FinishRebuild, StartRebuild, write_one
from codeweir.service.scheduler import SyncRequest

if TYPE_CHECKING:
    from codeweir.index.store import Store
    from codeweir.service.state import DaemonState

log = logging.getLogger(__name__)


class Rebuild:
    def __init__(self, store: Store, writes: trio.MemorySendChannel) -> None:
        self.store = store
        self.writes = writes
        self.synced: set[str] = set()  # repositories synced into the index being rebuilt

    async def note_synced(self, name: str, configured: Iterable[str], generation: int | None = None) -> None:
        """After a full sync of `name` (planned against the store's `generation`): while the
        index is rebuilt, once every `configured` repository has been synced into the rebuild,
        the writer swaps it in. Until then searches read the old index."""
        store = self.store
        if generation is not None and generation != store.generation:
            return  # planned against an index given up since (see Healer)
        if not store.rebuilding:
            if store.damage is not None:  # a damaged index was replaced by an empty one at start
                self.synced.add(name)
                if set(configured) <= self.synced:
                    log.info("index recovered from the damage found at start: every repository is indexed again")
                    store.damage = None
                    self.synced.clear()
            return
        self.synced.add(name)
        if not set(configured) <= self.synced:
            return
        try:
            await write_one(self.writes, name, FinishRebuild)
        except StoreError as exc:  # the old index still serves; the next sync tries again
            log.error("the rebuilt index could not replace the old one: %s", exc)
        else:
            self.synced.clear()


class Healer:
    """Has the index rebuilt when it is found damaged while the daemon serves: reports come from
    any thread (`Store.on_damage`), and from a checksum scan of the whole index once after start
    (`Store.verify`: a garbled block Tantivy's open did not notice). One rebuild at a time; a
    report about an index already given up is dropped."""

    def __init__(self, state: DaemonState, rebuild: Rebuild) -> None:
        self.state = state
        self.rebuild = rebuild
        # (directory, why, the store's generation when it was found)
        self._send, self._reports = trio.open_memory_channel[tuple[Path, str, int]](16)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        store = self.state.store
        token = trio.lowlevel.current_trio_token()

        def on_damage(directory: Path, reason: str) -> None:
            try:
                token.run_sync_soon(self._report, directory, reason, store.generation)
            except trio.RunFinishedError:
                pass  # the daemon has stopped

        store.on_damage = on_damage
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._verify)
                task_status.started()
                async for directory, reason, generation in self._reports:
                    # Else about an index given up since (a report a rebuild already answered).
                    if generation == store.generation and directory in (store.read_directory, store.written_directory):
                        await self._heal(directory, reason)
        finally:
            store.on_damage = None

    def _report(self, directory: Path, reason: str, generation: int) -> None:
        try:
            self._send.send_nowait((directory, reason, generation))
        except trio.WouldBlock:
            pass  # reports enough are queued: one of them starts the rebuild

    async def _verify(self) -> None:
        store = self.state.store
        generation = store.generation
        found = await trio.to_thread.run_sync(start_in_background, store.verify, abandon_on_cancel=True)
        if found is not None:
            directory, problem = found
            self._report(directory, f"the checksum scan found {problem}", generation)

    async def _heal(self, directory: Path, reason: str) -> None:
        state = self.state
        log.error(
            "the index in %s is damaged (%s): rebuilding it from the repositories in the background; "
            "searches answer from what it holds meanwhile",
            directory,
            reason,
        )
        try:
            await write_one(state.stages.writes, "", lambda tracker: StartRebuild(tracker, reason, directory))
        except StoreError as exc:
            log.error("the damaged index cannot be rebuilt now: %s", exc)
            return
        self.rebuild.synced.clear()
        # A sync running now plans again if it writes to the new index (IndexGivenUp); one that
        # has written all it had to the damaged one is done again by this.
        for name in sorted(state.configured()):
            try:
                state.runner.submit(SyncRequest(name))
            except Busy as exc:
                log.warning("%s is not synced into the rebuilt index yet: %s", name, exc)
