"""The first hour on a repository: semantic search from the start, the truth in status, a quick stop.

    .venv/bin/python bench/bench_first_hour.py [/work/corpora/django] [--cover-within 1200]
        [--query "parse a date from a string"] [--sigterm-after 30] [--sigterm-mid-sync 40]

A real daemon with the built-in model (int8, built into its fresh state dir, as on a first
start) indexes the corpus. Printed, from the daemon's start: when lexical search covers every
file, when a semantic search first answers with hits (and the note it carries), status lines
(coverage, rate, ETA) now and then; then the seconds a SIGTERM takes while the backlog is being
embedded (the daemon's exit code, and whether its index opens whole). A second start on the
same state dir then resumes: when it first answers semantically, and, with --cover-within, the
time until every chunk has a vector (else the rate and the ETA status gives). With
--sigterm-mid-sync, a first daemon is stopped in the middle of its first sync (parsing, writing,
merging segments and embedding at once) before all that.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from daemon_run import Daemon, corpus, indexed

from codeweir.client import Client
from codeweir.errors import DaemonError
from codeweir.index.store import Store


def coverage(status: dict) -> tuple[int, int]:
    repos = status["repos"]
    return sum(r["chunks_embedded"] or 0 for r in repos), sum(r["chunks"] or 0 for r in repos)


def status_line(elapsed: float, status: dict) -> str:
    embedded, chunks = coverage(status)
    model = status["model"]
    rate, eta = model.get("rate_per_s"), model.get("eta_s")
    return (
        f"{elapsed:7.1f} s  {model['state']:<8} {embedded:>6,} of {chunks:>6,} chunks embedded "
        f"({embedded * 100 // max(chunks, 1)}%)  rate {rate if rate is not None else '-'}/s  "
        f"eta {f'{eta:.0f} s' if eta is not None else '-'}"
    )


def first_semantic(client: Client, query: str, started: float, *, every: float = 10.0) -> tuple[float, dict]:
    """Poll a semantic search until it answers with hits; status lines meanwhile."""
    next_line = 0.0
    while True:
        elapsed = time.perf_counter() - started
        if elapsed >= next_line:
            print(status_line(elapsed, client.call("status")), flush=True)
            next_line = elapsed + every
        try:
            result = client.call("search", {"query": query, "mode": "semantic", "limit": 5})
        except DaemonError:  # the model is loading
            result = None
        if result and result["results"]:
            return time.perf_counter() - started, result
        time.sleep(0.25)


def sigterm(daemon: Daemon) -> tuple[float, int]:
    started = time.perf_counter()
    daemon.proc.send_signal(signal.SIGTERM)
    code = daemon.proc.wait(timeout=120)
    return time.perf_counter() - started, code


def index_opens(state: Path) -> int:
    store = Store(state / "index")
    try:
        return store.count(("doc_kind", "chunk"))
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", nargs="?", default="/work/corpora/django")
    parser.add_argument("--query", default="parse a date from a string")
    parser.add_argument("--sigterm-after", type=float, default=30.0, help="seconds of embedding after lexical, then SIGTERM")
    parser.add_argument("--sigterm-mid-sync", type=float, default=0.0, help="first, a SIGTERM this long into a first sync")
    parser.add_argument("--cover-within", type=float, default=0.0, help="then wait this long for every chunk to have a vector")
    args = parser.parse_args()
    repo = corpus(args.corpus)

    if args.sigterm_mid_sync:
        daemon = Daemon({repo.name: repo}, model=True)
        daemon.start()
        time.sleep(args.sigterm_mid_sync)
        with daemon.client() as client:
            assert not indexed(client), "the sync was over: pass a smaller --sigterm-mid-sync"
            print(status_line(args.sigterm_mid_sync, client.call("status")))
        took, code = sigterm(daemon)
        print(
            f"SIGTERM mid-sync        {took:7.1f} s  (exit code {code}; the index opens with {index_opens(daemon.tmp / 'state'):,} chunks)"
        )
        log = (daemon.tmp / "daemon.log").read_text()
        print("".join(f"    {line}\n" for line in log[log.rfind("signal SIGTERM") - 40 :].splitlines()))

    daemon = Daemon({repo.name: repo}, model=True)
    started = time.perf_counter()
    daemon.start()
    client = daemon.client(timeout=600)
    print(f"{repo.name}: first start, state dir {daemon.tmp / 'state'}")
    seconds, result = first_semantic(client, args.query, started)
    print(f"first semantic answer   {seconds:7.1f} s  ({len(result['results'])} hits; notes: {result['notes']})")
    while not indexed(client):
        time.sleep(0.5)
    lexical_s = time.perf_counter() - started
    print(f"lexical complete        {lexical_s:7.1f} s")
    print(status_line(lexical_s, client.call("status")))
    time.sleep(args.sigterm_after)
    status = client.call("status")
    print(status_line(time.perf_counter() - started, status))
    assert status["model"]["state"] == "filling", "the backlog was embedded before the signal: pass a smaller --sigterm-after"
    took, code = sigterm(daemon)
    print(
        f"SIGTERM while embedding {took:7.1f} s  (exit code {code}; the index opens with {index_opens(daemon.tmp / 'state'):,} chunks)"
    )
    log = (daemon.tmp / "daemon.log").read_text()
    (daemon.tmp / "daemon-first.log").write_text(log)  # the second start writes daemon.log afresh
    print("".join(f"    {line}\n" for line in log[log.rfind("signal SIGTERM") - 40 :].splitlines()))

    restarted = time.perf_counter()
    daemon.start()
    client = daemon.client(timeout=600)
    print(f"{repo.name}: second start, same state dir")
    seconds, result = first_semantic(client, args.query, restarted)
    print(f"first semantic answer   {seconds:7.1f} s  after the restart (notes: {result['notes']})")
    if args.cover_within:
        deadline = time.perf_counter() + args.cover_within
        next_line = 0.0
        while time.perf_counter() < deadline:
            status = client.call("status")
            embedded, chunks = coverage(status)
            elapsed = time.perf_counter() - restarted
            if status["model"]["state"] == "ready" and embedded == chunks:
                print(status_line(elapsed, status))
                print(
                    f"every chunk embedded    {elapsed:7.1f} s  after the restart ({time.perf_counter() - started:.1f} s in all)"
                )
                break
            if elapsed >= next_line:
                print(status_line(elapsed, status), flush=True)
                next_line = elapsed + 60
            time.sleep(1.0)
        else:
            print("not every chunk embedded within --cover-within: see the last rate and ETA above")
    took, code = sigterm(daemon)
    print(f"SIGTERM at the end      {took:7.1f} s  (exit code {code})")
    if code != 0:
        print((daemon.tmp / "daemon.log").read_text()[-3000:], file=sys.stderr)


if __name__ == "__main__":
    main()
