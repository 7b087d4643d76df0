"""Two branches of one repository: what the second costs beside the first.

    .venv/bin/python bench/bench_refs.py [/work/corpora/django]

The corpus (django: 5.0.9, then 5.1.3 as a second commit) is cloned bare with a branch at each
release. A daemon indexes branch 5.0.9 alone (`ref = "5.0.9"`) and stops (the index's size on
disk settles); started again, its config gains `refs = ["5.1.3"]` and a `reload` has it index
the second branch beside the first. Printed for each: wall time (from the daemon's start, or from
the reload, until no sync is queued or running), the syncs' own time, the index's size on disk
once the daemon has stopped, file versions parsed, and the texts the embedder must embed (distinct
content hashes of chunks and commit messages: vectors are keyed by them, so a text shared by the
branches is embedded once; they are counted, not embedded, here: embedding django on two CPU
cores takes about 25 minutes). The goal: the second branch costs at most 25% of the first in
each. Then one query per branch, for the version line each release has, must answer with that
branch's line and not the other's.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import tantivy
from daemon_run import Daemon, corpus

from codeweir.index.schema import SCHEMA


def bare_with_branches(source: Path, dest: Path) -> Path:
    subprocess.run(["git", "clone", "-q", "--bare", str(source), str(dest)], check=True)
    for name, rev in (("5.0.9", "HEAD~1"), ("5.1.3", "HEAD")):
        subprocess.run(["git", "-C", str(dest), "branch", "-f", name, rev], check=True)
    return dest


def texts(index: Path) -> int:
    """Distinct content hashes in the index: the vectors its chunks and commits need."""
    searcher = tantivy.Index.open(str(index)).searcher()
    hashes = set()
    for kind in ("chunk", "commit"):
        query = tantivy.Query.term_query(SCHEMA, "doc_kind", kind)
        total = searcher.search(query, limit=1, count=True).count
        for _, address in searcher.search(query, limit=max(total, 1)).hits if total else ():
            hashes.add(searcher.doc(address).get_first("content_hash"))
    return len(hashes)


def size_mib(directory: Path) -> float:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file()) / 2**20


def jobs_since(daemon: Daemon, since: float) -> tuple[float, int]:
    """The own time of the syncs created since `since` (epoch seconds), and the files they parsed."""
    with daemon.client() as client:
        jobs = [j for j in client.call("jobs")["jobs"] if j.get("counts") and j["created"] >= since]
    return sum(j["ended"] - j["started"] for j in jobs), sum(j["counts"].get("indexed", 0) for j in jobs)


def main() -> None:
    source = corpus(sys.argv[1] if len(sys.argv) > 1 else "/work/corpora/django")
    daemon = Daemon({})
    repo = bare_with_branches(source, daemon.tmp / "django.git")
    index = daemon.tmp / "state" / "index"
    lines = daemon.config.read_text().splitlines()
    at = lines.index("[model]")

    def configure(extra: str) -> None:
        repository = ["[[repository]]", 'name = "django"', f'path = "{repo}"', 'ref = "5.0.9"', extra]
        daemon.config.write_text("\n".join(lines[:at] + repository + lines[at:]) + "\n")

    try:
        configure("")
        since, started = time.time(), time.perf_counter()
        daemon.start()
        daemon.wait_indexed()
        one_s = time.perf_counter() - started
        one_sync, one_parsed = jobs_since(daemon, since)
        daemon.stop()  # its merges end: the size on disk settles
        one_mib, one_texts = size_mib(index), texts(index)

        daemon.start()  # as it runs: the second branch comes by a reload of its config
        daemon.wait_indexed()
        configure('refs = ["5.1.3"]')
        since, started = time.time(), time.perf_counter()
        with daemon.client() as client:
            client.call("reload")
        daemon.wait_indexed()
        two_s = time.perf_counter() - started
        two_sync, two_parsed = jobs_since(daemon, since)
        checks = []  # (query, hits, whether a hit is wanted)
        with daemon.client() as client:
            for ref, line, wanted in (("", "5, 0, 9", True), ("5.1.3", "5, 1, 3", True), ("5.1.3", "5, 0, 9", False)):
                query = f'"VERSION = ({line}" path:django/__init__.py' + (f" ref:{ref}" if ref else "")
                hits = client.call("search", {"query": query, "mode": "lexical"})["results"]
                checks.append((query, [(h["path"], h["line"], h.get("refs")) for h in hits], wanted))
        daemon.stop()
    finally:  # stopped however the run ends
        daemon.__exit__()
    both_mib, both_texts = size_mib(index), texts(index)

    print(f"django (bare, two branches), {repo}")
    print(f"{'':28}{'branch 5.0.9':>14}{'+ branch 5.1.3':>16}{'second/first':>14}  goal")
    rows = [
        ("wall time, s", one_s, two_s),
        ("sync time, s", one_sync, two_sync),
        ("index on disk, MiB", one_mib, both_mib - one_mib),
        ("file versions parsed", one_parsed, two_parsed),
        ("texts to embed (vectors)", one_texts, both_texts - one_texts),
    ]
    for name, first, second in rows:
        print(f"{name:28}{first:>14.1f}{second:>16.1f}{second / first:>14.1%}  <= 25%")
    print()
    for query, hits, wanted in checks:
        print(f"{query}\n    -> {hits or 'no hit'}  ({'wanted' if wanted else 'not wanted'})")
    print("each branch answers with its own line:", all(bool(hits) == wanted for _, hits, wanted in checks))


if __name__ == "__main__":
    main()
