"""Incremental sync over real history: a checkout from one commit to the next, resynced.

    .venv/bin/python bench/bench_incremental.py /work/corpora/django

The corpus is cloned into a temp dir (the corpus itself is never touched) and checked out at
its first commit; the daemon indexes it in full (lexical). Then the clone checks out the second
commit and the daemon resyncs, as its watcher and `codeweir sync` make it: the figures are the
files parsed beside the files `git diff` names (the peer: what really changed) and the wall time
beside the full index's. Last, a fresh daemon indexes the second commit from scratch, and the
two indexes' file sets (path, blob) and chunk sets (path, lines, symbol, content hash) must be
equal.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from daemon_run import Daemon, corpus

from codeweir.index.schema import stored_chunk
from codeweir.index.store import Store


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def index_sets(state_dir: Path) -> tuple[set, set]:
    """(path, blob) of every file and (path, start, end, symbol, content hash) of every chunk."""
    store = Store(state_dir / "index")
    searcher = store.searcher()

    def documents(kind: str):
        query = store.term("doc_kind", kind)
        total = searcher.search(query, limit=1, count=True).count
        return (searcher.doc(address) for _, address in searcher.search(query, limit=max(total, 1)).hits)

    files = {(d.get_all("path")[0], d.get_all("blob")[0]) for d in documents("file")}
    chunks = {(c.path, c.start_line, c.end_line, c.symbol, c.content_hash) for c in map(stored_chunk, documents("chunk"))}
    return files, chunks


def full_index(clone: Path) -> tuple[Daemon, float, dict]:
    """A daemon that has indexed `clone` in full: (daemon, seconds from start, repo status)."""
    daemon = Daemon({"corpus": clone})
    started = time.perf_counter()
    daemon.start()
    daemon.wait_indexed()
    seconds = time.perf_counter() - started
    with daemon.client() as client:
        status = client.call("status")["repos"][0]
    return daemon, seconds, status


def resync(daemon: Daemon, clone: Path, commit: str) -> tuple[float, dict[str, int]]:
    """Check out `commit` and resync; the watcher may start a sync of its own first, so every
    job since the checkout counts. Returns (seconds until the index is current, summed counts)."""
    with daemon.client() as client:
        before = {job["id"] for job in client.call("jobs")["jobs"]}
        started = time.perf_counter()
        git(clone, "checkout", "-q", commit)
        client.call("sync", {"repo": "corpus", "wait": True})
        assert client.call("wait")["done"]
        seconds = time.perf_counter() - started
        jobs = [job for job in client.call("jobs")["jobs"] if job["id"] not in before]
    failed = [job for job in jobs if job["state"] != "completed"]
    assert not failed, failed
    for job in sorted(jobs, key=lambda j: j["created"]):
        scope = f"{len(job['paths'])} paths" if job["paths"] is not None else "whole repository"
        print(
            f"  job {job['id']} ({scope}): queued {job['started'] - job['created']:.2f} s,"
            f" ran {job['ended'] - job['started']:.2f} s, {job['counts']}"
        )
    totals = {key: sum(job["counts"].get(key, 0) for job in jobs) for key in ("indexed", "deleted", "unchanged")}
    return seconds, {**totals, "jobs": len(jobs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", help="a corpus repository with at least two commits")
    args = parser.parse_args()
    source = corpus(args.corpus)
    first, second = git(source, "rev-list", "--reverse", "HEAD").split()[:2]
    diff = Counter(line.split()[0] for line in git(source, "diff", "--name-status", "--no-renames", first, second).splitlines())
    print(f"{source.name}: {first[:10]} -> {second[:10]}; git diff: {dict(diff)} (A added, M modified, D deleted)")

    work = Path(tempfile.mkdtemp(prefix="codeweir-incremental-"))
    clone = work / source.name
    subprocess.run(["git", "clone", "-q", str(source), str(clone)], check=True)
    git(clone, "checkout", "-q", first)
    daemon, full_first, status = full_index(clone)
    print(f"full index of {first[:10]}   {full_first:7.2f} s  ({status['files_indexed']} files, {status['chunks']} chunks)")
    try:
        seconds, counts = resync(daemon, clone, second)
    finally:
        daemon.stop()
    print(
        f"resync to {second[:10]}      {seconds:7.2f} s  ({counts['indexed']} files parsed, {counts['deleted']} deleted,"
        f" {counts['unchanged']} unchanged, in {counts['jobs']} jobs)"
        f"   parsed/(A+M) {counts['indexed']}/{diff['A'] + diff['M']}, deleted/D {counts['deleted']}/{diff['D']}"
        f"   resync/full {seconds / full_first:.3f}"
    )
    fresh, full_second, _ = full_index(clone)
    fresh.stop()
    print(f"full index of {second[:10]}   {full_second:7.2f} s  (fresh daemon, for the comparison)")

    resynced_files, resynced_chunks = index_sets(daemon.tmp / "state")
    fresh_files, fresh_chunks = index_sets(fresh.tmp / "state")
    same = resynced_files == fresh_files and resynced_chunks == fresh_chunks
    print(
        f"resynced index vs fresh index: files {len(resynced_files)} / {len(fresh_files)},"
        f" chunks {len(resynced_chunks)} / {len(fresh_chunks)}: {'EQUAL' if same else 'DIFFERENT'}"
    )
    if not same:
        for name, ours, theirs in (("files", resynced_files, fresh_files), ("chunks", resynced_chunks, fresh_chunks)):
            print(f"  {name} only in the resynced index: {sorted(ours - theirs)[:5]}")
            print(f"  {name} only in the fresh index:    {sorted(theirs - ours)[:5]}")
    for path in (work, daemon.tmp, fresh.tmp):
        shutil.rmtree(path, ignore_errors=True)
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
