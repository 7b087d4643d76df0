"""A multiset of digests (chunk keys, content hashes) held in numpy arrays, not Python objects.

The embed backlog's coverage counts every chunk of every repository: the kernel's 1.8 M chunks
took 349 MiB as dicts of ints and strs.
Here a digest is 64 bits (the first 16 hex digits of a 32-digit digest, else a hash of the
string) with a 4-byte count: 12 bytes a distinct digest. Two of a million digests share their
64 bits with odds of about one in 40 million, and that costs a count off by one, not an error.
Changes go to a small dict, merged into the sorted arrays once it passes a 64th of them, so a
change costs a dict update and a binary search. Beside them, a hash's digest from its hex digits
(`digest64`) and hashes held as bytes back to hex (`hex_keys`). Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

# The changes held in the dict before they are merged into the arrays: this many at the least,
# else a 64th of the arrays (27,000 at the kernel's 1.7 M hashes, some 3 MiB of dict).
MERGE_AT_LEAST = 4096
MERGE_SHARE = 64
# A count: chunk documents of one digest in one repository.
COUNT = np.int32


def digest64(digest: str) -> int:
    """The 64 bits a digest is counted by."""
    if len(digest) == 32:
        try:
            return int(digest[:16], 16)
        except ValueError:
            pass
    return int.from_bytes(hashlib.blake2b(digest.encode(), digest_size=8).digest(), "big")


def digests64(digests: Iterable[str]) -> np.ndarray:
    return np.fromiter((digest64(d) for d in digests), np.uint64)


def hex_keys(keys: np.ndarray) -> list[str]:
    """Hashes held as bytes, a row of 16 each, as their 32 hex digits."""
    text = np.ascontiguousarray(keys).tobytes().hex()
    width = 2 * keys.shape[1]
    return [text[i : i + width] for i in range(0, len(text), width)]


class DigestCounts:
    """digest (`digest64`) -> a count above zero."""

    def __init__(self, digests: np.ndarray | None = None) -> None:
        """One occurrence per element of `digests` (uint64, any order)."""
        if digests is None or not len(digests):
            self._keys, self._counts = np.zeros(0, np.uint64), np.zeros(0, COUNT)
        else:
            keys, counts = np.unique(digests, return_counts=True)
            self._keys, self._counts = keys.astype(np.uint64, copy=False), counts.astype(COUNT)
        self._keys.flags.writeable = self._counts.flags.writeable = False
        self._changed: dict[int, int] = {}  # digest -> its count less the arrays' (never 0)
        self._distinct = len(self._keys)
        self._total = int(self._counts.sum())

    @classmethod
    def of(cls, digests: Iterable[str]) -> DigestCounts:
        return cls(digests64(digests))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DigestCounts):
            return NotImplemented
        (keys, counts), (other_keys, other_counts) = self.arrays(), other.arrays()
        return np.array_equal(keys, other_keys) and np.array_equal(counts, other_counts)

    # It changes: not hashable.
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"DigestCounts({len(self)} digests, {self.total} occurrences)"

    def __len__(self) -> int:
        """Distinct digests."""
        return self._distinct

    @property
    def total(self) -> int:
        """Occurrences, over every digest."""
        return self._total

    def get(self, digest: int) -> int:
        return self._stored(digest) + self._changed.get(digest, 0)

    def add(self, digest: int, n: int) -> tuple[int, int]:
        """Count `n` more occurrences (fewer when negative; never below none): the count before and after."""
        before = self.get(digest)
        after = max(before + n, 0)
        if after != before:
            change = self._changed.get(digest, 0) + after - before
            if change:
                self._changed[digest] = change
            else:
                del self._changed[digest]
            self._distinct += (after > 0) - (before > 0)
            self._total += after - before
            if len(self._changed) > max(MERGE_AT_LEAST, len(self._keys) // MERGE_SHARE):
                self._merge()
        return before, after

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """The digests, sorted, and their counts: read-only arrays."""
        self._merge()
        return self._keys, self._counts

    def copy(self) -> DigestCounts:
        copied = DigestCounts()
        copied._keys, copied._counts = self.arrays()  # replaced, never changed in place
        copied._distinct, copied._total = self._distinct, self._total
        return copied

    def _stored(self, digest: int) -> int:
        keys = self._keys
        i = int(keys.searchsorted(np.uint64(digest)))
        return int(self._counts[i]) if i < len(keys) and keys[i] == digest else 0

    def _merge(self) -> None:
        """The changes into the arrays: a pass over them, not a sort (0.01 s at the kernel's 1.7 M
        hashes), since it may run on the event loop (embed/coverage.py). It makes one new pair of
        arrays (a second only when counts fall to zero): the kernel's pair is 20 MiB, and two
        sets of counts merge through a first index."""
        if not self._changed:
            return
        changed = np.fromiter(self._changed, np.uint64, len(self._changed))
        changes = np.fromiter(self._changed.values(), np.int64, len(self._changed))
        order = np.argsort(changed)
        changed, changes = changed[order], changes[order]
        at = self._keys.searchsorted(changed)
        held = at < len(self._keys)
        held[held] = self._keys[at[held]] == changed[held]
        new = ~held
        keys = np.insert(self._keys, at[new], changed[new])
        counts = np.insert(self._counts, at[new], changes[new].astype(COUNT))
        # A digest held shifts by the new ones inserted before it: those smaller than it.
        counts[(at + np.cumsum(new))[held]] += changes[held].astype(COUNT)
        if not (kept := counts > 0).all():
            keys, counts = keys[kept], counts[kept]
        self._keys, self._counts = keys, counts
        self._keys.flags.writeable = self._counts.flags.writeable = False
        self._changed = {}
