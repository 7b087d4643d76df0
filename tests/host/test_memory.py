import hashlib
import mmap
import subprocess
import sys

import pytest

from codeweir.host import memory
from tests.resident import resident_kib

pytestmark = pytest.mark.skipif(memory._LIBC is None, reason="glibc only")

# Four threads allocate at the same time, then glibc reports its arenas on stderr.
_PROGRAM = """
import ctypes, sys, threading
from codeweir.host import memory
if sys.argv[1] == "one":
    assert memory.use_one_arena()
barrier = threading.Barrier(4)
def allocate():
    barrier.wait()
    blocks = [bytearray(100_000) for _ in range(20)]
    barrier.wait()
threads = [threading.Thread(target=allocate) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
memory._LIBC.malloc_stats()
"""


def _arenas(mode: str) -> int:
    stderr = subprocess.run([sys.executable, "-c", _PROGRAM, mode], capture_output=True, text=True, check=True).stderr
    return stderr.count("Arena ")


def test_after_use_one_arena_every_thread_allocates_from_the_main_arena() -> None:
    assert _arenas("default") > 1
    assert _arenas("one") == 1


_FRAGMENTED = """
from pathlib import Path
from codeweir.host import memory
def anon_kib():
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("RssAnon:"))
    return int(line.split()[1])
blocks = [bytearray(1000) for _ in range(50_000)]
kept = blocks[::100]  # live blocks all through the heap: glibc cannot just lower its top
del blocks
before = anon_kib()
memory.release_free_memory()
print(before - anon_kib())
"""


def test_release_free_memory_returns_free_pages_in_the_middle_of_the_heap() -> None:
    freed_kib = int(subprocess.run([sys.executable, "-c", _FRAGMENTED], capture_output=True, text=True, check=True).stdout)
    assert freed_kib > 20_000  # of about 48 MiB freed


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise and /proc are Linux's")
def test_the_read_pages_of_a_file_mapped_beneath_a_directory_leave_the_rss_and_read_back_the_same(tmp_path):
    path = tmp_path / "segment.idx"
    data = bytes(range(256)) * (16 << 12)  # 16 MiB
    path.write_bytes(data)
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        assert hashlib.md5(mapped).digest() == hashlib.md5(data).digest()  # every page read
        assert resident_kib(tmp_path) > 8 << 10
        assert memory.release_mapped_pages(tmp_path / "elsewhere") == 0 and resident_kib(tmp_path) > 8 << 10
        assert memory.release_mapped_pages(tmp_path) == len(data)
        assert resident_kib(tmp_path) == 0
        assert mapped[len(data) // 2 : len(data) // 2 + 256] == bytes(range(256))


def test_release_cadence_looks_often_while_commits_come_and_settles_back_at_rest() -> None:
    cadence = memory.ReleaseCadence(writing_s=0.05, resting_s=2.0, settle_s=30.0)
    assert cadence.interval(commits=0, now=100.0) == 2.0  # no commit yet: at rest
    assert cadence.interval(commits=1, now=100.0) == 0.05
    assert cadence.interval(commits=1, now=129.9) == 0.05  # merges may still run
    assert cadence.interval(commits=1, now=130.0) == 2.0
    assert cadence.interval(commits=3, now=200.0) == 0.05  # any new commit, however many
    assert cadence.interval(commits=3, now=231.0) == 2.0


def test_release_cadence_releases_once_the_mapped_pages_grew_past_its_bound_since_the_last_release() -> None:
    cadence = memory.ReleaseCadence(grown_bytes=32 << 20)
    cadence.released(50 << 20)
    assert not cadence.due(82 << 20)
    assert cadence.due(83 << 20)
    cadence.released(52 << 20)
    assert not cadence.due(83 << 20) and cadence.due(85 << 20)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_mapped_resident_bytes_counts_the_pages_of_a_mapped_file_read(tmp_path):
    path = tmp_path / "segment.idx"
    path.write_bytes(bytes(range(256)) * (16 << 12))  # 16 MiB
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        before = memory.mapped_resident_bytes()
        hashlib.md5(mapped).digest()  # every page read
        assert memory.mapped_resident_bytes() - before >= 15 << 20
        memory.release_mapped_pages(tmp_path)
        assert memory.mapped_resident_bytes() - before < 1 << 20
