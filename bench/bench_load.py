"""Search latency under load: the same queries on an idle daemon, then while a full sync runs.

    .venv/bin/python bench/bench_load.py /work/corpora/go-std [--rounds 40] [--model | --beside]

In one run, through the socket, one client: lexical and symbol queries, paced a few ms
apart, on the idle daemon (half the rounds before the sync, half after, so drift in the
machine's own load falls on both sides), and while `sync --full` of the same corpus re-reads
every file. Prints p50/p99 of both and their ratio. Goal: p99 under load at most 2x the idle
p99, and under 50 ms for lexical. Beside them, `jobs`, which the event loop answers by itself:
its p99 and longest wait show how long the loop stalled (a full collection of the garbage
collector, a large parse result unpickled); and under each mode the search's own time as the
daemon reports it (`took_ms`: from the request read to its hits, threads and waits included),
so what the socket and the event loop add is the difference.

With --beside the load is not the daemon's own: a second daemon, a process of its own, indexes
the same corpus from nothing while the first answers. Both share the cores; only the own sync
shares the searches' process and its GIL. What `sync --full` adds beyond the cores is the
difference between the two runs' ratios.

With --model the daemon embeds too: after the idle rounds before, it restarts on the same
state without its vectors, so the load is the full sync and the embedding of every chunk
(the whole backlog) at once; the rounds under load last until both are done.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from daemon_run import Daemon, corpus, indexed

LEXICAL = [
    "ParseDuration",
    "parse duration",
    "NewReader",
    "errorf",
    "read timeout",
    "http server handler",
    "bufio scanner",
    "context cancel",
]
SYMBOL = ["ParseDuration", "NewReader", "Scanner", "WriteString"]
PACE_SECONDS = 0.005  # between queries: a busy client, not a flood
GOAL_RATIO = 2.0
GOAL_LEXICAL_MS = 50.0


def ms(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return 1000 * xs[min(len(xs) - 1, int(q * len(xs)))]


def one_round(client, latencies: dict[str, list[float]]) -> None:
    for mode, queries in (("lexical", LEXICAL), ("symbol", SYMBOL)):
        for query in queries:
            started = time.perf_counter()
            answer = client.call("search", {"query": query, "mode": mode, "limit": 10})
            latencies[mode].append(time.perf_counter() - started)
            latencies[f"{mode} took"].append(answer["took_ms"] / 1000)
            time.sleep(PACE_SECONDS)
    started = time.perf_counter()
    client.call("jobs")
    latencies["loop"].append(time.perf_counter() - started)


def empty_latencies() -> dict[str, list[float]]:
    return {"lexical": [], "symbol": [], "loop": [], "lexical took": [], "symbol took": []}


def job_state(client, job_id: str) -> dict:
    return next(j for j in client.call("jobs")["jobs"] if j["id"] == job_id)


def embedded(client) -> bool:
    """Every chunk of every repository has a vector of the configured model."""
    status = client.call("status")
    return status["model"]["state"] == "ready" and all(r["chunks_embedded"] == r["chunks"] for r in status["repos"])


def wait_embedded(client) -> None:
    while not embedded(client):
        time.sleep(0.2)


def restart_without_vectors(daemon: Daemon) -> None:
    daemon.stop()
    shutil.rmtree(Path(daemon.tmp) / "state" / "vectors")
    daemon.start()


def load_beside(repo: Path, client, loaded: dict[str, list[float]]) -> float:
    """Rounds on `client` while a second daemon indexes `repo` from nothing; its wall time."""
    with Daemon({repo.name: repo}) as other, other.client() as other_client:
        started = time.perf_counter()
        while not indexed(other_client):
            one_round(client, loaded)
        took = time.perf_counter() - started
    shutil.rmtree(other.tmp, ignore_errors=True)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus")
    parser.add_argument("--rounds", type=int, default=100, help="idle rounds of every query")
    load_kind = parser.add_mutually_exclusive_group()
    load_kind.add_argument("--model", action="store_true", help="embed too: load is the full sync and the whole backlog")
    load_kind.add_argument("--beside", action="store_true", help="load is a second daemon's first index of the corpus")
    args = parser.parse_args()
    repo = corpus(args.corpus)
    daemon = Daemon({repo.name: repo}, model=args.model)
    try:
        daemon.start()
        daemon.wait_indexed()
        idle = empty_latencies()
        with daemon.client() as client:
            if args.model:
                wait_embedded(client)
            for _ in range(3):  # warm the searcher's caches and the connection
                one_round(client, empty_latencies())
            for _ in range(args.rounds // 2):
                one_round(client, idle)
        if args.model:
            restart_without_vectors(daemon)
        with daemon.client() as client:
            load_started = time.perf_counter()
            loaded = empty_latencies()
            if args.beside:
                took = load_beside(repo, client, loaded)
            else:
                (job,) = client.call("sync", {"repo": repo.name, "full": True})["jobs"]
                while (state := job_state(client, job["id"]))["state"] in ("queued", "running") or (
                    args.model and not embedded(client)
                ):
                    one_round(client, loaded)
                if state["state"] != "completed":
                    raise SystemExit(f"the full sync ended {state['state']}: {state['error']}")
                took = state["ended"] - state["started"]
            load_took = time.perf_counter() - load_started
            vectors = client.call("status")["model"]["vectors"]
            for _ in range(args.rounds - args.rounds // 2):
                one_round(client, idle)
        if args.beside:
            print(f"== {repo.name}: a second daemon's full index {took:.1f} s, in its own process, under the queries")
        else:
            print(f"== {repo.name}: full sync {took:.1f} s ({state['counts'].get('indexed', 0)} files) under the queries")
        if args.model:
            print(f"   and the embedding of {vectors} texts from an empty vector store: {load_took:.1f} s under load")
        load = "sync+embedding" if args.model else "the other's index" if args.beside else "sync"
        for mode in ("lexical", "symbol"):
            ratio = ms(loaded[mode], 0.99) / ms(idle[mode], 0.99)
            goal = ratio <= GOAL_RATIO and (mode != "lexical" or ms(loaded[mode], 0.99) < GOAL_LEXICAL_MS)
            print(
                f"{mode:8} idle p50 {ms(idle[mode], 0.5):6.2f} p99 {ms(idle[mode], 0.99):6.2f} ms ({len(idle[mode])})"
                f" | during {load} p50 {ms(loaded[mode], 0.5):6.2f} p99 {ms(loaded[mode], 0.99):6.2f} ms"
                f" ({len(loaded[mode])}) | p99 ratio {ratio:.2f}x  goal {'met' if goal else 'MISSED'}"
            )
            took = f"{mode} took"
            print(
                f"{'':8} of which the search's own (took_ms): idle p50 {ms(idle[took], 0.5):6.2f} p99 {ms(idle[took], 0.99):6.2f}"
                f" | during {load} p50 {ms(loaded[took], 0.5):6.2f} p99 {ms(loaded[took], 0.99):6.2f} ms"
            )
        print(
            f"loop     idle p99 {ms(idle['loop'], 0.99):6.2f} max {ms(idle['loop'], 1):6.1f} ms"
            f" | during {load} p99 {ms(loaded['loop'], 0.99):6.2f} max {ms(loaded['loop'], 1):6.1f} ms (`jobs`)"
        )
    finally:
        daemon.stop()
        shutil.rmtree(daemon.tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
