"""The shared writer stage: every write it receives reaches the index, whatever the timing."""

from functools import partial

import trio
from trio.testing import wait_all_tasks_blocked

from codeweir.config import Limits
from codeweir.index.store import Store
from codeweir.index.writes import SyncTracker, WriteFile, writer_stage
from codeweir.records import FileRecord


def record(path: str) -> FileRecord:
    return FileRecord("r", path, f"blob-{path}", "text", (), ())


async def test_a_write_waiting_for_the_store_as_the_commit_deadline_passes_is_still_written(tmp_path, mock_clock):
    store = Store(tmp_path / "index")
    store_limiter = trio.CapacityLimiter(1)
    send, receive = trio.open_memory_channel(8)
    tracker = SyncTracker("r", 2, report=lambda event: None)
    async with trio.open_nursery() as nursery:
        await nursery.start(
            partial(writer_stage, receive, store, store_limiter=store_limiter, limits=Limits(commit_every_seconds=1))
        )
        await send.send(WriteFile(tracker, record("a.txt")))
        await wait_all_tasks_blocked()
        # Holding the store: a.txt is written (not committed) and b.txt waits for the store
        # while the commit deadline passes.
        async with store_limiter:
            await send.send(WriteFile(tracker, record("b.txt")))
            await wait_all_tasks_blocked()
            mock_clock.jump(5)
            await wait_all_tasks_blocked()
        send.close()
    assert tracker.committed == 2 and tracker.error is None
    assert store.file_blobs("r") == {"a.txt": "blob-a.txt", "b.txt": "blob-b.txt"}
