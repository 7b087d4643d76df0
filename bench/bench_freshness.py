"""Freshness: from saving a file in a watched worktree until lexical search returns the change.

    .venv/bin/python bench/bench_freshness.py /work/corpora/rxjs [--runs 20]

A daemon watches a clone of the corpus (a worktree, so watchfiles sees it). Each run appends
a new identifier to one of the corpus's files and polls `search` over the socket until a hit
holds it; the time from the write is the figure. Beside it: the watcher's debounce (the floor
a watched save cannot beat) and ripgrep finding the same identifier in the same tree, as a
ratio. The job the watcher submitted splits the time into watcher (events and debounce), queue
and sync. Goal: p99 under 2 s.
"""

from __future__ import annotations

import argparse
import inspect
import random
import shutil
import string
import subprocess
import tempfile
import time
from pathlib import Path

from daemon_run import Daemon, corpus, peers

from codeweir.service.watch import watch_repository

GOAL_SECONDS = 2.0
# The daemon watches with watch_repository's default debounce.
DEBOUNCE_SECONDS = inspect.signature(watch_repository).parameters["debounce"].default
POLL_SECONDS = 0.005
GIVE_UP_SECONDS = 30.0


def ms(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return 1000 * xs[min(len(xs) - 1, int(q * len(xs)))]


def source_files(repo: Path, n: int) -> list[str]:
    """`n` tracked text files of the main language, spread over the tree."""
    tracked = subprocess.run(["git", "-C", repo, "ls-files"], capture_output=True, text=True, check=True).stdout.split()
    exts = {}
    for path in tracked:
        exts[Path(path).suffix] = exts.get(Path(path).suffix, 0) + 1
    main_ext = max((e for e in exts if e), key=exts.get)
    candidates = [p for p in tracked if p.endswith(main_ext)]
    return [candidates[i * len(candidates) // n] for i in range(n)]


def identifier() -> str:
    # Lowercase letters only: one subword, so the query matches exactly this word.
    return "cwfresh" + "".join(random.choices(string.ascii_lowercase, k=12))


def found(client, word: str) -> bool:
    hits = client.call("search", {"query": word, "mode": "lexical", "limit": 5})["results"]
    return any(word in hit["snippet"] for hit in hits)


def watcher_job(client, path: str, after: float) -> dict | None:
    """The sync the watcher submitted for `path` after the wall-clock time `after`."""
    for job in client.call("jobs")["jobs"]:
        if job["paths"] and path in job["paths"] and job["created"] >= after:
            return job
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    peers("rg")
    source = corpus(args.corpus)
    work = Path(tempfile.mkdtemp(prefix="codeweir-fresh-"))
    repo = work / source.name
    subprocess.run(["git", "clone", "-q", str(source), str(repo)], check=True)
    files = source_files(repo, args.runs)
    print(f"== {source.name}: a watched clone, {len(files)} files edited once each")
    daemon = Daemon({source.name: repo})
    try:
        daemon.start()
        daemon.wait_indexed()
        fresh, rg, watcher, queue, sync = [], [], [], [], []
        with daemon.client() as client:
            for path in files:
                word = identifier()
                wall = time.time()
                started = time.perf_counter()
                with open(repo / path, "a", encoding="utf-8") as f:
                    f.write(f"\n// {word}\n")
                while not found(client, word):
                    if time.perf_counter() - started > GIVE_UP_SECONDS:
                        raise SystemExit(f"{path}: {word} not found after {GIVE_UP_SECONDS:g} s")
                    time.sleep(POLL_SECONDS)
                fresh.append(time.perf_counter() - started)
                t = time.perf_counter()
                out = subprocess.run(["rg", "-l", "-F", word, str(repo)], capture_output=True, text=True).stdout
                rg.append(time.perf_counter() - t)
                assert path in out, f"rg did not find {word} in {path}"
                daemon.wait_indexed(poll=0.05)
                job = watcher_job(client, path, wall)
                if job is not None:
                    watcher.append(job["created"] - wall)
                    queue.append(job["started"] - job["created"])
                    sync.append(job["ended"] - job["started"])
        print(
            f"save -> found  p50 {ms(fresh, 0.5):6.0f} ms  p99 {ms(fresh, 0.99):6.0f} ms  max {max(fresh) * 1000:6.0f} ms"
            f"   goal p99 < {GOAL_SECONDS * 1000:.0f} ms: {'met' if ms(fresh, 0.99) < GOAL_SECONDS * 1000 else 'MISSED'}"
        )
        print(
            f"floor          watcher debounce {DEBOUNCE_SECONDS * 1000:.0f} ms"
            f"   p50 / floor {ms(fresh, 0.5) / (DEBOUNCE_SECONDS * 1000):.2f}x"
        )
        print(
            f"rg -l -F       p50 {ms(rg, 0.5):6.1f} ms  p99 {ms(rg, 0.99):6.1f} ms"
            f"   codeweir p50 / rg p50 {ms(fresh, 0.5) / ms(rg, 0.5):.1f}x"
        )
        if watcher:
            print(
                f"where it goes  (p50 of {len(watcher)} watcher jobs) watcher {ms(watcher, 0.5):.0f} ms,"
                f" queue {ms(queue, 0.5):.0f} ms, sync {ms(sync, 0.5):.0f} ms"
            )
    finally:
        daemon.stop()
        shutil.rmtree(daemon.tmp, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
