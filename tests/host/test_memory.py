import subprocess
import sys

import pytest

from codeweir.host import memory

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
