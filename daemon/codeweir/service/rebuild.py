"""Rebuild bookkeeping: which repositories have been synced into an index being rebuilt, and
swapping the rebuilt index in once every configured one has.

An index of other versions is rebuilt beside the old one while searches read the old one; the
writer replaces it when told to (FinishRebuild), which this asks for after the last full sync.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import trio

from codeweir.errors import StoreError
from codeweir.index.store import Store
from codeweir.index.writes import FinishRebuild, write_one

log = logging.getLogger(__name__)


class Rebuild:
    def __init__(self, store: Store, writes: trio.MemorySendChannel) -> None:
        self.store = store
        self.writes = writes
        self.synced: set[str] = set()  # repositories synced into the index being rebuilt

    async def note_synced(self, name: str, configured: Iterable[str]) -> None:
        """After a full sync of `name`: while the index is rebuilt, once every `configured`
        repository has been synced into the rebuild, the writer swaps it in. Until then
        searches read the old index."""
        if not self.store.rebuilding:
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
