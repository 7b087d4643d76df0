"""The vector store's ANN index: an inverted file over product-quantized codes, made, searched,
saved and loaded; and the lock its searches share with the rows added to it.

faiss `IndexIVFPQ`, inner product (faiss's calls release the GIL once its Ctrl-C check is off,
see `faiss_module`): each row is kept as PQ_BYTES of codes and an 8-byte label (its row in the
store) in one of up to IVF_LISTS lists, and a query scores the codes of its nearest
IVF_PROBE_SHARE of the lists; the store scores the best of those again exactly from its rows
(index/vectors.py). It is trained once, on IVF_TRAIN_ROWS rows drawn from those it is built over;
rows added later are coded and listed with what it learnt then. At 1M x 384
(bench/bench_vectors_scale.py) it holds 87 B a vector (56 of codes and label, the rest the
lists' spare room) and builds in 23 s, where an HNSW graph over 8-bit codes (`IndexHNSWSQ`,
before) held 524 and took ten minutes: at the kernel's 1.8 M chunks, 0.15 GB rather than 0.9.

Saved as `ann.faiss` beside `ann.json`, which names the format, the rows it covers and a digest
of their keys; one that does not match (another format, such as the HNSW graphs
`faiss-hnsw-sq8-ip/2` and `faiss-hnsw-flat-ip/1` or `ann.hnsw` hnswlib wrote before, other rows,
a damaged file) is dropped, and the store builds another.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from codeweir.host.durable import write_atomic, write_atomic_with

log = logging.getLogger(__name__)

# IVF-PQ parameters (bench/bench_vectors_scale.py). PQ_BYTES codes a vector (8 bits each; the
# largest divisor of the dimension up to it), at most IVF_LISTS lists (about 4 sqrt(n)), trained
# on IVF_TRAIN_ROWS rows (60 MiB of float32 at 384 dimensions, for a moment; k-means wants 39 a
# list); a query scores the codes of IVF_PROBE_SHARE of the lists. At 1M, the best 500 re-scored:
# recall@10 0.987, p99 9.5 ms (an eighth of the lists: 0.959, 7.7 ms).
PQ_BYTES = 48
IVF_LISTS = 1024
IVF_TRAIN_ROWS = 40_960
IVF_PROBE_SHARE = 1 / 4
FORMAT = "faiss-ivfpq-ip/1"  # in ann.json: an index file written otherwise is not read
_LEGACY = "ann.hnsw"  # hnswlib's index, written before faiss: dead weight, deleted on sight


def training_rows(count: int) -> np.ndarray:
    """The rows, of `count`, an index built over them is trained on (sorted; the same each time)."""
    return np.sort(np.random.default_rng(count).choice(count, min(count, IVF_TRAIN_ROWS), replace=False))


def new_index(dim: int, count: int, training: np.ndarray) -> Any:
    """An empty index for `count` rows of `dim`, trained on `training` (k-means: seconds, the GIL
    released)."""
    faiss = faiss_module()
    index = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, _lists_for(count), _pq_bytes(dim), 8, faiss.METRIC_INNER_PRODUCT)
    index.train(np.ascontiguousarray(training))
    return index


def search(index: Any, query: np.ndarray, wanted: int) -> np.ndarray:
    """The labels of the `wanted` rows whose codes score best against `query` (-1 pads)."""
    params = faiss_module().SearchParametersIVF(nprobe=max(1, round(index.nlist * IVF_PROBE_SHARE)))
    labels: np.ndarray = index.search(query[None], wanted, params=params)[1][0]  # one query: no OpenMP
    return labels


def index_paths(directory: Path) -> tuple[Path, Path, Path]:
    """The index, its description and the hnswlib index of old, in a store's directory."""
    return directory / "ann.faiss", directory / "ann.json", directory / _LEGACY


def save_index(directory: Path, index: Any, covered: int, keys_sha256: str) -> None:
    """Save `index`, over the store's first `covered` rows, whose keys' digest is `keys_sha256`."""
    index_path, meta_path, legacy = index_paths(directory)
    faiss = faiss_module()
    # The description goes first and comes back last: a crash between leaves an index
    # nothing describes, which the next load drops.
    meta_path.unlink(missing_ok=True)
    legacy.unlink(missing_ok=True)
    write_atomic_with(index_path, lambda f: faiss.write_index(index, faiss.PyCallbackIOWriter(f.write)))
    meta = {"format": FORMAT, "covered": covered, "keys_sha256": keys_sha256, "bytes": index_path.stat().st_size}
    write_atomic(meta_path, json.dumps(meta).encode())


