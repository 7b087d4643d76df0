"""Background work (parse workers, the index writer) runs at a lower CPU priority than searches."""

import contextlib
import os
import threading

import trio_parallel

from codeweir.pipeline import background_workers
from codeweir.priority import BACKGROUND_NICENESS, start_in_background
from codeweir.records import FileRecord
from codeweir.store import Store


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


def thread_niceness() -> dict[int, int]:
    """Every thread of this process: its id and niceness."""
    threads = {}
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):  # a thread that has just ended
            threads[int(tid)] = os.getpriority(os.PRIO_PROCESS, int(tid))
    return threads


def test_the_index_writers_threads_run_niced_and_searches_do_not(tmp_path):
    store = Store(tmp_path / "index")
    opened = thread_niceness()
    store.write_file(FileRecord("r", "a.txt", "blob", "text", (), ()))
    store.commit()
    started = {tid: nice for tid, nice in thread_niceness().items() if tid not in opened}
    assert started and set(started.values()) == {background()}  # indexing and merge threads
    assert niceness() == opened[threading.get_native_id()]
    assert store.file_blobs("r") == {"a.txt": "blob"}
