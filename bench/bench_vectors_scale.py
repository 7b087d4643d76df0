"""The vector store at a million vectors: its ANN index built, grown, searched, and its memory.

    PYTHONPATH=daemon:bench .venv/bin/python bench/bench_vectors_scale.py [--n 250000 1000000] [--more 50000]
        [--queries 200] [--threads 1] [--rebuild-max 300000] [--probe SHARE ...]

For each store size N, through codeweir's own `VectorStore` (384-d unit vectors, a mixture of
gaussians around 4,096 centres: each vector is its centre plus noise in a shared 32-d subspace and
a little everywhere; a query is a fresh draw, its 10th neighbour at cosine ~0.6): the time to
fill and save the store and build its index (`refresh_index`, saving it included), the process's
anonymous memory before and after the build (the index's share per vector beside a float copy's
4 * dim bytes), single-query latency p50/p99 of `search(q, 10)` beside exact scoring of every row
(what the store does without an index), recall@10 against exact; then --more rows added and
`refresh_index` again: the time to grow the index, the latency of searches run meanwhile in
another thread (a batch holds them off), recall and latency after; and a rebuild from nothing
over the same rows for the ratio (only up to --rebuild-max rows: above it the build over N stands
in, a lower bound on a rebuild over N + more). Its RSS peaks count the pages of its own exact
scans of the mapped rows, which it does not release.

Measured on the shared 2-core development machine, 1 build thread, faiss-cpu 1.15.1:
  IVF-PQ (1,024 lists, 48-byte codes, a quarter of the lists probed, the best 500 re-scored), 1M:
        fill and save 26.2 s; build 22.7 s; the index 87 B/vector; search p50 8.64 ms, p99 9.48 ms,
        recall@10 0.987 (an eighth of the lists: p99 7.72 ms, 0.959); exact p50 59 ms, p99 73 ms.
        50k more added in 1.8 s (0.080x the build); searches meanwhile p50 13.8 ms, p99 65.3 ms
        (the 50k not yet added scored exactly beside it), of which waiting for a batch p99 2.1 ms.
        After: p99 6.89 ms, recall@10 0.985.
  HNSW over 8-bit codes before (M 16, efConstruction 100, efSearch 384), 1M: build 592 s; the
        graph 524 B/vector; search p50 1.97 ms, p99 2.90 ms, recall@10 0.979; 50k more grown in
        46.3 s; searches meanwhile p99 16.2 ms, max 220 ms. 250k: build 129 s (90.4 s in a later
        run), 529-561 B/vector, recall@10 0.996.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from codeweir.host.memory import release_free_memory
from codeweir.index import vector_ann
from codeweir.index.vector_ann import IVF_LISTS, IVF_PROBE_SHARE, IVF_TRAIN_ROWS, PQ_BYTES
from codeweir.index.vectors import ANN_RERANK, VectorStore

K = 10
CENTRES = 4096
CHUNK = 50_000


def clustered(n: int, dim: int, seed: int) -> np.ndarray:
    """n unit vectors from a mixture of gaussians around CENTRES random unit centres."""
    rng = np.random.default_rng(seed)
    fixed = np.random.default_rng(0)
    centres = fixed.standard_normal((CENTRES, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    basis = fixed.standard_normal((32, dim)).astype(np.float32) / np.sqrt(32)
    x = centres[rng.integers(0, CENTRES, n)]
    x += 0.6 * rng.standard_normal((n, 32)).astype(np.float32) @ basis
    x += (0.3 / np.sqrt(dim)) * rng.standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def chunks(start: int, n: int, dim: int) -> Iterator[tuple[list[str], np.ndarray]]:
    """Rows [start, start + n) of the synthetic set as (keys, vectors), CHUNK at a time: the bench
    keeps no copy of its own, so the RSS is the store's."""
    for first in range(start, start + n, CHUNK):
        count = min(CHUNK, start + n - first)
        yield [key(i) for i in range(first, first + count)], clustered(count, dim, 1 + first // CHUNK)


def key(i: int) -> str:
    """Row i's hash: a content hash's 32 hex digits, spread as a real hash's are."""
    return hashlib.md5(str(i).encode()).hexdigest()


def rss_mib() -> tuple[float, float, float]:
    """(resident now, peak resident, anonymous now) in MiB, once malloc has given back what the
    bench's own arrays left free (the synthetic rows are drawn in temporaries of 75 MB)."""
    release_free_memory()
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return tuple(int(fields[f].split()[0]) / 1024 for f in ("VmRSS", "VmHWM", "RssAnon"))  # type: ignore[return-value]


def exact_top(store: VectorStore, query: np.ndarray) -> np.ndarray:
    scores = store._view.rows.scores(query, 0, len(store))  # the store's rows, read in place
    top = np.argpartition(-scores, K)[:K]
    return top[np.argsort(-scores[top])]


def percentiles(times: list[float]) -> str:
    times = sorted(times)
    p50, p99 = 1000 * times[len(times) // 2], 1000 * times[int(0.99 * (len(times) - 1))]
    return f"p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  max {1000 * times[-1]:7.2f} ms"


def exact_all(store: VectorStore, queries: np.ndarray) -> tuple[list[set[str]], list[float]]:
    """Each query's exact top k (as keys) and how long exact scoring of every row took."""
    truths, times = [], []
    for q in queries:
        t = time.perf_counter()
        top = exact_top(store, q)
        times.append(time.perf_counter() - t)
        truths.append({key(i) for i in top})
    return truths, times


def searched(store: VectorStore, queries: np.ndarray, truths: list[set[str]], exact_times: list[float]) -> None:
    """Latency and recall@10 of the store's search beside exact scoring of every row."""
    times, recalls = [], []
    for q, truth in zip(queries, truths):
        t = time.perf_counter()
        found = store.search(q, K)
        times.append(time.perf_counter() - t)
        recalls.append(len({h for h, _ in found} & truth) / K)
    ratio = sorted(exact_times)[int(0.99 * (len(exact_times) - 1))] / sorted(times)[int(0.99 * (len(times) - 1))]
    print(f"    search(q, {K}): {percentiles(times)}   recall@{K} {np.mean(recalls):.3f}   exact p99 / this p99: {ratio:.0f}x")


def run(n: int, more: int, queries: np.ndarray, threads: int, rebuild_max: int, probes: list[float], directory: Path) -> None:
    dim = queries.shape[1]
    store = VectorStore(directory, "bench", dim, ann_threshold=min(n, 100_000))
    _, _, anon_empty = rss_mib()
    t = time.perf_counter()
    for keys, rows in chunks(0, n, dim):
        store.add(keys, rows)
        store.save()  # as the daemon does every few seconds: the rows saved are read from their files
    fill_s = time.perf_counter() - t
    store.release_pages()  # as the daemon does once they are resident
    rss_rows, _, anon_rows = rss_mib()
    print(
        f"\n{n:,} vectors x {dim}: filled and saved in {fill_s:.1f} s; anonymous {anon_empty:,.0f} -> {anon_rows:,.0f} MiB "
        f"with the rows ({(anon_rows - anon_empty) * 2**20 / n:.0f} B/vector beside {4 * dim} for the float32 row; RSS {rss_rows:,.0f})"
    )
    t = time.perf_counter()
    assert store.refresh_index(threads=threads) and store.ann_builds == 1
    build_s = time.perf_counter() - t
    rss_built, peak, anon_built = rss_mib()
    graph = (anon_built - anon_rows) * 2**20 / n
    print(
        f"    build {build_s:.1f} s; RSS {rss_built:,.0f} MiB (peak {peak:,.0f}), anonymous {anon_built:,.0f}: the index "
        f"{graph:.0f} B/vector beside {4 * dim} B for a float copy"
    )
    truths, exact_times = exact_all(store, queries)
    print(f"    exact matmul:  {percentiles(exact_times)}")
    searched(store, queries, truths, exact_times)
    for share in probes:
        vector_ann.IVF_PROBE_SHARE = share
        print(f"  probing {share:g} of the lists:")
        searched(store, queries, truths, exact_times)
    vector_ann.IVF_PROBE_SHARE = IVF_PROBE_SHARE

    for keys, rows in chunks(n, more, dim):
        store.add(keys, rows)
    during: list[float] = []
    waits: list[float] = []
    done = threading.Event()
    shared = store._graph.shared

    @contextmanager
    def timed_shared() -> Iterator[None]:
        t = time.perf_counter()
        with shared():
            waits.append(time.perf_counter() - t)
            yield

    store._graph.shared = timed_shared  # type: ignore[method-assign]

    def search_meanwhile() -> None:
        i = 0
        while not done.is_set():
            t = time.perf_counter()
            store.search(queries[i % len(queries)], K)
            during.append(time.perf_counter() - t)
            i += 1
            done.wait(0.01)  # about 100 searches a second at most

    searcher = threading.Thread(target=search_meanwhile)
    searcher.start()
    t = time.perf_counter()
    assert store.refresh_index(threads=threads)
    grow_s = time.perf_counter() - t
    done.set()
    searcher.join()
    store._graph.shared = shared  # type: ignore[method-assign]
    assert store.ann_builds == 1, "grown, not rebuilt"
    store.save()
    store.release_pages()
    rss_grown, peak, anon_grown = rss_mib()
    print(
        f"    {more:,} more added to the graph in {grow_s:.1f} s; RSS {rss_grown:,.0f} MiB (peak {peak:,.0f}), anonymous {anon_grown:,.0f}"
    )
    print(f"    {len(during):,} searches meanwhile: {percentiles(during)}")
    print(f"      of which waiting for a batch: {percentiles(waits)}")
    truths, exact_times = exact_all(store, queries)
    print(f"    exact matmul:  {percentiles(exact_times)}")
    searched(store, queries, truths, exact_times)
    if n + more <= rebuild_max:
        t = time.perf_counter()
        assert store.refresh_index(threads=threads, rebuild=True) and store.ann_builds == 2
        rebuild_s = time.perf_counter() - t
        print(f"    rebuild over {n + more:,}: {rebuild_s:.1f} s; growing took {grow_s / rebuild_s:.3f}x of it")
    else:
        print(f"    rebuild over {n + more:,} not run: growing took {grow_s / build_s:.3f}x the build over {n:,} (at most)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[250_000, 1_000_000], help="store sizes, each measured")
    parser.add_argument("--more", type=int, default=50_000, help="rows added to the built graph")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1, help="build threads (the daemon builds with 1)")
    parser.add_argument("--probe", type=float, nargs="*", default=[], help="other shares of the lists to probe after the build")
    parser.add_argument("--rebuild-max", type=int, default=300_000, help="rebuild from nothing only up to this many rows")
    args = parser.parse_args()
    queries = clustered(args.queries, args.dim, 10**6)
    vector_ann.faiss_module()  # its libraries in the RSS before any store is filled
    print(
        f"IVF-PQ: up to {IVF_LISTS} lists, {PQ_BYTES}-byte codes, trained on {IVF_TRAIN_ROWS:,} rows, "
        f"probing {IVF_PROBE_SHARE:g} of the lists, the best {ANN_RERANK}k re-scored exactly; {args.threads} build thread(s); {args.queries} queries, k={K}"
    )
    for n in args.n:
        with tempfile.TemporaryDirectory(prefix="bench-vectors-") as directory:
            run(n, args.more, queries, args.threads, args.rebuild_max, args.probe, Path(directory))


if __name__ == "__main__":
    main()
