"""A full index's anonymous memory over time, and what ran before each of its peaks.

    .venv/bin/python bench/bench_memory_trace.py /work/corpora/go-std /work/corpora/linux

Per corpus, a daemon (model off) indexes it in full while its RssAnon and RssFile and each of
its threads' CPU time are read from /proc every 50 ms. Printed: the wall time, the anonymous
peak, the lows and highs of the rise and fall each commit makes (the 10th and 90th percentiles
of the samples), the highest peaks at least 10 s apart with the CPU seconds each kind of thread
(named as Linux shows them: Tantivy's `merge_thread`, its indexing thread, the writer's thread)
took in the 2 s before, and each kind's CPU over the whole index. With several corpora, the
anonymous peaks beside the first corpus's, as a ratio (the goal: 1.3 or less).
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import statistics
import time
from pathlib import Path

from daemon_run import Daemon, corpus, cpu_seconds, indexed, rss_kib

SAMPLE_S = 0.05
BEFORE_S = 2.0  # the window before a peak whose CPU is shown
PEAKS = 6


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """tid -> (its name without digits, its CPU seconds so far)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            name, cpu = cpu_seconds(Path(f"/proc/{pid}/task/{tid}/stat"))
        except OSError:
            continue  # the thread ended
        out[int(tid)] = (name.rstrip("0123456789-_ "), cpu)
    return out


def trace(repo: Path) -> dict:
    """Index `repo` from a fresh state; samples of (t, anon KiB, file KiB, CPU by kind since the last)."""
    with Daemon({repo.name: repo}) as d:
        started = time.perf_counter()
        last: dict[int, tuple[str, float]] = {}
        samples = []
        with d.client() as client:
            while True:
                now = thread_cpu(d.proc.pid)
                spent: collections.Counter[str] = collections.Counter()
                for tid, (name, cpu) in now.items():
                    spent[name] += cpu - last.get(tid, (name, 0.0))[1]
                last = now
                samples.append(
                    (time.perf_counter() - started, rss_kib(d.proc.pid, "RssAnon"), rss_kib(d.proc.pid, "RssFile"), spent)
                )
                if len(samples) % 20 == 0 and indexed(client):
                    break
                time.sleep(SAMPLE_S)
        wall = time.perf_counter() - started
    shutil.rmtree(d.tmp, ignore_errors=True)
    return {"name": repo.name, "wall": wall, "samples": samples}


def report(result: dict) -> int:
    samples = result["samples"]
    anon = [s[1] / 1024 for s in samples]
    deciles = statistics.quantiles(anon, n=10)
    peak = max(anon)
    print(f"== {result['name']}: full index {result['wall']:.1f} s, anonymous peak {peak:.0f} MiB")
    print(f"   rise and fall: low (10th percentile) {deciles[0]:.0f} MiB, high (90th) {deciles[-1]:.0f} MiB")
    shown: list[float] = []
    for i in sorted(range(len(samples)), key=lambda i: -samples[i][1]):
        t = samples[i][0]
        if any(abs(t - other) < 10 for other in shown):
            continue
        shown.append(t)
        before: collections.Counter[str] = collections.Counter()
        for s in samples:
            if t - BEFORE_S < s[0] <= t:
                before.update(s[3])
        busy = ", ".join(f"{name} {cpu:.1f}" for name, cpu in before.most_common() if cpu >= 0.05)
        print(
            f"   peak {samples[i][1] / 1024:.0f} MiB (mapped {samples[i][2] / 1024:.0f}) at {t:.1f} s; CPU s in the {BEFORE_S:.0f} s before: {busy}"
        )
        if len(shown) == PEAKS:
            break
    total: collections.Counter[str] = collections.Counter()
    for s in samples:
        total.update(s[3])
    print("   CPU s by thread:", ", ".join(f"{name} {cpu:.1f}" for name, cpu in total.most_common() if cpu >= 0.05))
    return round(peak)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpora", nargs="+")
    args = parser.parse_args()
    peaks: dict[str, int] = {}
    for path in args.corpora:
        result = trace(corpus(path))
        peaks[result["name"]] = report(result)
    if len(peaks) > 1:
        first = next(iter(peaks))
        for name, peak in peaks.items():
            if name != first:
                print(f"anonymous peak {name} / {first}: {peak} / {peaks[first]} = {peak / peaks[first]:.2f}   goal 1.3")


if __name__ == "__main__":
    main()
