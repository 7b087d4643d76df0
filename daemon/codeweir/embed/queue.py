"""The embed backlog's queue: the content hashes of chunks and commit messages waiting for a
vector, in the order the embedder takes them. Pure: no I/O, no trio.

The embedding service drains the writer's offers (`EmbedItem`) into it at once, whatever the
model is doing; the embedder takes from it in order: a watcher's or a hook's changes first,
then source before tests, generated, vendored and minified files (facets are stored per
chunk), then arrival. The queue holds the texts of a bounded number of offers; past that it
keeps their hashes, whose texts are read back from the index once the commit holding them has
landed; and past a bound on those, it keeps none and says from which commit on a scan of the
index will find what it left out (`left_out_until`): a full sync of the kernel offers 1.7 M
chunks, 335 MiB of entries had the queue kept them all. A watcher's or hook's are always kept.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Callable, Iterable

import attrs

from codeweir.facets import RANK_WEIGHTS, rank_weight

# Offered texts the queue holds in memory; the hashes of more are kept and their texts read
# back from the index when their turn comes (a full sync of a large repository offers them all).
QUEUED_TEXTS = 4096
# Hashes without their text the queue holds (about 200 bytes each) besides a watcher's or hook's.
QUEUED_HASHES = 65_536

# Embedding order within a priority: source first (rank 0), then tests, then generated and
# vendored files, then minified ones (facets.RANK_WEIGHTS, best first); commit messages with tests.
_RANKS = {weight: rank for rank, weight in enumerate(sorted(set(RANK_WEIGHTS.values()), reverse=True))}
COMMIT_RANK = _RANKS[RANK_WEIGHTS["test"]]


def embed_rank(facets: Iterable[str]) -> int:
    """A chunk's place in the embedding order by its facets: 0 for source, higher later."""
    return _RANKS[rank_weight(facets)]


@attrs.frozen
class EmbedItem:
    """A chunk's or a commit message's text, as the writer offers it to the embedding service."""

    repo: str
    kind: str  # one of documents.EMBEDDED_KINDS
    content_hash: str
    text: str
    rank: int = 0  # see embed_rank
    interactive: bool = False  # a watcher's or hook's sync wrote it: embedded first
    # Its document is in the index once this many commits have landed (EmbeddingService.commits).
    after_commit: int = 0


# A hash's place in the queue, smallest first, is one int: 0 if interactive else 1, then its rank,
# then its arrival. (A tuple of the three cost some 60 bytes more a hash, and a reconciliation of
# the kernel's index queues 1.7 M of them.)
_RANK_BITS = 8
_ARRIVAL_BITS = 48


def _order(interactive: bool, rank: int, arrival: int) -> int:
    return (((0 if interactive else 1) << _RANK_BITS | rank) << _ARRIVAL_BITS) | arrival


@attrs.define(slots=True)
class QueueEntry:
    """A content hash's place in the queue, and its text if the queue holds it."""

    key: int  # see _order
    kind: str
    text: str | None  # None: read it from the index when its turn comes
    after_commit: int  # ... which it can be once this many commits have landed


class EmbedQueue:
    """The content hashes waiting for a vector, best first (see the module's doc), each once."""

    def __init__(self, max_texts: int | None = None, max_hashes: int | None = None) -> None:
        self.max_texts = QUEUED_TEXTS if max_texts is None else max_texts
        self.max_hashes = QUEUED_HASHES if max_hashes is None else max_hashes
        # Not None: hashes were left out (the queue was full); a scan of the index finds them
        # once this many commits have landed (the last holding one of them).
        self.left_out_until: int | None = None
        self._heap: list[tuple[int, str]] = []  # entries of a re-keyed hash go stale
        self._todo: dict[str, QueueEntry] = {}
        self._texts = 0  # todos holding their text
        self._bounded = 0  # todos without their text, not interactive: up to max_hashes
        self._kinds: Counter[str] = Counter()
        self._arrival = itertools.count()
        self._deferred: list[str] = []  # text-less, their commit not landed yet: out of the heap

    def __len__(self) -> int:
        return len(self._todo)

    def __contains__(self, content_hash: object) -> bool:
        return content_hash in self._todo

    def waiting(self, kind: str) -> int:
        return self._kinds[kind]

    @property
    def full(self) -> bool:
        """No more hashes without their text are kept (but a watcher's or hook's)."""
        return self._bounded >= self.max_hashes

    def left_out(self, after_commit: int = 0) -> None:
        """Hashes without a vector are not in the queue: a scan finds them once `after_commit` commits have landed."""
        self.left_out_until = max(self.left_out_until or 0, after_commit)

    def push(
        self, content_hash: str, kind: str, text: str | None, *, rank: int, interactive: bool = False, after_commit: int = 0
    ) -> None:
        key = _order(interactive, rank, next(self._arrival))
        keep = text is not None and self._texts < self.max_texts
        todo = self._todo.get(content_hash)
        if todo is None:
            if not keep and not interactive and self.full:
                self.left_out(after_commit)
                return
            todo = QueueEntry(key, kind, text if keep else None, 0 if keep else after_commit)
            self._todo[content_hash] = todo
            self._kinds[kind] += 1
            self._texts += keep
            self._bounded += _bounded(todo)
            heapq.heappush(self._heap, (key, content_hash))
            return
        bounded = _bounded(todo)
        if todo.text is None:
            if keep:
                todo.text, todo.after_commit = text, 0
                self._texts += 1
            else:  # the newest write of this text may be the only one the index will hold
                todo.after_commit = max(todo.after_commit, after_commit)
        if key >> _ARRIVAL_BITS < todo.key >> _ARRIVAL_BITS:
            todo.key = key
            heapq.heappush(self._heap, (key, content_hash))
        self._bounded += _bounded(todo) - bounded

    def take(self, n: int, *, commits: int, done: Callable[[str], bool]) -> list[tuple[str, QueueEntry]]:
        """Up to `n` hashes, best first, each with its text or None (read it from the index, whose
        commit has landed: `commits` have). Those `done` says have a vector are dropped."""
        taken: list[tuple[str, QueueEntry]] = []
        while self._heap and len(taken) < n:
            key, h = heapq.heappop(self._heap)
            todo = self._todo.get(h)
            if todo is None or todo.key != key:
                continue  # taken already, or re-keyed: a fresher entry is in the heap
            if done(h):
                self._remove(h, todo)
            elif todo.text is None and todo.after_commit > commits:
                self._deferred.append(h)
            else:
                self._remove(h, todo)
                taken.append((h, todo))
        return taken

    def committed(self) -> None:
        """A commit landed: the deferred hashes may be read now."""
        deferred, self._deferred = self._deferred, []
        for h in deferred:
            if (todo := self._todo.get(h)) is not None:
                heapq.heappush(self._heap, (todo.key, h))

    def _remove(self, h: str, todo: QueueEntry) -> None:
        del self._todo[h]
        self._kinds[todo.kind] -= 1
        self._texts -= todo.text is not None
        self._bounded -= _bounded(todo)


def _bounded(todo: QueueEntry) -> bool:
    """Whether an entry counts against the queue's bound on hashes: no text, not interactive."""
    return todo.text is None and todo.key >> (_RANK_BITS + _ARRIVAL_BITS) == 1
