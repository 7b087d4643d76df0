"""Exact substring and regex search through the daemon's socket beside codesearch's csearch.

    .venv/bin/python bench/bench_regex.py /work/corpora/go-std

In one run: the daemon indexes the corpus and `cindex` builds codesearch's index of the same
tree; then each query runs through the socket (mode regex, case-sensitive, as csearch is) and
as `csearch -n`. Per query: both match sets as (path, line) pairs, what only one side found
(with the reason where it is known), and p50/p99 latency with the ratio csearch / codeweir
(above 1: codeweir is faster).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from daemon_run import Daemon, corpus, peers

LIMIT = 1000  # the API's largest limit: queries are chosen to match fewer lines than this
QUERIES = [
    ("literal", "ParseDuration"),
    ("literal", "func (c *Conn) Read"),
    ("literal", 'errors.New("http:'),
    ("literal", "sync.RWMutex"),
    ("literal", "DeadlineExceeded"),
    ("regex", r"func \(\w+ \*Reader\) Read\w*\("),
    ("regex", r"(Read|Write)Timeout"),
    ("regex", r"^func Benchmark\w+Parse"),
    ("regex", r"errors\.New\(\"net/http: [a-z ]+\"\)"),
    ("regex", r"0x[0-9a-f]{16}\b"),
]


def timed(fn, runs: int) -> tuple[list[float], object]:
    out, value = [], None
    for _ in range(runs):
        started = time.perf_counter()
        value = fn()
        out.append(time.perf_counter() - started)
    return out, value


def ms(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return 1000 * xs[min(len(xs) - 1, int(q * len(xs)))]


def csearch_lines(pattern: str, repo: Path, env: dict) -> set[tuple[str, int]]:
    out = subprocess.run(["csearch", "-n", pattern], env=env, capture_output=True, text=True, errors="replace").stdout
    found = set()
    prefix = str(repo) + "/"
    for line in out.splitlines():
        path, number, _ = line.split(":", 2)
        found.add((path.removeprefix(prefix), int(number)))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    peers("cindex", "csearch")
    repo = corpus(args.corpus)
    d = Daemon({repo.name: repo})
    started = time.perf_counter()
    d.start()
    d.wait_indexed()
    index_s = time.perf_counter() - started
    idx = Path(tempfile.mkdtemp()) / "csearchindex"
    env = {**os.environ, "CSEARCHINDEX": str(idx)}
    started = time.perf_counter()
    subprocess.run(["cindex", str(repo)], env=env, capture_output=True, check=True)
    cindex_s = time.perf_counter() - started
    index_bytes = sum(f.stat().st_size for f in (d.tmp / "state" / "index").rglob("*") if f.is_file())
    print(f"== {repo.name}: codeweir index {index_s:.1f} s, {index_bytes / 2**20:.0f} MiB (all fields);"
          f" cindex {cindex_s:.1f} s, {idx.stat().st_size / 2**20:.0f} MiB")  # fmt: skip
    with d.client() as c:
        status = c.call("status")["repos"][0]
        print(f"   {status['files_indexed']} files indexed, skipped: {status['files_skipped']}")
        ratios = []
        for kind, query in QUERIES:  # once each first: caches warm, segment merges done
            pattern = query if kind == "regex" else re.escape(query)
            c.call("search", {"query": pattern, "mode": "regex", "limit": LIMIT, "case_sensitive": True})
            csearch_lines(pattern, repo, env)
        for kind, query in QUERIES:
            pattern = query if kind == "regex" else re.escape(query)
            params = {"query": pattern, "mode": "regex", "limit": LIMIT, "case_sensitive": True}
            ours_t, reply = timed(lambda: c.call("search", params), args.runs)
            theirs_t, _ = timed(lambda: subprocess.run(["csearch", "-n", pattern], env=env, capture_output=True), args.runs)
            ours = {(h["path"], h["line"]) for h in reply["results"]}
            theirs = csearch_lines(pattern, repo, env)
            ratio = ms(theirs_t, 0.5) / ms(ours_t, 0.5)
            ratios.append(ratio)
            # Past the limit codeweir returns the first LIMIT lines: they must be among csearch's.
            over = len(theirs) > LIMIT
            agree = ours <= theirs and len(ours) == LIMIT if over else ours == theirs
            print(
                f"{kind:7} {query!r:42} matches codeweir {len(ours):4} csearch {len(theirs):4}"
                f" {'subset' if over else 'same'} {'yes' if agree else 'NO'}"
                f" | p50 codeweir {ms(ours_t, 0.5):6.2f} ms csearch {ms(theirs_t, 0.5):6.2f} ms"
                f" ratio {ratio:5.2f}x | p99 {ms(ours_t, 0.99):6.2f} / {ms(theirs_t, 0.99):6.2f} ms"
            )
            for side, extra in (("only codeweir", ours - theirs), ("only csearch", set() if over else theirs - ours)):
                for path, line in sorted(extra)[:3]:
                    print(f"        {side}: {path}:{line}")
            for note in reply["notes"]:
                print(f"        note: {note}")
        print(f"\nmedian ratio csearch/codeweir p50: {sorted(ratios)[len(ratios) // 2]:.2f}x (above 1: codeweir is faster)")
    d.stop()
    shutil.rmtree(d.tmp, ignore_errors=True)
    shutil.rmtree(idx.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