def load_index(directory: Path, dim: int, count: int, keys_sha256: Callable[[int], str]) -> tuple[Any, int] | None:
    """The saved index and the rows it covers, if this code built it over exactly the first rows
    of the `count` the store holds (`keys_sha256(n)`: the digest of the first n rows' keys);
    else None, and what was there is deleted."""
    index_path, meta_path, legacy = index_paths(directory)
    if legacy.exists():
        log.info("%s: an hnswlib index, no longer read; deleted", legacy)
        legacy.unlink(missing_ok=True)
    if not index_path.exists() and not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if meta["format"] != FORMAT:
            raise ValueError(f"format {meta['format']!r}")
        covered = int(meta["covered"])
        if covered > count or meta["keys_sha256"] != keys_sha256(covered):
            raise ValueError("built over other rows")
        if index_path.stat().st_size != meta["bytes"]:
            raise ValueError("not the file described")
        faiss = faiss_module()
        index = faiss.read_index(str(index_path))
        if (
            not isinstance(index, faiss.IndexIVFPQ)
            or _pq_bytes(dim) != index.pq.M
            or index.metric_type != faiss.METRIC_INNER_PRODUCT
            or (index.d, index.ntotal) != (dim, covered)
        ):
            raise ValueError(f"a {type(index).__name__} of dimension {index.d} over {index.ntotal} rows")
        return index, covered
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, MemoryError) as exc:
        # RuntimeError: faiss could not read the file.
        log.warning("%s: ANN index dropped (%s); it will be rebuilt", index_path, exc)
        index_path.unlink(missing_ok=True)
        meta_path.unlink(missing_ok=True)
        return None


class SharedLock:
    """Held by many at once (`shared`) or by one alone (`exclusive`). A waiting exclusive holder
    keeps new shared ones out, and the shared ones waiting when it lets go go before it (or any
    other) takes it again: neither side starves."""

    def __init__(self) -> None:
        self._state = threading.Condition(threading.Lock())
        self._shared = 0
        self._exclusive = False
        self._wanted = 0  # exclusive holders waiting
        self._waiting = 0  # shared holders waiting
        self._admit = 0  # shared holders waiting when the exclusive one let go, not yet in
        self._releases = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._state:
            if self._exclusive or self._wanted:
                self._waiting += 1
                seen = self._releases
                while self._exclusive or (self._wanted and self._releases == seen):
                    self._state.wait()
                self._waiting -= 1
                if self._releases != seen:
                    self._admit -= 1
            self._shared += 1
        try:
            yield
        finally:
            with self._state:
                self._shared -= 1
                if not self._shared:
                    self._state.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._state:
            self._wanted += 1
            while self._exclusive or self._shared or self._admit:
                self._state.wait()
            self._wanted -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with self._state:
                self._exclusive = False
                self._releases += 1
                self._admit = self._waiting
                self._state.notify_all()


_faiss_module: ModuleType | None = None
_faiss_lock = threading.Lock()


def faiss_module() -> ModuleType:
    """faiss, imported on first use (it takes ~50 ms) with its Ctrl-C check off.

    faiss's Python layer installs a callback that long calls (a build, a k-means) run every
    ~100 Mflop, which takes the GIL to check for signals: against a busy event loop that made a
    build 1.6-2.3x slower in bench/bench_ann.py. It can only handle signals on the main thread,
    and codeweir builds in worker threads, so it is cleared, before any faiss call of ours runs."""
    global _faiss_module
    with _faiss_lock:
        if _faiss_module is None:
            import faiss

            module: ModuleType = faiss  # its stubs leave out some of what it has
            module.InterruptCallback.clear_instance()
            _faiss_module = module
        return _faiss_module


def _lists_for(count: int) -> int:
    """The IVF lists for an index built over `count` rows: a power of two near 4 sqrt(count), at most IVF_LISTS."""
    return max(1, min(IVF_LISTS, 1 << int(np.log2(max(4 * np.sqrt(count), 1)))))


def _pq_bytes(dim: int) -> int:
    """Sub-quantizers for `dim`: the largest divisor of it up to PQ_BYTES."""
    return max(m for m in range(1, PQ_BYTES + 1) if dim % m == 0)
