"""Full lexical index, no-op resync and search latency of real corpora, each beside a peer.

    .venv/bin/python bench/bench_index.py /work/corpora/rxjs /work/corpora/go-std

Per corpus, in one run: the daemon's full index (wall time from start to fully indexed,
peak RSS of the daemon and of a parse worker) beside codesearch's `cindex` on the same tree, and
the time until a quoted literal, searched each second meanwhile, finds what `csearch` finds;
a no-op resync beside `git status`; search latency through the socket beside ripgrep and
`csearch` on the same literal queries. Peak RSS across corpora is printed as a ratio
(memory must not grow with the repository).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from daemon_run import Daemon, corpus, csearch_files, escape, our_files, peers

QUERIES = ["ParseDuration", "parse duration", "Subscriber", "NewReader", "errorf", "mergeMap", "read timeout"]


def timed(fn, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def ms(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return 1000 * xs[min(len(xs) - 1, int(q * len(xs)))]


def bench(repo: Path, runs: int) -> dict:
    name = repo.name
    files = int(subprocess.run(["git", "-C", repo, "ls-files"], capture_output=True, text=True).stdout.count("\n"))
    print(f"\n== {name}: {files} tracked files")
    idx = Path(tempfile.mkdtemp()) / "csearchindex"
    env = {**os.environ, "CSEARCHINDEX": str(idx)}
    # Both read the files from the page cache: cindex, run first, would otherwise read them from disk.
    where = shlex.quote(str(repo))
    subprocess.run(f"git -C {where} ls-files -z | (cd {where} && xargs -0 cat) > /dev/null", shell=True, check=False)
    t = time.perf_counter()
    subprocess.run(["cindex", str(repo)], env=env, capture_output=True, check=True)
    cindex_s = time.perf_counter() - t
    # Searchable: the first query's first word, quoted, finds every file csearch finds.
    literal = QUERIES[0].split()[0]
    expected = csearch_files(env, repo, [escape(literal)])
    d = Daemon({name: repo})
    started = time.perf_counter()
    d.start()
    searchable_s = d.wait_indexed(until=lambda c: our_files(c, {"query": f'"{literal}"', "case_sensitive": True}) == expected)
    index_s = time.perf_counter() - started
    with d.client() as c:
        status = c.call("status")["repos"][0]
        peak_daemon = d.peak_kib()
        print(
            f"full index   codeweir {index_s:7.2f} s ({status['files_indexed']} files, {status['chunks']} chunks,"
            f" {status['files_indexed'] / index_s:.0f} files/s)   cindex {cindex_s:6.2f} s"
            f"   ratio {index_s / cindex_s:.2f}x"
        )
        searchable_s = index_s if searchable_s is None else searchable_s
        print(
            f"searchable   codeweir {searchable_s:7.2f} s (literal {literal!r}: the {len(expected)} files csearch finds)"
            f"   cindex {cindex_s:6.2f} s   ratio {searchable_s / cindex_s:.2f}x"
        )
        print(
            f"peak RSS     daemon {peak_daemon / 1024:.0f} MiB (sampled: anonymous {d.peak_anon_kib / 1024:.0f} MiB,"
            f" mapped files {d.peak_file_kib / 1024:.0f} MiB), largest parse worker {d.peak_worker_kib / 1024:.0f} MiB"
        )

        noop = timed(lambda: c.call("sync", {"repo": name, "wait": True}), runs)
        gst = timed(lambda: subprocess.run(["git", "-C", repo, "status", "--porcelain"], capture_output=True), runs)
        print(
            f"no-op resync codeweir p50 {ms(noop, 0.5):7.1f} ms   git status p50 {ms(gst, 0.5):7.1f} ms"
            f"   ratio {statistics.median(noop) / statistics.median(gst):.2f}x"
        )

        for query in QUERIES:
            ours = timed(lambda: c.call("search", {"query": query, "mode": "lexical", "limit": 10}), runs)
            literal = query.split()[0]
            rg = timed(lambda: subprocess.run(["rg", "-l", "-F", literal, str(repo)], capture_output=True), runs)
            cs = timed(lambda: subprocess.run(["csearch", "-l", literal], env=env, capture_output=True), runs)
            print(
                f"search {query!r:18} codeweir p50 {ms(ours, 0.5):6.2f} p99 {ms(ours, 0.99):6.2f} ms"
                f" | rg p50 {ms(rg, 0.5):7.2f} ms ({ms(rg, 0.5) / ms(ours, 0.5):5.1f}x ours)"
                f" | csearch p50 {ms(cs, 0.5):6.2f} ms ({ms(cs, 0.5) / ms(ours, 0.5):5.1f}x ours)"
            )
    d.stop()
    shutil.rmtree(d.tmp, ignore_errors=True)
    shutil.rmtree(idx.parent, ignore_errors=True)
    return {
        "name": name,
        "files": status["files_indexed"],
        "peak": peak_daemon,
        "anon": d.peak_anon_kib,
        "file": d.peak_file_kib,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpora", nargs="+")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    peers("cindex", "csearch", "rg")
    results = [bench(corpus(c), args.runs) for c in args.corpora]
    if len(results) > 1:
        small, large = min(results, key=lambda r: r["files"]), max(results, key=lambda r: r["files"])
        print(
            f"\npeak daemon RSS {large['name']} ({large['files']} files) / {small['name']} ({small['files']} files):"
            f" {large['peak'] / small['peak']:.2f} (anonymous memory: {large['anon'] / small['anon']:.2f},"
            f" mapped files: {large['file'] / small['file']:.2f})"
        )


if __name__ == "__main__":
    main()
