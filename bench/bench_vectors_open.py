"""What a vector store of N rows costs the process that opens it, as a daemon's start does.

    .venv/bin/python bench/bench_vectors_open.py [--n 300000] [--tree DIR]

Fills a store with N random 384-d unit vectors (saved every 20,000 rows, as the daemon saves
every few seconds), drops it, then opens it again and prints the process's RSS, anonymous and
file-mapped, after the open, after 20 exact searches over every row, and after the store
releases the pages those read; then a search over 2,000 candidates, and a membership test a
hash at a time (`in`) beside a commit's worth at once (`has`). `--tree` runs another checkout's
daemon/ (the tree before a change) for the peer; a tree without `has` or `release_pages` skips
those lines.

Measured on the shared 2-core machine, 300,000 rows, this tree beside the one before the rows
were mapped (06e7d2d^): opened in 0.29-0.45 s, RSS 58-59 MiB (anonymous 38-39) beside 559-561 (541-543)
in 0.49-1.68 s; exact search p50 11.8-13.0 ms beside 9.4-12.6, RSS 503 (file-mapped 464: every
row read) and 59 once released; 2,000 candidates 4.5-4.7 ms beside 2.4-3.5, 10.9 right after a
release (each row's page read back in); `in` 3.7 us beside 0.46-0.60, `has` 1.1 us a hash.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def memory() -> str:
    lines = Path("/proc/self/status").read_text().splitlines()
    fields = {line.split(":")[0]: int(line.split()[1]) // 1024 for line in lines if line.startswith(("Rss", "VmRSS"))}
    return f"RSS {fields['VmRSS']} MiB (anonymous {fields['RssAnon']}, file-mapped {fields['RssFile']})"


def key(i: int) -> str:
    return hashlib.md5(str(i).encode()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=300_000)
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parent.parent)
    args = parser.parse_args()
    sys.path.insert(0, str(args.tree / "daemon"))
    from codeweir.host.memory import release_free_memory
    from codeweir.index.vectors import VectorStore

    n, directory = args.n, Path(tempfile.mkdtemp(prefix="codeweir-vectors-"))
    try:
        rng = np.random.default_rng(0)
        store = VectorStore(directory, "bench", 384, ann_threshold=n + 1)
        for start in range(0, n, 20_000):
            rows = rng.standard_normal((min(20_000, n - start), 384)).astype(np.float32)
            rows /= np.linalg.norm(rows, axis=1, keepdims=True)
            store.add([key(i) for i in range(start, start + len(rows))], rows)
            store.save()
        del store, rows
        gc.collect()
        release_free_memory()
        print(f"{args.tree}, {n:,} rows: before the open {memory()}")
        started = time.perf_counter()
        store = VectorStore(directory, "bench", 384, ann_threshold=n + 1)
        print(f"  opened in {time.perf_counter() - started:.2f} s: {memory()}")
        query, times = rng.standard_normal(384).astype(np.float32), []
        for _ in range(20):
            started = time.perf_counter()
            store.search(query, 10)
            times.append(time.perf_counter() - started)
        print(f"  20 exact searches, p50 {1000 * sorted(times)[10]:.1f} ms: {memory()}")
        if hasattr(store, "release_pages"):
            store.release_pages()
            print(f"  released: {memory()}")
        candidates = [key(int(i)) for i in rng.integers(0, n, 2000)]
        started = time.perf_counter()
        store.search(query, 10, candidates=candidates)
        print(f"  a search over 2,000 candidates: {1000 * (time.perf_counter() - started):.1f} ms")
        hashes = [key(i) for i in range(0, 2 * n, 13)]  # half stored
        started = time.perf_counter()
        for h in hashes:
            h in store  # noqa: B015
        each = f"`in` {(time.perf_counter() - started) / len(hashes) * 1e6:.2f} us a hash"
        if hasattr(store, "has"):
            started = time.perf_counter()
            store.has(hashes)
            each += f", `has` {(time.perf_counter() - started) / len(hashes) * 1e6:.2f} us"
        print(f"  {each}")
    finally:
        shutil.rmtree(directory)


if __name__ == "__main__":
    main()
