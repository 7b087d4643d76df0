"""Background work runs at a lower CPU priority than the daemon's answers to requests.

A full sync keeps the cores busy: the parse workers (tree-sitter) and the index writer's own
threads (indexing, segment merges). At the daemon's priority they take turns with searches, and
on a small machine a search waits behind them. Niced, they yield the CPU whenever a search (or
the user's own work) wants it, and take the rest.

Linux gives each thread its own niceness, and a thread starts with its creator's: lowering it
in a worker process as it starts, or in a short-lived thread that opens the index writer or
commits (tantivy starts its threads there), covers that work and nothing else. Python code in
the daemon stays at its priority: a niced thread holding the GIL would hold up searches.

On Linux such threads are also put in the SCHED_IDLE class, as desktop indexers (tracker, baloo)
run: a search's thread that wakes takes the core from one at once, where a merely niced thread
may first finish its time slice, and it does so at every wake (each time it gets the GIL back).
They take only the time nothing else wants: on go-std a full sync took as long alone, and the
searches made during it waited less.

Some libraries also compute in the thread that calls them (onnxruntime's run does its share of
every parallel section there): such calls go to a long-lived niced thread, while the caller waits
with the GIL released.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

BACKGROUND_NICENESS = 10


def lower_cpu_priority() -> None:
    """Lower the calling thread's CPU priority, and so that of the threads it starts from now on."""
    os.nice(BACKGROUND_NICENESS)
    if hasattr(os, "SCHED_IDLE"):  # Linux: 0 is the calling thread, not the process
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def start_in_background(start: Callable[[], T]) -> T:
    """`start()` in a short-lived thread at background priority: the threads it starts (a
    library's worker pool) keep that priority for their whole life."""
    with ThreadPoolExecutor(1, initializer=lower_cpu_priority) as pool:
        return pool.submit(start).result()


class BackgroundThread:
    """One long-lived thread at background priority that runs the calls handed to it, in turn.

    The thread starts with the first call and ends when this object is garbage collected.
    """

    def __init__(self, name: str) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=name, initializer=lower_cpu_priority)

    def call(self, function: Callable[..., T], *args: object) -> T:
        """`function(*args)` in the background thread; blocks the caller until it returns or raises."""
        return self._pool.submit(function, *args).result()
