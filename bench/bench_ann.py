"""Nearest-neighbour search for the vector store: faiss (codeweir's) beside hnswlib, usearch and exact numpy.

    PYTHONPATH=daemon:bench .venv/bin/python bench/bench_ann.py [--n 20000 100000] [--vectors real.npy] [--threads 1]

For each library, on the same unit vectors and queries: build time, single-query latency
(p50/p99), recall@10 against exact search, and whether its calls stall an event loop. The
stall figures: a trio task sleeps 1 ms again and again while the call runs in
`trio.to_thread.run_sync`; the longest it overslept is how long the daemon's event loop would
have stalled (a call holding the GIL throughout stalls it for the whole call). "busy" is how
much slower a build over the first 10k vectors runs beside a main thread spinning Python code
than beside the ticker: a library that takes the GIL back again and again (usearch, measured
before) slows down against a busy event loop even where the ticker sees no stall. Ratios are
to hnswlib, the library codeweir used before; "x exact" is exact p50 over the library's.

Vectors are synthetic unless --vectors names an (n, dim) float32 .npy of real embeddings:
clustered unit vectors near a 32-dimensional subspace, as sentence embeddings lie. hnswlib and
usearch are peers only, each skipped when not installed (pip install hnswlib usearch); codeweir
depends on faiss-cpu. Build threads default to 1, as the daemon's `refresh_index` builds.

Measured on the shared 2-core development machine (load average 2-5 from other workers), synthetic
384-d, 1 build thread, hnswlib 0.8.0, faiss-cpu 1.15.1, usearch 2.26.6; two runs (table in
bench/README.md):
  100k: hnswlib build 44.7 / 45.4 s, p50 0.24 ms, recall@10 1.000. faiss HNSWFlat build 1.31x /
        1.04x hnswlib's, p50 0.98x / 1.08x, recall 1.000. faiss IVFFlat build 0.28x / 0.38x, p50
        0.76x / 0.68x, recall 0.997. usearch build 1.6x / 2.0x, p50 2.2x / 2.0x, recall 1.000.
  20k:  hnswlib build 6.7 / 5.1 s; faiss HNSWFlat 0.58x / 1.22x, p50 0.69x / 1.06x.
  Stalls: the ticker's p99 oversleep is 0.3-6 ms for every library and the noise floor's max
  32-35 ms; single maxima up to 368 ms (faiss HNSWFlat at 100k in one run, 8 ms in the next),
  169 ms (faiss, Ctrl-C check on) and 44 ms (hnswlib) come and go with the machine's load; a
  thread spinning beside the builds at 100k saw gaps up to 46 ms (faiss) and 99 ms (hnswlib). No
  library holds the GIL through a build (that would stall the loop for all 5-90 s of it). "busy": hnswlib 1.5-2.1x, faiss HNSWFlat
  1.1-1.7x, faiss with its Ctrl-C check on 1.7-2.8x (a GIL-taking callback every ~100 Mflop),
  usearch 3.2-7.7x (it takes the GIL back again and again).
Hence faiss IndexHNSWFlat (inner product, M=16, efConstruction=100, efSearch=64) with the Ctrl-C
check off: hnswlib's recall, latency and build time, wheels instead of a -march=native compile.
IVFFlat builds 3x faster here, but these clustered vectors are its best case and it already
loses recall; measure it on real embeddings (--vectors) before moving to it. Exact scoring
below 100k vectors (25 ms at 100k on this loaded machine, 8 ms when quiet).
Since then the store's graph navigates over 8-bit codes (IndexHNSWSQ) at efSearch 256 and scores
its best 4k again exactly, so its float rows are held once, and it grows as rows come: see
bench_vectors_scale.py. The figures above were taken at efSearch 64; the peers here run at the
store's last efSearch, 384. The store has since moved to IVF-PQ (56 B a vector beside the graph's
524-567, built in seconds rather than minutes): bench_vectors_scale.py measures it.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable
from importlib import metadata

import numpy as np
import trio

# The HNSW graphs' parameters, as the store ran its graph before it moved to IVF-PQ.
M = 16
EF_CONSTRUCTION = 100
EF_SEARCH = 384


K = 10
TICK = 0.001
BUSY_ROWS = 10_000

Search = Callable[[np.ndarray], np.ndarray]  # (n, dim) queries -> (n, K) row numbers
# A peer: given the vectors and the build threads, a build to run in a thread and the search
# it leaves; the build must do all the work (set the thread count inside it: OpenMP's is per thread).
Peer = Callable[[np.ndarray, int], tuple[Callable[[], None], Search]]


def synthetic(n: int, dim: int, seed: int) -> np.ndarray:
    """Unit vectors near a 32-dimensional subspace: embeddings have a low intrinsic dimension."""
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(0).standard_normal((32, dim)).astype(np.float32)
    centres = rng.standard_normal((max(1, n // 50), 32)).astype(np.float32)
    latent = centres[rng.integers(0, len(centres), n)] + 0.5 * rng.standard_normal((n, 32)).astype(np.float32)
    x = latent @ basis + 0.5 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def exact_top(data: np.ndarray, queries: np.ndarray) -> np.ndarray:
    scores = queries @ data.T
    top = np.argpartition(-scores, K, axis=1)[:, :K]
    return np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1), axis=1)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth)]))


def latencies(search: Search, queries: np.ndarray) -> tuple[float, float]:
    times = []
    for q in queries:
        t = time.perf_counter()
        search(q[None])
        times.append(time.perf_counter() - t)
    times.sort()
    return 1000 * times[len(times) // 2], 1000 * times[int(0.99 * (len(times) - 1))]


def ticked(call: Callable[[], object]) -> tuple[float, float, float]:
    """(the call's seconds in trio.to_thread, the longest a 1 ms ticker on the loop overslept meanwhile
    and its 99th percentile, in ms)."""

    async def run() -> tuple[float, float, float]:
        late = [0.0]
        done = trio.Event()

        async def ticker() -> None:
            while not done.is_set():
                t = time.perf_counter()
                await trio.sleep(TICK)
                late.append(time.perf_counter() - t - TICK)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker)
            await trio.sleep(0.05)  # the ticker is running
            t = time.perf_counter()
            await trio.to_thread.run_sync(call)
            took = time.perf_counter() - t
            done.set()
        return took, 1000 * max(late), 1000 * float(np.percentile(late, 99))

    return trio.run(run)


def beside_busy_loop(call: Callable[[], object]) -> float:
    """The call's seconds in a thread while the main thread spins Python code (wants the GIL)."""
    done = threading.Event()
    took = []

    def worker() -> None:
        t = time.perf_counter()
        call()
        took.append(time.perf_counter() - t)
        done.set()

    thread = threading.Thread(target=worker)
    thread.start()
    spins = 0
    while not done.is_set():
        spins += 1
    thread.join()
    return took[0]


