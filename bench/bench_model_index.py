"""A first full index with the model on (the default): the daemon's peak memory and its time.

    PYTHONPATH=daemon:bench .venv/bin/python bench/bench_model_index.py CORPUS [--models DIR]

A daemon on a fresh state dir indexes CORPUS with the built-in model on; printed: the seconds
until the sync's job is done, the daemon's peak RSS (VmHWM) and the peak of its anonymous part
(sampled every 0.2 s, with a line each time it grows by 10 MiB), and how many chunks had a vector
by then. `--models DIR` copies a built model directory into the state first (else the daemon
builds it, in a worker process). For the tree before a change as the peer, run the same command
with PYTHONPATH naming that tree's daemon/ and bench/.

The kernel (../shared/corpora/build.sh OUT linux), model built already, this stop's tree beside
the tree before, alternating: see bench/README.md ("Big repositories: the kernel").
"""

from __future__ import annotations

import argparse
import shutil
import threading
import time
from pathlib import Path

from daemon_run import Daemon, corpus, rss_kib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus")
    parser.add_argument("--models", type=Path, help="a state dir's models/ to start from (a built model)")
    args = parser.parse_args()
    daemon = Daemon({"corpus": corpus(args.corpus)}, model=True)
    if args.models:
        shutil.copytree(args.models, daemon.tmp / "state" / "models")
    started = time.perf_counter()
    daemon.start()
    peak_anon, stopped = 0, threading.Event()

    def sample() -> None:
        nonlocal peak_anon
        while not stopped.wait(0.2):
            try:
                anon = rss_kib(daemon.proc.pid, "RssAnon")
            except OSError:
                return
            if anon > peak_anon + 10 * 1024:
                print(f"  {time.perf_counter() - started:6.1f} s: anonymous {anon // 1024} MiB", flush=True)
            peak_anon = max(peak_anon, anon)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        daemon.wait_indexed()
        wall = time.perf_counter() - started
        with daemon.client() as client:
            repo = client.call("status")["repos"][0]
        stopped.set()
        sampler.join()
        print(
            f"indexed with the model on in {wall:.1f} s; peak RSS {daemon.peak_kib() // 1024} MiB "
            f"(anonymous, sampled: {peak_anon // 1024}); {repo.get('chunks_embedded'):,} of {repo.get('chunks'):,} chunks embedded"
        )
    finally:
        stopped.set()
        daemon.stop()
        shutil.rmtree(daemon.tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
