"""The vector store: (model id, content hash) -> vector, a cache that can always be rebuilt.

One directory per model holds append-only segment files (`seg-<n>.npy`, a structured array of
16-byte keys and float32 vectors), each written to a temp file, fsynced and renamed; small
segments are merged as they pile up. A lost or corrupt segment costs re-embedding, never
correctness, so it is dropped with a warning.

Search is exact (one matmul) over a candidate set or a small store. Past `ann_threshold`
vectors an HNSW index (hnswlib: best recall and latency in bench/bench_ann.py, and its calls
release the GIL) serves unfiltered queries; rows added since it was built are scored exactly
beside it, so a search always sees every vector. `refresh_index()` rebuilds it off to the side.

Threads: `add`, `missing` and `search` are cheap and may run on the event loop; `save` and
`refresh_index` do I/O and CPU work and belong in a worker thread. Rows are append-only and
published after they are written, so a search never sees a half-added row.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path

import attrs
import numpy as np

from .errors import StoreError

log = logging.getLogger(__name__)

ANN_THRESHOLD = 100_000
# hnswlib parameters (bench/bench_ann.py): M=16, ef_construction=100, ef=64 gave recall@10 >= 0.95.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 100
HNSW_EF_SEARCH = 64
# Rebuild the index once the rows it does not cover pass this share of the ones it does.
STALE_SHARE = 0.1
_KEY_BYTES = 16
_HEX_KEY = re.compile(r"[0-9a-f]{32}")
_SEGMENT = re.compile(r"seg-(\d{8})\.npy")


@attrs.frozen
class _Segment:
    path: Path
    start: int  # rows [start, end) of the store came from this file
    end: int


@attrs.frozen
class _Ann:
    index: object  # hnswlib.Index over rows [0, covered)
    covered: int


class VectorStore:
    def __init__(self, directory: Path, model_id: str, dim: int, *, ann_threshold: int = ANN_THRESHOLD) -> None:
        if not model_id or "/" in model_id or model_id.startswith("."):
            raise StoreError(f"model id {model_id!r} cannot name a directory")
        if dim <= 0:
            raise StoreError(f"vector dimension must be positive, got {dim}")
        self.model_id = model_id
        self.dim = dim
        self.directory = Path(directory) / model_id
        self._ann_threshold = ann_threshold
        self._dtype = np.dtype([("key", "u1", (_KEY_BYTES,)), ("vector", "<f4", (dim,))])
        self._keys: list[str] = []
        self._rows: dict[str, int] = {}
        self._matrix = np.empty((0, dim), dtype=np.float32)
        self._count = 0
        self._segments: list[_Segment] = []
        self._compact_all = False  # set when loading found overlapping segments (a crash mid-merge)
        self._ann: _Ann | None = None
        self._save_lock = threading.Lock()
        self._index_lock = threading.Lock()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{self.directory}: cannot create the vector store: {exc}") from None
        self._load()

    def __len__(self) -> int:
        return self._count

    def __contains__(self, content_hash: object) -> bool:
        return self._rows.get(content_hash, self._count) < self._count  # type: ignore[arg-type]

    def missing(self, hashes: Iterable[str]) -> list[str]:
        """The hashes without a vector, each once, in the order first given."""
        return list(dict.fromkeys(h for h in hashes if h not in self))

    def add(self, hashes: Sequence[str], vectors: np.ndarray) -> None:
        """Store vectors by content hash; a hash already stored keeps its vector."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape != (len(hashes), self.dim):
            raise ValueError(f"expected vectors of shape ({len(hashes)}, {self.dim}), got {vectors.shape}")
        for h in hashes:
            if not isinstance(h, str) or not _HEX_KEY.fullmatch(h):
                raise ValueError(f"content hash must be 32 lowercase hex digits, got {h!r}")
        fresh: dict[str, int] = {}
        for i, h in enumerate(hashes):
            if h not in self._rows and h not in fresh:
                fresh[h] = i
        if fresh:
            self._append(list(fresh), vectors[list(fresh.values())])

    def save(self) -> None:
        """Write the rows added since the last save as a new segment, and merge small segments."""
        with self._save_lock:
            count = self._count
            saved = self._segments[-1].end if self._segments else 0
            try:
                if count > saved:
                    self._segments.append(self._write_segment(saved, count))
                if self._compact_all and len(self._segments) > 1:
                    self._merge(0)
                self._compact_all = False
                # Tiered merging: a segment at least half its elder's size joins it, so there
                # are O(log n) segments and each row is rewritten O(log n) times.
                while len(self._segments) > 1 and self._rows_in(-1) * 2 >= self._rows_in(-2):
                    self._merge(len(self._segments) - 2)
            except OSError as exc:
                raise StoreError(f"{self.directory}: cannot save vectors: {exc}") from None

    def search(
        self, query: np.ndarray, k: int, *, candidates: Collection[str] | None = None
    ) -> list[tuple[str, float]]:
        """The k best (content hash, inner product), best first; only `candidates` when given."""
        query = np.asarray(query, dtype=np.float32)
        if query.shape != (self.dim,):
            raise ValueError(f"expected a query vector of shape ({self.dim},), got {query.shape}")
        if k <= 0:
            return []
        count, matrix, ann = self._count, self._matrix, self._ann  # one consistent view
        if candidates is not None:
            # Identical chunks share a hash: each scores once.
            unique = dict.fromkeys(candidates)
            rows = np.fromiter((r for h in unique if (r := self._rows.get(h, count)) < count), dtype=np.int64)
            return self._best(rows, matrix[rows] @ query, k)
        if ann is None or count < self._ann_threshold:
            return self._best(np.arange(count), matrix[:count] @ query, k)
        try:
            labels, distances = ann.index.knn_query(query, k=min(k, ann.covered), num_threads=1)
        except RuntimeError:  # hnswlib found fewer than k (tiny or odd graphs): score exactly
            return self._best(np.arange(count), matrix[:count] @ query, k)
        # hnswlib's "ip" distance is 1 - inner product.
        tail = np.arange(ann.covered, count)
        rows = np.concatenate([labels[0].astype(np.int64), tail])
        scores = np.concatenate([1.0 - distances[0], matrix[tail] @ query])
        return self._best(rows, scores, k)

    def refresh_index(self, *, threads: int = 1) -> bool:
        """Rebuild the ANN index if the store is past the threshold and the index is missing or
        stale; returns whether it did. Slow (seconds per 10k vectors): call it from a worker
        thread; searches go on with the old index meanwhile."""
        with self._index_lock:
            count, matrix, ann = self._count, self._matrix, self._ann
            covered = ann.covered if ann else 0
            if not count or count < self._ann_threshold or (ann and count - covered <= STALE_SHARE * covered):
                return False
            import hnswlib

            index = hnswlib.Index(space="ip", dim=self.dim)
            index.init_index(max_elements=count, M=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION)
            index.set_num_threads(threads)
            index.add_items(matrix[:count], np.arange(count))
            index.set_ef(HNSW_EF_SEARCH)
            self._ann = _Ann(index, count)
            try:
                self._save_index(index, count)
            except OSError as exc:  # the index is only a cache of a cache; keep it in memory
                log.warning("%s: cannot save the ANN index: %s", self.directory, exc)
            log.info("%s: ANN index rebuilt over %d vectors", self.directory, count)
            return True

    def _append(self, keys: list[str], vectors: np.ndarray) -> None:
        start, end = self._count, self._count + len(keys)
        matrix = self._matrix
        if end > len(matrix):  # grow by half, so appends are amortized O(1)
            matrix = np.empty((max(end, len(matrix) * 3 // 2, 1024), self.dim), dtype=np.float32)
            matrix[:start] = self._matrix[:start]
        matrix[start:end] = vectors
        self._keys.extend(keys)
        self._rows.update(zip(keys, range(start, end)))
        self._matrix = matrix
        self._count = end  # publish last: readers only look at rows below it

    def _best(self, rows: np.ndarray, scores: np.ndarray, k: int) -> list[tuple[str, float]]:
        if len(scores) > k:
            top = np.argpartition(-scores, k)[:k]
            rows, scores = rows[top], scores[top]
        order = np.argsort(-scores, kind="stable")
        return [(self._keys[rows[i]], float(scores[i])) for i in order]

    def _rows_in(self, i: int) -> int:
        return self._segments[i].end - self._segments[i].start

    def _write_segment(self, start: int, end: int) -> _Segment:
        records = np.empty(end - start, dtype=self._dtype)
        keys = bytes.fromhex("".join(self._keys[start:end]))
        records["key"] = np.frombuffer(keys, dtype=np.uint8).reshape(-1, _KEY_BYTES)
        records["vector"] = self._matrix[start:end]
        number = int(_SEGMENT.fullmatch(self._segments[-1].path.name)[1]) + 1 if self._segments else 1
        path = self.directory / f"seg-{number:08d}.npy"
        _write_atomically(path, lambda f: np.save(f, records, allow_pickle=False))
        return _Segment(path, start, end)

    def _merge(self, first: int) -> None:
        """Replace segments[first:] with one file; the new file lands before the old ones go."""
        old = self._segments[first:]
        merged = self._write_segment(old[0].start, old[-1].end)
        self._segments[first:] = [merged]
        for segment in old:
            segment.path.unlink(missing_ok=True)

    def _load(self) -> None:
        for path in self.directory.glob("*.tmp"):  # left by a crash mid-write
            path.unlink(missing_ok=True)
        for path in sorted(p for p in self.directory.iterdir() if _SEGMENT.fullmatch(p.name)):
            try:
                records = np.load(path, allow_pickle=False)
                if records.dtype != self._dtype or records.ndim != 1:
                    raise ValueError(f"dtype {records.dtype}, shape {records.shape}")
            except (OSError, ValueError, EOFError) as exc:
                log.warning("%s: corrupt vector segment dropped (%s); its chunks will be re-embedded", path, exc)
                path.unlink(missing_ok=True)
                continue
            hexes = records["key"].tobytes().hex()
            keys = [hexes[i : i + 2 * _KEY_BYTES] for i in range(0, len(hexes), 2 * _KEY_BYTES)]
            fresh = [i for i, k in enumerate(keys) if k not in self._rows]
            if len(fresh) < len(keys):
                self._compact_all = True
            start = self._count
            self._append([keys[i] for i in fresh], records["vector"][fresh])
            self._segments.append(_Segment(path, start, self._count))
        self._ann = self._load_index()

    def _index_paths(self) -> tuple[Path, Path]:
        return self.directory / "ann.hnsw", self.directory / "ann.json"

    def _keys_digest(self, count: int) -> str:
        return hashlib.sha256("".join(self._keys[:count]).encode()).hexdigest()

    def _save_index(self, index: object, count: int) -> None:
        index_path, meta_path = self._index_paths()
        tmp = index_path.with_name(index_path.name + ".tmp")
        index.save_index(str(tmp))
        _fsync_file(tmp)
        os.replace(tmp, index_path)
        meta = {"covered": count, "keys_sha256": self._keys_digest(count)}
        _write_atomically(meta_path, lambda f: f.write(json.dumps(meta).encode()))

    def _load_index(self) -> _Ann | None:
        """The saved ANN index, if it was built over exactly the rows loaded (in order)."""
        index_path, meta_path = self._index_paths()
        if not index_path.exists() or not meta_path.exists():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            covered = int(meta["covered"])
            if covered > self._count or meta["keys_sha256"] != self._keys_digest(covered):
                raise ValueError("built over other rows")
            import hnswlib

            index = hnswlib.Index(space="ip", dim=self.dim)
            index.load_index(str(index_path), max_elements=covered)
            index.set_ef(HNSW_EF_SEARCH)
            return _Ann(index, covered)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            log.warning("%s: ANN index dropped (%s); it will be rebuilt", index_path, exc)
            index_path.unlink(missing_ok=True)
            meta_path.unlink(missing_ok=True)
            return None


def _write_atomically(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_file(path.parent)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