def exact(data: np.ndarray, threads: int) -> tuple[Callable[[], None], Search]:
    def search(queries: np.ndarray) -> np.ndarray:
        scores = queries @ data.T
        return np.argpartition(-scores, K, axis=1)[:, :K]

    return lambda: None, search


def hnswlib_hnsw(data: np.ndarray, threads: int) -> tuple[Callable[[], None], Search]:
    import hnswlib

    index = hnswlib.Index(space="ip", dim=data.shape[1])
    index.init_index(max_elements=len(data), M=M, ef_construction=EF_CONSTRUCTION)
    index.set_ef(EF_SEARCH)

    def build() -> None:
        index.set_num_threads(threads)
        index.add_items(data, np.arange(len(data)))

    return build, lambda queries: index.knn_query(queries, k=K, num_threads=1)[0]


def _faiss(ctrl_c_check: bool):  # type: ignore[no-untyped-def]
    """faiss with its Python Ctrl-C check (a GIL-taking callback in long calls) on, as faiss
    comes, or off, as codeweir.index.vectors runs it."""
    import faiss

    if ctrl_c_check:
        faiss.PythonInterruptCallback.reset()
    else:
        faiss.InterruptCallback.clear_instance()
    return faiss


def faiss_hnsw(data: np.ndarray, threads: int, ctrl_c_check: bool = False) -> tuple[Callable[[], None], Search]:
    faiss = _faiss(ctrl_c_check)
    index = faiss.IndexHNSWFlat(data.shape[1], M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = EF_CONSTRUCTION
    index.hnsw.efSearch = EF_SEARCH

    def build() -> None:
        faiss.omp_set_num_threads(threads)
        index.add(data)

    return build, lambda queries: index.search(queries, K)[1]


def faiss_ivf(data: np.ndarray, threads: int) -> tuple[Callable[[], None], Search]:
    """An inverted file: k-means cells (4 sqrt(n) of them), 16 searched per query."""
    faiss = _faiss(False)

    nlist = int(4 * np.sqrt(len(data)))
    quantizer = faiss.IndexFlatIP(data.shape[1])
    index = faiss.IndexIVFFlat(quantizer, data.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    index.nprobe = 16
    index.cp.min_points_per_centroid = 5  # small sets: no warning for fewer than 39 points a cell

    def build() -> None:
        faiss.omp_set_num_threads(threads)
        index.train(data)
        index.add(data)

    return build, lambda queries: index.search(queries, K)[1]


def usearch_hnsw(data: np.ndarray, threads: int) -> tuple[Callable[[], None], Search]:
    from usearch.index import Index

    index = Index(
        ndim=data.shape[1],
        metric="ip",
        dtype="f32",
        connectivity=M,
        expansion_add=EF_CONSTRUCTION,
        expansion_search=EF_SEARCH,
    )

    def build() -> None:
        index.add(np.arange(len(data)), data, threads=threads)

    def search(queries: np.ndarray) -> np.ndarray:
        keys = index.search(queries, K, threads=1).keys
        return keys.reshape(len(queries), -1)

    return build, search


PEERS: dict[str, Peer] = {
    "exact (numpy)": exact,
    "hnswlib HNSW": hnswlib_hnsw,
    "faiss HNSWFlat": faiss_hnsw,  # as codeweir runs it
    "  Ctrl-C check": lambda data, threads: faiss_hnsw(data, threads, ctrl_c_check=True),
    "faiss IVFFlat": faiss_ivf,
    "usearch HNSW": usearch_hnsw,
}


def measure(peer: Peer, data: np.ndarray, queries: np.ndarray, truth: np.ndarray, threads: int) -> dict:
    build, search = peer(data, threads)
    build_s, build_stall, build_p99 = ticked(build)
    small_build, _ = peer(data[:BUSY_ROWS], threads)
    alone, _, _ = ticked(small_build)
    small_build, _ = peer(data[:BUSY_ROWS], threads)
    busy = beside_busy_loop(small_build)
    _, query_stall, _ = ticked(lambda: [search(q[None]) for q in queries])
    return {
        "build_s": build_s,
        "build_stall": build_stall,
        "build_p99": build_p99,
        "query_stall": query_stall,
        "busy": busy / alone if alone > 0.01 else float("nan"),
        "lat": latencies(search, queries),
        "recall": recall(search(queries), truth),
    }


def ratio(value: float, base: float | None) -> str:
    return f"({value / base:5.2f}x)" if base else " " * 8


def report(n: int, dim: int, queries: int, results: dict[str, dict], floor: tuple[float, float]) -> None:
    base = results.get("hnswlib HNSW")
    exact_p50 = results["exact (numpy)"]["lat"][0]
    print(
        f"\n{n} vectors x {dim}: ratios to hnswlib; stalls: the 1 ms ticker's longest oversleep "
        f"(beside a thread sleeping 5 s: max {floor[0]:.1f}, p99 {floor[1]:.1f} ms)"
    )
    print(
        f"{'library':<15} {'build s':>17} {'p50 ms':>16} {'p99 ms':>16} {'x exact':>8} {'recall@10':>9} "
        f"{'build stall max / p99 ms':>24} {f'{queries} queries stall ms':>20} {'busy':>5}"
    )
    for name, r in results.items():
        b = base if base is not r else None
        build = f"{r['build_s']:8.1f} {ratio(r['build_s'], b and b['build_s'])}" if r["build_s"] > 0.01 else "-"
        busy = f"{r['busy']:5.2f}" if r["busy"] == r["busy"] else "-"
        p50, p99 = r["lat"]
        print(
            f"{name:<15} {build:>17} {p50:7.3f} {ratio(p50, b and b['lat'][0])} {p99:7.3f} {ratio(p99, b and b['lat'][1])} "
            f"{exact_p50 / p50:7.1f}x {r['recall']:9.3f} {r['build_stall']:15.1f} / {r['build_p99']:6.1f} {r['query_stall']:20.1f} "
            f"{busy:>5}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[20_000, 100_000], help="store sizes, each measured")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1, help="build threads (the daemon builds with 1)")
    parser.add_argument("--vectors", help="an (n, dim) float32 .npy of real embeddings (then --n is ignored)")
    args = parser.parse_args()

    sets = []
    if args.vectors:
        data = np.load(args.vectors).astype(np.float32)
        rng = np.random.default_rng(1)
        picked = rng.choice(len(data), args.queries, replace=False)
        queries = data[picked] + 0.05 * rng.standard_normal((args.queries, data.shape[1])).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        sets.append((data, queries))
    else:
        for n in args.n:
            both = synthetic(n + args.queries, args.dim, 0)
            sets.append((both[:n], both[n:]))
    versions = []
    for package in ("hnswlib", "faiss-cpu", "usearch"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} not installed: its rows are left out")
    print(f"{args.queries} queries, k={K}, {args.threads} build thread(s); {', '.join(versions)}")
    print(
        f"HNSW: M={M}, ef_construction={EF_CONSTRUCTION}, ef_search={EF_SEARCH}; "
        f"busy: a build over the first {BUSY_ROWS} rows beside a spinning main thread / beside the ticker"
    )
    _, *floor = ticked(lambda: time.sleep(5))
    for data, queries in sets:
        truth = exact_top(data, queries)
        results = {}
        for name, peer in PEERS.items():
            try:
                results[name] = measure(peer, data, queries, truth, args.threads)
            except ImportError:
                continue
        report(len(data), data.shape[1], len(queries), results, (floor[0], floor[1]))


if __name__ == "__main__":
    main()
