"""Background work (parse workers, the index writer) runs at a lower CPU priority than searches."""

import os
import threading
from functools import partial

import trio
import trio_parallel

from codeweir.config import Limits
from codeweir.pipeline import SyncTracker, WriteFile, background_workers, writer_stage
from codeweir.priority import BACKGROUND_NICENESS, start_in_background
from codeweir.store import FileRecord, Store


def niceness() -> int:
    """The calling thread's (Linux keeps one per thread)."""
    return os.getpriority(os.PRIO_PROCESS, 0)


def background() -> int:
    return min(19, niceness() + BACKGROUND_NICENESS)


def test_work_started_in_background_runs_niced_and_so_do_the_threads_it_starts():
    def start_a_thread() -> int:
        seen = []
        thread = threading.Thread(target=lambda: seen.append(niceness()))
        thread.start()
        thread.join()
        return seen[0]

    expected, before = background(), niceness()
    assert start_in_background(niceness) == expected
    assert start_in_background(start_a_thread) == expected
    assert niceness() == before  # the caller keeps its own priority


async def test_parse_workers_run_niced():
    expected = background()
    async with background_workers():
        assert await trio_parallel.run_sync(niceness) == expected


class PriorityRecordingStore(Store):
    """A real store that notes the niceness of the threads its writes and commits run in."""

    def __init__(self, directory) -> None:
        super().__init__(directory)
        self.seen: list[int] = []

    def write_file(self, record: FileRecord) -> None:
        self.seen.append(niceness())
        super().write_file(record)

    def commit(self) -> None:
        self.seen.append(niceness())
        super().commit()


async def test_the_writer_stage_writes_and_commits_niced(tmp_path):
    store = PriorityRecordingStore(tmp_path / "index")
    send, receive = trio.open_memory_channel(4)
    tracker = SyncTracker("r", 1, report=lambda event: None)
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(writer_stage, receive, store, store_limiter=trio.CapacityLimiter(1), limits=Limits()))
        async with send:
            await send.send(WriteFile(tracker, FileRecord("r", "a.txt", "blob", "text", (), ())))
            await tracker.done.wait()
    assert store.seen == [background(), background()]
    assert store.file_blobs("r") == {"a.txt": "blob"}
