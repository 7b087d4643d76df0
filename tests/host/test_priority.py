"""Background work (parse workers, the index writer) runs at a lower CPU priority than searches:
niced, and in Linux's SCHED_IDLE class."""

import contextlib
import os
import threading
from pathlib import Path

import attrs
import pytest
import trio_parallel

from codeweir.host.priority import BACKGROUND_NICENESS, BackgroundThread, start_in_background
from codeweir.index.store import Store
from codeweir.ingest.pipeline import background_workers
from codeweir.records import FileRecord


def niceness() -> int:
    """The calling thread's (Linux keeps one per thread)."""
    return os.getpriority(os.PRIO_PROCESS, 0)


def background() -> int:
    return min(19, niceness() + BACKGROUND_NICENESS)


def idle_class() -> bool:
    """Whether the calling thread is in Linux's SCHED_IDLE class: it runs when nothing else wants the core."""
    return os.sched_getscheduler(0) == os.SCHED_IDLE


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
    assert start_in_background(idle_class)
    assert niceness() == before and not idle_class()  # the caller keeps its own priority


def test_a_background_thread_runs_calls_niced_in_one_long_lived_thread():
    thread = BackgroundThread("test")
    before = niceness()
    assert thread.call(niceness) == background() and thread.call(idle_class)
    assert thread.call(threading.get_native_id) == thread.call(threading.get_native_id)
    assert thread.call(divmod, 7, 2) == (3, 1)
    assert niceness() == before


def test_a_background_thread_raises_the_calls_error_in_the_caller():
    with pytest.raises(ZeroDivisionError):
        BackgroundThread("test").call(divmod, 1, 0)


async def test_parse_workers_run_niced():
    expected = background()
    async with background_workers():
        assert await trio_parallel.run_sync(niceness) == expected
        assert await trio_parallel.run_sync(idle_class)


@attrs.frozen
class ThreadStat:
    nice: int
    cpu_ticks: int  # user and system time, in clock ticks


def thread_stats() -> dict[int, ThreadStat]:
    """Every thread of this process by id, from /proc/self/task/*/stat (fields 14, 15 and 19)."""
    threads = {}
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):  # a thread that has just ended
            stat = Path(f"/proc/self/task/{tid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()  # from field 3: the name may hold spaces
            threads[int(tid)] = ThreadStat(nice=int(fields[16]), cpu_ticks=int(fields[11]) + int(fields[12]))
    return threads


def started_since(before: dict[int, ThreadStat]) -> dict[int, int]:
    """The threads started since `before` was taken, and their niceness."""
    return {tid: stat.nice for tid, stat in thread_stats().items() if tid not in before}


def test_thread_stats_read_niceness_as_the_kernel_reports_it():
    assert thread_stats()[threading.get_native_id()].nice == niceness()
    assert start_in_background(lambda: thread_stats()[threading.get_native_id()].nice) == background()


def test_the_index_writers_threads_run_niced_and_searches_do_not(tmp_path):
    store = Store(tmp_path / "index")
    opened = thread_stats()
    store.write_file(FileRecord("r", "a.txt", "blob", "text", (), ()))
    store.commit()
    started = started_since(opened)
    assert started and set(started.values()) == {background()}  # indexing and merge threads
    assert niceness() == opened[threading.get_native_id()].nice
    assert store.file_blobs("r") == {"a.txt": "blob"}
