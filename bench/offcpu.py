"""What a daemon thread waits on while it is off the CPU, from a recording of the scheduler's switches.

    perf record -o offcpu.data -e sched:sched_switch -g -p DAEMON_PID -- sleep 25
    perf script -i offcpu.data > offcpu.txt
    .venv/bin/python bench/offcpu.py offcpu.txt [--thread _search_index]

Record while `bench_load.py` runs its queries during the full sync (the daemon names a thread
after the function `trio.to_thread` runs in it, so `_search_index` is a search in flight). Each
time such a thread leaves the CPU, the time until it runs again is counted under its cause: the
scheduler's state as it left (R: preempted while runnable, S: asleep) and the first frame of the
process's own stack (`__futex_abstimed_wait_common`: a timed condition wait, which is how
CPython waits for the GIL; `__lll_lock_wait_private`: a lock inside glibc, which with one
malloc arena is the heap's; `__lll_lock_wait`: a pthread mutex). Prints per cause the waits, their
total, and those over 3 ms: the ones that make a p99. perf's own writing competes for the cores,
so runnable waits behind it (printed apart) are the recording's, not the daemon's.
"""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

SWITCH = re.compile(
    r" (\d+\.\d+): sched:sched_switch: prev_comm=(.*?) prev_pid=(\d+) .*prev_state=(\S+) ==> next_comm=(.*?) next_pid=(\d+)"
)
LONG_S = 0.003
KERNEL_PLUMBING = ("__schedule", "schedule", "entry_SYSCALL", "do_syscall")


def switches(lines):
    """(time, thread left, its name, its state, thread entering, its name, [(kernel?, frame)])."""
    current = None
    for line in lines:
        if (m := SWITCH.search(line)) is not None:
            if current is not None:
                yield current
            current = (float(m[1]), int(m[3]), m[2], m[4], int(m[6]), m[5], [])
        elif line.strip() and current is not None:
            address, _, symbol = line.strip().partition(" ")
            current[6].append((address.startswith("ffffffff"), symbol.split("+")[0]))
    if current is not None:
        yield current


def cause(state: str, stack: list[tuple[bool, str]]) -> str:
    user = next((frame for kernel, frame in stack if not kernel), "?")
    kernel = [frame for is_kernel, frame in stack if is_kernel and not frame.startswith(KERNEL_PLUMBING)]
    return f"{state[0]} {user} [{', '.join(kernel[:2])}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("script", type=Path, help="`perf script` output of a sched_switch recording")
    parser.add_argument("--thread", default="_search_index", help="the name (its start) of the threads to follow")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    waits: dict[str, list[float]] = collections.defaultdict(list)
    behind: dict[str, list[float]] = collections.defaultdict(list)  # runnable waits, by who ran first
    left: dict[int, tuple[float, str, str]] = {}
    with args.script.open() as lines:
        for at, prev, prev_name, state, nxt, next_name, stack in switches(lines):
            if prev_name.startswith(args.thread):
                left[prev] = (at, cause(state, stack), next_name if state.startswith("R") else "")
            if (out := left.pop(nxt, None)) is not None:
                waits[out[1]].append(at - out[0])
                if out[2]:
                    behind[out[2]].append(at - out[0])
    print(f"threads named {args.thread}*: waits off the CPU by cause (count, total, over {LONG_S * 1000:.0f} ms, longest)")
    for key, spans in sorted(waits.items(), key=lambda kv: -sum(s for s in kv[1] if s > LONG_S))[: args.top]:
        long = [s for s in spans if s > LONG_S]
        print(
            f"{len(spans):6d} {sum(spans) * 1000:8.1f} ms | {len(long):4d} over, {sum(long) * 1000:7.1f} ms"
            f" | max {max(spans) * 1000:6.1f} ms  {key}"
        )
    print("runnable waits by the thread that ran first:")
    for name, spans in sorted(behind.items(), key=lambda kv: -sum(kv[1]))[:6]:
        print(f"{len(spans):6d} {sum(spans) * 1000:8.1f} ms  {name}")


if __name__ == "__main__":
    main()
