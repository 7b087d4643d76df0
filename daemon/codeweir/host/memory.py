"""glibc heap settings for a long-running, many-threaded daemon, and the index's mapped pages.

glibc gives each thread that allocates its own arena (up to eight per core) and keeps freed
memory in them. Tantivy's indexing and merge threads and trio's worker threads churn through
short-lived documents, so per-thread arenas hold a sync's high-water mark long after it; one
arena shared by every thread kept the daemon's anonymous memory 20-25% lower while indexing
go-std, at the same indexing time. Elsewhere than glibc these are no-ops.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

import attrs

_M_ARENA_MAX = -8  # mallopt parameter, from glibc's malloc.h
_MADV_DONTNEED = 4  # Linux's


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018  (glibc only: raises AttributeError elsewhere)
    except (OSError, AttributeError):
        return None
    libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    return libc


_LIBC = _libc()


def use_one_arena() -> bool:
    """Make threads started from now on allocate from the main arena; whether it took effect."""
    return _LIBC is not None and _LIBC.mallopt(_M_ARENA_MAX, 1) == 1


def release_free_memory() -> None:
    """Give the free pages of the heap back to the OS (after a commit: building a segment
    allocates and frees many small blocks, which glibc would otherwise keep)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def release_mapped_pages(*directories: Path) -> int:
    """Drop from this process the resident pages of the read-only files it maps beneath
    `directories`; the bytes of those mappings.

    Tantivy reads its segments through mmap, so every page a merge or a search has read counts
    in the daemon's RSS until the kernel wants the memory back: indexing the kernel's source,
    1.1 GiB of it. The pages stay in the page cache, and a later read maps them again (a minor
    fault), so searches lose nothing but what they no longer read. Read-only file mappings
    only: their pages are the file's, never changed here, so nothing is lost. Linux only.
    """
    if _LIBC is None:
        return 0
    prefixes = tuple(os.fsencode(directory) + b"/" for directory in directories)
    advised = 0
    try:
        with open("/proc/self/maps", "rb") as maps:
            lines = maps.read().splitlines()
    except OSError:
        return 0
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or not fields[5].startswith(prefixes) or b"w" in fields[1]:
            continue
        start, end = (int(bound, 16) for bound in fields[0].split(b"-"))
        if _LIBC.madvise(start, end - start, _MADV_DONTNEED) == 0:
            advised += end - start
    return advised


def mapped_resident_bytes() -> int:
    """The resident pages of files this process maps (the index's, the libraries'), in bytes:
    /proc/self/statm, read in microseconds. Linux only; 0 elsewhere."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[2]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


@attrs.define
class ReleaseCadence:
    """When the daemon looks at the mapped pages resident, and when it releases them
    (`release_mapped_pages`), from the index's commits, the clock and what is resident. Pure.

    While the index is written, Tantivy's merges read whole segments through mmap, at up to
    600 MB/s from the page cache on the kernel's source: released every 2 s, the pages of one
    merge took the daemon's RSS from 275 to 615 MiB (380 of them mapped), and every 0.25 s still
    to 463. So for `settle_s` after each commit, while merges may run, it looks every `writing_s`
    (reading statm costs microseconds), else every `resting_s`; it releases once `grown_bytes`
    more are resident than after the last release, so an idle daemon does no more than look.
    The peak of the mapped part is that bound and what a merge reads in one look past it: 16
    MiB, not 32, kept the kernel's first index with the model on (the default) under 512 MiB
    (bench/README.md), at a release (about 1 ms, in a thread) every 30-100 ms of a merge.
    """

    writing_s: float = 0.05
    resting_s: float = 2.0
    settle_s: float = 30.0
    grown_bytes: int = 16 << 20
    _commits: int = 0
    _committed_at: float = float("-inf")
    _floor: int = 0  # resident after the last release

    def interval(self, commits: int, now: float) -> float:
        """How long until it looks again."""
        if commits != self._commits:
            self._commits, self._committed_at = commits, now
        return self.writing_s if now - self._committed_at < self.settle_s else self.resting_s

    def due(self, resident: int) -> bool:
        """Whether to release, with `resident` bytes of mapped pages resident now."""
        return resident - self._floor > self.grown_bytes

    def released(self, resident: int) -> None:
        self._floor = resident
