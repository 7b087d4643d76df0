"""The vector store: (model id, content hash) -> vector, a cache that can always be rebuilt.

One directory per model holds append-only segment files (`seg-<n>.npy`, a structured array of
16-byte keys and float32 vectors), each written to a temp file, fsynced and renamed; small
segments are merged as they pile up. A lost or corrupt segment costs re-embedding, never
correctness, so it is dropped with a warning. `retain` forgets the vectors no chunk refers to
any more: it writes the kept rows as one new segment, then records in `retained.json` that the
segments numbered below it are dead (the step that commits), then deletes them; a crash at any
point loads either the old set or the new one. The rows saved are read from their segments,
mapped read-only, and only those added since the last save (every few seconds) are in memory,
with 16 bytes a row to find a row by its hash (`index/vector_rows.py`): the kernel's 1.8 M
chunks, embedded, are 2.7 GB of float32, which the daemon's memory could not hold. A search's
pages stay in the page cache, and leave the daemon's RSS when it releases them.

Search is exact (one matmul) over a candidate set or a small store. Past `ann_threshold`
vectors an ANN index (`index/vector_ann.py`: an inverted file over product-quantized codes)
serves unfiltered queries, and its ANN_RERANK * k best are scored again exactly from the store's
rows. Rows added since the index last grew are scored exactly beside it, so a search always sees
every vector. `refresh_index()` adds those rows to it in batches sized to hold searches off for
about ANN_HOLD_S each: faiss cannot add to an index that another thread searches, so searches
share `_graph` and a batch takes it alone. Only what the index cannot follow is rebuilt, off to
the side: `retain` renumbering the rows, or no index (none saved, or one that does not match).
The index is a cache of a cache, saved again once the rows added since pass STALE_SHARE of it;
a saved index over a prefix of the rows is loaded and the rest added.

Threads: `add`, `missing` and `search` are cheap and may run on the event loop; `save`,
`retain` and `refresh_index` do I/O and CPU work and belong in a worker thread. Readers take one
`_Rows` view and use only it: rows are appended before the view that counts them is published,
a save publishes one that reads them from the segment written, and `retain` publishes a new
view over new objects, so a search never sees a half-changed store.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

import attrs
import numpy as np

from codeweir.errors import StoreError
from codeweir.host.durable import write_atomic, write_atomic_with
from codeweir.host.memory import release_mapped_pages
from codeweir.index import vector_ann
from codeweir.index.digest_counts import hex_keys
from codeweir.index.vector_rows import PIECE_ROWS, KeyIndex, RowBlocks, key_bytes, key_digests, record_dtype

log = logging.getLogger(__name__)

ANN_THRESHOLD = 100_000
# The ANN index's best ANN_RERANK * k rows are scored again exactly (vector_ann: recall at 1M).
ANN_RERANK = 50
# A search for more than this share of the rows scores them all: the index would list most anyway.
ANN_EXACT_SHARE = 1 / 16
# Save the index again once the rows added to it since it was saved pass this share of those saved.
STALE_SHARE = 0.1
# About how long one batch added to a built index keeps searches waiting, in seconds.
ANN_HOLD_S = 0.002
# How far a stored vector's length may be from 1 (a normalized float32 vector is within 1e-6).
NORM_TOLERANCE = 1e-3
# Rows added to an index being built between two looks at `stop`.
ANN_ADD_ROWS = 4096
# Pieces of PIECE_ROWS read from the segments between two releases of their pages (some 100 MB).
RELEASE_PIECES = 16
_HEX_KEY = re.compile(r"[0-9a-f]{32}")
_SEGMENT = re.compile(r"seg-(\d{8})\.npy")
_RETAINED = "retained.json"  # {"first_segment": n}: the segments numbered below n are dead


@attrs.frozen
class _Segment:
    path: Path
    start: int  # rows [start, end) of the store came from this file
    end: int
    records: np.ndarray  # its rows, mapped read-only (in memory when loading left some out)


@attrs.frozen
class _Rows:
    """One consistent view of the store. Appends fill the tail block and `index` in place and
    publish a view with a larger count; a save maps the rows it wrote and starts a new tail;
    `retain` publishes a view over new objects, of a new generation."""

    rows: RowBlocks
    index: KeyIndex  # may hold keys of rows at or past the count (not yet published)
    generation: int  # the rows' numbering: `retain` renumbers them

    @property
    def count(self) -> int:
        return self.rows.count


@attrs.frozen
class _Ann:
    index: Any  # faiss.IndexIVFPQ over rows [0, covered) (or more, while a batch is added), labels = rows
    covered: int
    generation: int  # the view's it was built over: rows numbered otherwise cannot use it
    saved: int  # the rows ann.faiss covers (0: not saved)


class VectorStore:
    def __init__(
        self, directory: Path, model_id: str, dim: int, *, ann_threshold: int = ANN_THRESHOLD, unit_norm: bool = True
    ) -> None:
        if not model_id or "/" in model_id or model_id.startswith("."):
            raise StoreError(f"model id {model_id!r} cannot name a directory")
        if dim <= 0:
            raise StoreError(f"vector dimension must be positive, got {dim}")
        self.model_id = model_id
        self.dim = dim
        self.directory = Path(directory) / model_id
        self._ann_threshold = ann_threshold
        self._unit_norm = unit_norm  # the model normalizes its vectors: a stored row of another length is damage
        self._dtype = record_dtype(dim)
        self._view = _Rows(RowBlocks((0,), (np.empty(0, self._dtype),), 0), KeyIndex(), 0)
        self._segments: list[_Segment] = []
        self._first_segment = 1  # the lowest segment number still alive (see `retain`)
        self._compact_all = False  # set when loading found overlapping segments (a crash mid-merge)
        self._ann: _Ann | None = None
        self._graph = vector_ann.SharedLock()  # searches share it; a batch added to the index holds it alone
        self.ann_builds = 0  # indexes built from nothing (not loaded, not grown) since this store was opened
        self._save_lock = threading.Lock()
        self._index_lock = threading.Lock()
        self._append_lock = threading.Lock()  # held briefly: by `add`, and by a save or `retain` to swap views
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{self.directory}: cannot create the vector store: {exc}") from None
        self._load()

    def __len__(self) -> int:
        return self._view.count

    def __iter__(self) -> Iterator[str]:
        """The hashes stored, in the order of their rows."""
        return iter(self.added_since(0))

    def __contains__(self, content_hash: object) -> bool:
        view = self._view
        return (
            isinstance(content_hash, str)
            and _HEX_KEY.fullmatch(content_hash) is not None
            and view.index.row(content_hash, view.rows) >= 0
        )

    def has(self, hashes: Sequence[str]) -> np.ndarray:
        """Whether each hash has a vector (bool), looked up together: a commit's thousands of
        chunk hashes at well under a microsecond each, where `in` costs a few."""
        view = self._view
        valid = np.fromiter((isinstance(h, str) and _HEX_KEY.fullmatch(h) is not None for h in hashes), bool, len(hashes))
        found = np.zeros(len(hashes), bool)
        if valid.any():
            found[valid] = view.index.rows([h for h, ok in zip(hashes, valid.tolist(), strict=True) if ok], view.rows) >= 0
        return found

    def missing(self, hashes: Iterable[str]) -> list[str]:
        """The hashes without a vector, each once, in the order first given."""
        return list(dict.fromkeys(h for h in hashes if h not in self))

    def added_since(self, row: int) -> list[str]:
        """The hashes of the rows from `row` on: rows are numbered in the order they were added
        (`len()` before an add is where its rows start), until a `retain` renumbers them."""
        view = self._view
        return [h for piece in self._released(view.rows.pieces(row, view.count)) for h in hex_keys(piece["key"])]

    def digests(self) -> np.ndarray:
        """Each row's hash as its 64-bit digest (`digest64`), in the order of the rows; read
        from memory, not the segment files."""
        view = self._view
        return view.index.digests(view.count)

    def release_pages(self) -> None:
        """Drop from the daemon's RSS the pages of the segment files it has read (they stay in
        the page cache): after a search scored every row, a merge or a load."""
        release_mapped_pages(self.directory)

    def add(self, hashes: Sequence[str], vectors: np.ndarray) -> None:
        """Store vectors by content hash; a hash already stored keeps its vector."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape != (len(hashes), self.dim):
            raise ValueError(f"expected vectors of shape ({len(hashes)}, {self.dim}), got {vectors.shape}")
        for h in hashes:
            if not isinstance(h, str) or not _HEX_KEY.fullmatch(h):
                raise ValueError(f"content hash must be 32 lowercase hex digits, got {h!r}")
        with self._append_lock:
            fresh: dict[str, int] = {}
            for i, h in enumerate(hashes):
                if h not in self and h not in fresh:
                    fresh[h] = i
            if fresh:
                self._append(list(fresh), vectors[list(fresh.values())])

    def retain(self, live: np.ndarray, *, keep_from: int | None = None, at_least: int = 1) -> int:
        """Forget every vector whose hash's digest (`digest64`) is not in `live`, but the rows
        from `keep_from` on, in memory and on disk; returns how many were forgotten. With fewer
        than `at_least` to forget it does nothing and returns 0. Rows added meanwhile are kept
        (and saved by the next `save`)."""
        with self._save_lock, self._index_lock:
            view = self._view
            digests = view.index.digests(view.count)
            keep = np.isin(digests, live)
            if keep_from is not None:
                keep[keep_from:] = True
            kept = np.flatnonzero(keep)
            dropped = view.count - len(kept)
            if not dropped or dropped < at_least:
                return 0
            pieces = (view.rows.take(kept[a : a + PIECE_ROWS]) for a in range(0, len(kept), PIECE_ROWS))
            old = self._segments
            try:
                segment = self._write_segment(pieces, len(kept), 0)
                meta = json.dumps({"first_segment": _number(segment.path)}).encode()
                write_atomic(self.directory / _RETAINED, meta)
            except OSError as exc:  # the old segments are all still there: nothing changed
                raise StoreError(f"{self.directory}: cannot rewrite the vectors: {exc}") from None
            index = KeyIndex(digests[kept], np.arange(len(kept)))
            with self._append_lock:
                self._segments = [segment]
                self._first_segment = _number(segment.path)
                self._ann = None
                self._compact_all = False
                now = self._view
                self._view = _Rows(RowBlocks((0,), (segment.records,), len(kept)), index, view.generation + 1)
                if now.count > view.count:  # added while the segment was written
                    added = np.concatenate(list(now.rows.pieces(view.count, now.count)))
                    self._append(hex_keys(added["key"]), added["vector"])
            try:
                for path in [s.path for s in old] + list(vector_ann.index_paths(self.directory)):
                    path.unlink(missing_ok=True)
            except OSError as exc:  # dead by the record above: the next load deletes them
                log.warning("%s: cannot delete forgotten vectors yet: %s", self.directory, exc)
            log.info("%s: %d vectors no chunk refers to forgotten, %d kept", self.directory, dropped, len(kept))
            return dropped

    def save(self) -> None:
        """Write the rows added since the last save as a new segment, and merge small segments;
        the rows written are read from their files from then on."""
        with self._save_lock:
            view = self._view
            saved = self._segments[-1].end if self._segments else 0
            try:
                if view.count > saved:
                    self._segments.append(self._write_segment(view.rows.pieces(saved, view.count), view.count - saved, saved))
                    self._map_saved()
                if self._compact_all and len(self._segments) > 1:
                    self._merge(0)
                self._compact_all = False
                # Tiered merging: a segment at least half its elder's size joins it, so there
                # are O(log n) segments and each row is rewritten O(log n) times.
                while len(self._segments) > 1 and self._rows_in(-1) * 2 >= self._rows_in(-2):
                    self._merge(len(self._segments) - 2)
            except OSError as exc:
                raise StoreError(f"{self.directory}: cannot save vectors: {exc}") from None

    def search(self, query: np.ndarray, k: int, *, candidates: Collection[str] | None = None) -> list[tuple[str, float]]:
        """The k best (content hash, inner product), best first; only `candidates` when given."""
        query = np.asarray(query, dtype=np.float32)
        if query.shape != (self.dim,):
            raise ValueError(f"expected a query vector of shape ({self.dim},), got {query.shape}")
        if k <= 0:
            return []
        if candidates is not None:
            view = self._view
            # Identical chunks share a hash: each scores once.
            rows = view.index.rows(list(dict.fromkeys(candidates)), view.rows)
            rows = rows[rows >= 0]
            return _best(view, rows, view.rows.take(rows)["vector"] @ query, k)
        wanted, labels = k * ANN_RERANK, None
        ann, view = self._ann, self._view
        if ann is not None:
            with self._graph.shared():
                # The index first: it never covers a row the view read after it lacks.
                ann, view = self._ann, self._view
                if (
                    ann
                    and ann.generation == view.generation
                    and self._ann_threshold <= view.count
                    and wanted <= ANN_EXACT_SHARE * view.count
                ):
                    labels = vector_ann.search(ann.index, query, wanted)  # one query: no OpenMP
        count = view.count
        if ann is None or labels is None:
            return _best(view, np.arange(count), view.rows.scores(query, 0, count), k)
        # faiss pads with -1 when the index yields fewer than asked; rows past `covered` are the tail's.
        found = labels[(labels >= 0) & (labels < ann.covered)].astype(np.int64)
        if len(found) < min(k, ann.covered):  # tiny or odd indexes: score exactly
            return _best(view, np.arange(count), view.rows.scores(query, 0, count), k)
        rows = np.concatenate([found, np.arange(ann.covered, count)])
        scores = np.concatenate([view.rows.take(found)["vector"] @ query, view.rows.scores(query, ann.covered, count)])
        return _best(view, rows, scores, k)

    def refresh_index(
        self, *, threads: int = 1, stop: Callable[[], bool] = lambda: False, build: bool = True, rebuild: bool = False
    ) -> bool:
        """Bring the ANN index up to date if the store is past the threshold: add the rows it
        lacks to it, or (`build`) build one from nothing when there is none or `retain`
        renumbered the rows (or `rebuild`); returns whether it changed the index. Slow (a build:
        some 10 s at 250k vectors, 23 s at 1M, its k-means first): call it from a worker
        thread, a build from a niced one; searches go on meanwhile, each waiting for one
        batch at most. It stops as soon as `stop()` is true between two batches (a daemon
        stopping): a build is given up, the old index kept; the rows already added stay."""
        with self._index_lock:
            view, ann = self._view, self._ann
            count = view.count
            if (
                not count
                or count < self._ann_threshold
                or (ann and ann.generation == view.generation and ann.covered == count and not rebuild)
            ):
                return False
            vector_ann.faiss_module().omp_set_num_threads(threads)  # OpenMP's thread count is this thread's own
            if built := ann is None or ann.generation != view.generation or rebuild:
                if not build or (ann := self._build(view, stop)) is None:
                    return False
            else:
                before = ann.covered
                if (ann := self._grow(ann, view, stop)).covered == before:
                    return False
            # An index grown and not saved costs its rows' adds again after a restart; a new one, a build.
            if ann.covered - ann.saved > STALE_SHARE * ann.saved and (built or not stop()):
                try:
                    vector_ann.save_index(self.directory, ann.index, ann.covered, _keys_digest(view, ann.covered))
                    self._ann = ann = attrs.evolve(ann, saved=ann.covered)
                except OSError as exc:  # the index is only a cache of a cache; keep it in memory
                    log.warning("%s: cannot save the ANN index: %s", self.directory, exc)
            self.release_pages()
            return True

    def _build(self, view: _Rows, stop: Callable[[], bool]) -> _Ann | None:
        """A new index over the view's rows, published; None if `stop()` came first."""
        count = view.count
        index = vector_ann.new_index(self.dim, count, view.rows.take(vector_ann.training_rows(count))["vector"])
        for start in range(0, count, ANN_ADD_ROWS):  # the GIL released throughout; labels are rows 0..count-1
            if stop():
                return None
            index.add(view.rows.vectors(start, min(start + ANN_ADD_ROWS, count)))
            if start // ANN_ADD_ROWS % RELEASE_PIECES == 0:
                self.release_pages()
        self._ann = ann = _Ann(index, count, view.generation, 0)
        self.ann_builds += 1
        log.info("%s: ANN index built over %d vectors", self.directory, count)
        return ann

    def _grow(self, ann: _Ann, view: _Rows, stop: Callable[[], bool]) -> _Ann:
        """The view's rows past `ann.covered` added to its index, a batch at a time, each batch
        published as it lands; the batch size follows how long the last one held searches off."""
        batch, added = 16, ann.covered
        while ann.covered < view.count and not stop():
            end = min(ann.covered + batch, view.count)
            rows = view.rows.vectors(ann.covered, end)
            with self._graph.exclusive():
                started = time.perf_counter()
                ann.index.add(rows)
                took = time.perf_counter() - started
                self._ann = ann = attrs.evolve(ann, covered=end)
            batch = max(1, min(ANN_ADD_ROWS, 2 * batch, int(batch * ANN_HOLD_S / max(took, 1e-6))))
        if ann.covered > added:
            log.info("%s: %d vectors added to the ANN index, now over %d", self.directory, ann.covered - added, ann.covered)
        return ann

    def _append(self, keys: list[str], vectors: np.ndarray) -> None:
        """Rows for `keys` (none of them stored) after the last, into the tail block in memory."""
        view = self._view
        starts, blocks = view.rows.starts, view.rows.blocks
        start, end = view.count, view.count + len(keys)
        if not blocks[-1].flags.writeable:  # the last rows are saved: a tail starts after them
            starts, blocks = (*starts, start), (*blocks, np.empty(0, self._dtype))
        tail, offset = blocks[-1], starts[-1]
        if end - offset > len(tail):  # grow by half, so appends are amortized O(1)
            grown = np.empty(max(end - offset, len(tail) * 3 // 2, 1024), self._dtype)
            grown[: start - offset] = tail[: start - offset]
            tail, blocks = grown, (*blocks[:-1], grown)
        tail["key"][start - offset : end - offset] = key_bytes(keys)
        tail["vector"][start - offset : end - offset] = vectors
        view.index.add(keys, start)
        self._view = _Rows(RowBlocks(starts, blocks, end), view.index, view.generation)  # publish last

    def _map_saved(self) -> None:
        """A view that reads the saved rows from their segments, the rest from a new tail."""
        with self._append_lock:
            now = self._view
            saved = self._segments[-1].end if self._segments else 0
            rest = list(now.rows.pieces(saved, now.count))
            tail = np.concatenate(rest) if rest else np.empty(0, self._dtype)
            starts = (*(s.start for s in self._segments), saved)
            blocks = (*(s.records for s in self._segments), tail)
            self._view = _Rows(RowBlocks(starts, blocks, now.count), now.index, now.generation)

    def _released(self, pieces: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """`pieces`, with the pages of the segments read for them released every RELEASE_PIECES."""
        for i, piece in enumerate(pieces, 1):
            yield piece
            if i % RELEASE_PIECES == 0:
                self.release_pages()

    def _rows_in(self, i: int) -> int:
        return self._segments[i].end - self._segments[i].start

    def _write_segment(self, pieces: Iterable[np.ndarray], count: int, start: int) -> _Segment:
        """Rows [start, start + count) of the store, given as records in order, as a new
        segment numbered after every other, mapped."""
        number = max(_number(self._segments[-1].path) + 1 if self._segments else 1, self._first_segment)
        path = self.directory / f"seg-{number:08d}.npy"

        def write(f: BinaryIO) -> None:
            header = {"descr": np.lib.format.dtype_to_descr(self._dtype), "fortran_order": False, "shape": (count,)}
            np.lib.format.write_array_header_1_0(f, header)
            written = 0
            for piece in self._released(pieces):
                f.write(np.ascontiguousarray(piece).data)
                written += len(piece)
            assert written == count, (written, count)

        write_atomic_with(path, write)
        return _Segment(path, start, start + count, self._map(path))

    def _map(self, path: Path) -> np.ndarray:
        """A segment's records, mapped read-only (an empty one: an empty array, as empty files
        cannot be mapped)."""
        records = np.load(path, mmap_mode="r", allow_pickle=False)
        if not len(records):
            records = np.empty(0, records.dtype)
            records.flags.writeable = False
        return records

    def _merge(self, first: int) -> None:
        """Replace segments[first:] with one file; the new file lands before the old ones go."""
        old = self._segments[first:]
        pieces = self._view.rows.pieces(old[0].start, old[-1].end)
        self._segments[first:] = [self._write_segment(pieces, old[-1].end - old[0].start, old[0].start)]
        self._map_saved()
        for segment in old:
            segment.path.unlink(missing_ok=True)

    def _load(self) -> None:
        for path in self.directory.glob("*.tmp"):  # left by a crash mid-write
            path.unlink(missing_ok=True)
        self._first_segment = self._read_first_segment()
        digests: list[np.ndarray] = []
        count = 0
        for path in sorted(p for p in self.directory.iterdir() if _SEGMENT.fullmatch(p.name)):
            if _number(path) < self._first_segment:  # forgotten by `retain`; a crash kept the file
                path.unlink(missing_ok=True)
                continue
            try:
                records = self._map(path)
                if records.dtype != self._dtype or records.ndim != 1:
                    raise ValueError(f"dtype {records.dtype}, shape {records.shape}")
                for piece in self._released(records[a : a + PIECE_ROWS] for a in range(0, len(records), PIECE_ROWS)):
                    _check_rows(piece["vector"], self._unit_norm)
            except (OSError, ValueError, EOFError) as exc:
                log.warning("%s: corrupt vector segment dropped (%s); its chunks will be re-embedded", path, exc)
                path.unlink(missing_ok=True)
                continue
            fresh = key_digests(records["key"])
            if digests and (shared := np.flatnonzero(np.isin(fresh, np.concatenate(digests)))).size:
                # A crash mid-merge left rows in two segments: the earlier one's count. Those of
                # 64 bits in common are compared whole.
                seen = KeyIndex(np.concatenate(digests), np.arange(count))
                blocks = RowBlocks(tuple(s.start for s in self._segments), tuple(s.records for s in self._segments), count)
                again = shared[seen.rows(hex_keys(records["key"][shared]), blocks) >= 0]
                if len(again):
                    keep = np.ones(len(records), bool)
                    keep[again] = False
                    records, fresh = records[keep], fresh[keep]  # a copy, in memory until compacted
                    records.flags.writeable = False
                    self._compact_all = True
            self._segments.append(_Segment(path, count, count + len(records), records))
            digests.append(fresh)
            count += len(records)
        self._view = _Rows(
            RowBlocks(
                (*(s.start for s in self._segments), count),
                (*(s.records for s in self._segments), np.empty(0, self._dtype)),
                count,
            ),
            KeyIndex(np.concatenate(digests) if digests else None, np.arange(count)),
            0,
        )
        if (saved := vector_ann.load_index(self.directory, self.dim, count, partial(_keys_digest, self._view))) is not None:
            index, covered = saved
            self._ann = _Ann(index, covered, self._view.generation, covered)
        self.release_pages()

    def _read_first_segment(self) -> int:
        path = self.directory / _RETAINED
        if not path.exists():
            return 1
        try:
            return int(json.loads(path.read_text())["first_segment"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # Only the segments `retain` had not deleted yet come back: a superset, still correct.
            log.warning("%s: unreadable (%s); every segment is loaded", path, exc)
            return 1


def _check_rows(vectors: np.ndarray, unit_norm: bool) -> None:
    """ValueError unless every row is finite and, for a model that normalizes, of length 1
    within NORM_TOLERANCE: random bytes in a segment would otherwise be served as vectors."""
    finite = np.isfinite(vectors).all(axis=1)
    if not finite.all():
        raise ValueError(f"{np.count_nonzero(~finite)} of {len(vectors)} vectors are not finite")
    if unit_norm and len(vectors):
        with np.errstate(over="ignore", invalid="ignore"):
            norms = np.sqrt(np.einsum("ij,ij->i", vectors, vectors, dtype=np.float64))
        off = np.abs(norms - 1) > NORM_TOLERANCE
        if off.any():
            raise ValueError(
                f"{np.count_nonzero(off)} of {len(vectors)} vectors are not of unit length (one: {norms[off][0]:.3g})"
            )


def _best(view: _Rows, rows: np.ndarray, scores: np.ndarray, k: int) -> list[tuple[str, float]]:
    if len(scores) > k:
        top = np.argpartition(-scores, k)[:k]
        rows, scores = rows[top], scores[top]
    order = np.argsort(-scores, kind="stable")
    keys = hex_keys(view.rows.take(rows[order])["key"])
    return [(key, float(score)) for key, score in zip(keys, scores[order], strict=True)]


def _keys_digest(view: _Rows, count: int) -> str:
    """The sha256 of the hex keys of rows [0, count), joined."""
    digest = hashlib.sha256()
    for piece in view.rows.pieces(0, count):
        digest.update(np.ascontiguousarray(piece["key"]).tobytes().hex().encode())
    return digest.hexdigest()


def _number(segment: Path) -> int:
    match = _SEGMENT.fullmatch(segment.name)
    assert match is not None, segment  # only segment files are listed
    return int(match[1])
