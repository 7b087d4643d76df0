"""Hostile searches against a real daemon, and how `status` fares meanwhile.

    .venv/bin/python bench/bench_hostile_search.py [--seconds 3]

A daemon indexes a small generated repository (ordinary source files, and files made for the
bad requests: lines of b's and c's, a 50,000-character line of a's, lines holding 5k, 20k and
32k-character literals, a 300,000-character minified line). Then each bad request runs again
and again for `--seconds` (at least once) on its own connection(s) while another connection
polls `status` back to back. Per request: how many ran, their answer time (p50 and max), the
outcome, and the latency of the `status` polls made meanwhile (count, p99, max). The goal:
status p99 under 100 ms during any single bad request. The first row is the baseline: status
with nothing else running.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import shutil
import string
import subprocess
import tempfile
import time
from pathlib import Path

from daemon_run import Daemon

from codeweir.client import Client
from codeweir.errors import DaemonError

GOAL_MS = 100.0


def literal(size: int, seed: int) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(string.ascii_letters) for _ in range(size))


LITERALS = {size: literal(size, size) for size in (5_000, 20_000, 32_766, 100_000)}


def make_repository(root: Path) -> Path:
    """Ordinary source, and the lines the bad requests are aimed at, in one commit."""
    files: dict[str, str] = {}
    for i in range(200):
        body = "\n".join(
            f"def handler_{i}_{j}(request, retries={j}):\n    return request.get('k{j}') or parse_duration('{j}s')\n"
            for j in range(10)
        )
        files[f"src/module_{i:03}.py"] = f'"""Module {i}."""\n\nimport os\n\n{body}\n'
    files["data/b27.txt"] = "b" * 27 + "x\n"
    files["data/c30.txt"] = "c" * 30 + "x\n"
    files["data/a50k.txt"] = "a" * 50_000 + "\n"
    for size in (5_000, 20_000, 32_766):
        files[f"data/literal_{size}.txt"] = f"before\n  {LITERALS[size]}  \nafter\n"
    files["web/app.min.js"] = "x" * 300_000 + "y\n"
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    git = ["git", "-C", str(root), "-c", "user.name=bench", "-c", "user.email=bench@example.org"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "bench"], check=True)
    return root


def regex(query: str) -> dict:
    return {"query": query, "mode": "regex"}


def quoted(size: int) -> dict:
    return {"query": f'"{LITERALS[size]}"', "mode": "lexical"}


# (name, params of each request, how many at once)
BAD = [
    ("regex ^(b+)+$ (27 b's, then x)", regex(r"^(b+)+$"), 1),
    ("regex ^(c+)+$ (30 c's, then x)", regex(r"^(c+)+$"), 1),
    ("regex a+c (a 50,000-char line of a's)", regex("a+c"), 1),
    ('quoted literal, 5k chars "..."', quoted(5_000), 1),
    ('quoted literal, 20k chars "..."', quoted(20_000), 1),
    ("quoted literal, 32,766 chars (the most)", quoted(32_766), 1),
    ('quoted literal, 100k chars "..."', quoted(100_000), 1),
    ("4 quoted literals of 20k at once", quoted(20_000), 4),
    ("regex (?i)x{2999}y over 300k chars (budget)", regex("x" * 2999 + "y"), 1),
    ("lexical: 256 words (the most)", {"query": "parse duration " * 128, "mode": "lexical"}, 1),
    ("lexical: one word of 16k subwords (a.b.c...)", {"query": "a.b." * 8000, "mode": "lexical"}, 1),
    ("sym: and a 32k-char name", {"query": "sym:" + "Parse" * 6552}, 1),
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def outcome_of(call) -> str:
    try:
        result = call()
    except DaemonError as exc:
        return f"error {exc.code}: {str(exc).splitlines()[0][:70]}"
    return f"{len(result['results'])} hits" + (f"; {result['notes'][0][:50]}" if result["notes"] else "")


def worker(socket: Path, params: dict, deadline: float, results: multiprocessing.Queue) -> None:
    """One client sending the request again and again until `deadline` (at least once)."""
    answers, outcomes = [], set()
    with Client(socket, timeout=120) as c:
        while True:
            started = time.perf_counter()
            outcomes.add(outcome_of(lambda: c.call("search", params)))
            answers.append(time.perf_counter() - started)
            if time.perf_counter() >= deadline:
                break
    results.put((answers, outcomes))


def run_bad(d: Daemon, params: dict | None, at_once: int, seconds: float) -> tuple[list[float], set[str], list[float]]:
    """Run the request (`at_once` copies, each a process of its own with its own connection: no
    client shares the poller's GIL) for `seconds`, polling status meanwhile; answer times,
    outcomes and status latencies."""
    deadline = time.perf_counter() + seconds
    results: multiprocessing.Queue = multiprocessing.Queue()
    clients = [
        multiprocessing.Process(target=worker, args=(d.socket, params, deadline, results))
        for _ in range(at_once if params is not None else 0)
    ]
    for p in clients:
        p.start()

    def finished() -> bool:
        return all(not p.is_alive() for p in clients) if clients else time.perf_counter() >= deadline

    statuses: list[float] = []
    with d.client(timeout=120) as poller:
        while not finished():
            started = time.perf_counter()
            poller.call("status")
            statuses.append(time.perf_counter() - started)
    answers: list[float] = []
    outcomes: set[str] = set()
    for _ in clients:
        got_answers, got_outcomes = results.get()
        answers += got_answers
        outcomes |= got_outcomes
    for p in clients:
        p.join()
    return answers, outcomes, statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="how long each bad request is repeated")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="codeweir-hostile-"))
    repo = make_repository(work / "repo")
    d = Daemon({"hostile": repo})
    d.start()
    d.wait_indexed()
    with d.client() as c:
        status = c.call("status")["repos"][0]
        print(f"== {status['files_indexed']} files indexed, {status.get('chunks', '?')} chunks;"
              f" {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start")  # fmt: skip
    print(f"{'request':46} {'runs':>4} {'answer p50':>10} {'max':>8}  {'outcome':58} {'status n':>8} {'p99':>8} {'max':>8}  goal")
    rows = [("(baseline: nothing else running)", None, 1), *BAD]
    for name, params, at_once in rows:
        answers, outcomes, statuses = run_bad(d, params, at_once, args.seconds)
        p99, worst = 1000 * percentile(statuses, 0.99), 1000 * max(statuses, default=float("nan"))
        answer = f"{1000 * percentile(answers, 0.5):8.1f}ms {1000 * max(answers):6.0f}ms" if answers else f"{'-':>10} {'-':>8}"
        ok = "ok" if p99 < GOAL_MS else "MISSED"
        print(
            f"{name:46} {len(answers):4} {answer}  {' | '.join(sorted(outcomes)) or '-':58} "
            f"{len(statuses):8} {p99:6.1f}ms {worst:6.1f}ms  {ok}"
        )
    d.stop()
    shutil.rmtree(d.tmp, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
