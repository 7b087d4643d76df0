"""The vector store's rows, and a row found by its key, without a Python object per row.

A row is a record of a 16-byte key (a content hash) and a float32 vector. The rows saved are
read in place from their segment files, mapped read-only (`numpy.load(mmap_mode="r")`): their
pages are the file's, which the page cache holds and the daemon may drop from its RSS at any
time (`host/memory.release_mapped_pages`). Only the rows added since the last save are in memory.
At the kernel's 1.8 M chunks the rows take 2.7 GB as float32: held in memory, with a list and a
dict of hex keys (some 150 bytes a row), no bound on the daemon's memory could hold.

Keys are found through `KeyIndex`: 64-bit digests of the keys, sorted, beside their rows (16
bytes a row), checked against the row's whole key, with a dict of the keys added since its
arrays were last merged. Pure: no I/O of its own (a mapped block reads its file as it is read).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence

import attrs
import numpy as np

from codeweir.index.digest_counts import digest64, digests64

KEY_BYTES = 16
# Keys added before they are merged into the sorted arrays: this many at the least, else a 64th.
MERGE_AT_LEAST = 4096
MERGE_SHARE = 64
# Rows read at once when a range is copied, scored or written (6 MB of float32 at 384 dimensions).
PIECE_ROWS = 4096


def record_dtype(dim: int) -> np.dtype:
    return np.dtype([("key", "u1", (KEY_BYTES,)), ("vector", "<f4", (dim,))])


def key_digests(keys: np.ndarray) -> np.ndarray:
    """uint64 digests of (n, 16) key bytes: their first 8, big-endian (what `digest64` takes of
    the hex)."""
    return np.ascontiguousarray(keys[:, :8]).view(">u8").ravel().astype(np.uint64)


def key_bytes(keys: Sequence[str]) -> np.ndarray:
    return np.frombuffer(bytes.fromhex("".join(keys)), dtype=np.uint8).reshape(-1, KEY_BYTES)


@attrs.frozen
class RowBlocks:
    """Rows [0, count) as consecutive blocks of records: block i holds rows from `starts[i]`.
    The blocks of saved rows map their segment files; the last may be an array in memory with
    room past `count` for the rows being added."""

    starts: tuple[int, ...]
    blocks: tuple[np.ndarray, ...]
    count: int

    def pieces(self, start: int, end: int) -> Iterator[np.ndarray]:
        """The records of rows [start, end), in order, as views of at most PIECE_ROWS rows."""
        end = min(end, self.count)
        i = max(bisect.bisect_right(self.starts, start) - 1, 0)
        while start < end and i < len(self.blocks):
            offset = self.starts[i]
            stop = min(end, offset + len(self.blocks[i]))
            for a in range(start, stop, PIECE_ROWS):
                yield self.blocks[i][a - offset : min(a + PIECE_ROWS, stop) - offset]
            start, i = max(start, stop), i + 1

    def vectors(self, start: int, end: int) -> np.ndarray:
        """Rows [start, end) as one C-contiguous float32 matrix (a copy)."""
        pieces = [piece["vector"] for piece in self.pieces(start, end)]
        return np.concatenate(pieces) if pieces else np.empty((0, self.blocks[0].dtype["vector"].shape[0]), np.float32)

    def scores(self, query: np.ndarray, start: int, end: int) -> np.ndarray:
        """Each row's inner product with `query`, rows [start, end), read in place."""
        scores = [piece["vector"] @ query for piece in self.pieces(start, end)]
        return np.concatenate(scores) if scores else np.empty(0, np.float32)

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The records of `rows` (any order, each below `count`)."""
        out = np.empty(len(rows), dtype=self.blocks[0].dtype)
        if not len(rows):
            return out
        block_of = np.searchsorted(np.asarray(self.starts), rows, side="right") - 1
        for i in np.unique(block_of):
            where = block_of == i
            out[where] = self.blocks[i][rows[where] - self.starts[i]]
        return out

    def key(self, row: int) -> bytes:
        i = bisect.bisect_right(self.starts, row) - 1
        key: bytes = self.blocks[i][row - self.starts[i]]["key"].tobytes()
        return key


@attrs.frozen
class _Sorted:
    digests: np.ndarray  # uint64, ascending
    rows: np.ndarray  # int64, the row of each
    added: dict[str, int]  # hex key -> row: added since the arrays were merged


class KeyIndex:
    """Hex key -> row. Rows are added under the caller's lock; lookups may run meanwhile from
    any thread: each reads one published state, and a row at or past the caller's count is not
    there yet."""

    def __init__(self, digests: np.ndarray | None = None, rows: np.ndarray | None = None) -> None:
        """From the rows' digests (any order) and their rows."""
        if digests is None or rows is None or not len(digests):
            self._state = _Sorted(np.zeros(0, np.uint64), np.zeros(0, np.int64), {})
            return
        order = np.argsort(digests, kind="stable")
        self._state = _Sorted(digests[order].astype(np.uint64), rows[order].astype(np.int64), {})

    def add(self, keys: Sequence[str], start: int) -> None:
        """`keys` (none of them here yet) are rows start, start + 1, ..."""
        state = self._state
        state.added.update(zip(keys, range(start, start + len(keys))))
        if len(state.added) > max(MERGE_AT_LEAST, len(state.digests) // MERGE_SHARE):
            added = np.fromiter(state.added.values(), np.int64, len(state.added))
            digests = digests64(state.added)
            order = np.argsort(digests, kind="stable")
            at = np.searchsorted(state.digests, digests[order], side="right")
            self._state = _Sorted(np.insert(state.digests, at, digests[order]), np.insert(state.rows, at, added[order]), {})

    def row(self, key: str, blocks: RowBlocks) -> int:
        """The row of `key` among `blocks`' rows, else -1."""
        state = self._state
        row = state.added.get(key)
        if row is None:
            row = self._sorted_row(state, key, digest64(key), blocks) if len(state.digests) else -1
        return row if row < blocks.count else -1

    def rows(self, keys: Sequence[str], blocks: RowBlocks) -> np.ndarray:
        """The row of each key among `blocks`' rows (-1 where none): a lookup of many at once."""
        state = self._state
        out = np.fromiter((state.added.get(k, -1) for k in keys), np.int64, len(keys))
        rest = np.flatnonzero(out < 0)
        if len(rest) and len(state.digests):
            wanted = digests64(keys[i] for i in rest.tolist())
            at = np.minimum(np.searchsorted(state.digests, wanted), len(state.digests) - 1)
            found = state.digests[at] == wanted
            rest, at, wanted = rest[found], at[found], wanted[found]
            rows = state.rows[at]
            seen = rows < blocks.count
            whole = np.zeros(len(rows), bool)
            whole[seen] = (blocks.take(rows[seen])["key"] == key_bytes([keys[i] for i in rest[seen].tolist()])).all(axis=1)
            out[rest[whole]] = rows[whole]
            for j in np.flatnonzero(~whole):  # another key with the same 64 bits came first: look past it
                i = int(rest[j])
                out[i] = self._sorted_row(state, keys[i], int(wanted[j]), blocks)
        out[out >= blocks.count] = -1
        return out

    def digests(self, count: int) -> np.ndarray:
        """The digest of rows [0, count), in the order of the rows."""
        state = self._state
        out = np.zeros(count, np.uint64)
        held = state.rows < count
        out[state.rows[held]] = state.digests[held]
        for key, row in state.added.copy().items():  # a copy: an add may run meanwhile
            if row < count:
                out[row] = digest64(key)
        return out

    @staticmethod
    def _sorted_row(state: _Sorted, key: str, digest: int, blocks: RowBlocks) -> int:
        whole = bytes.fromhex(key)
        at = int(np.searchsorted(state.digests, np.uint64(digest)))
        while at < len(state.digests) and int(state.digests[at]) == digest:
            row = int(state.rows[at])
            if row < blocks.count and blocks.key(row) == whole:
                return row
            at += 1
        return -1
