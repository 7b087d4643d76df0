"""How much of each repository's index has a vector: the truth `status` and semantic search tell.

Per repository, the chunks whose embedded text has a vector in one store, counted as chunk
documents and as distinct texts (identical chunks share one vector). Kept up to date, never
recounted on a request: the store's chunk hashes are read once (`Store.chunk_hash_counts`),
each commit's changes are applied as it lands, and each vector added is counted once per
repository whose chunks have its text. Everything runs on the event loop; `recount` (after the
vector store forgets rows) costs a set lookup per distinct text.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Container, Iterable

import attrs


@attrs.frozen
class RepoCoverage:
    chunks: int = 0  # chunk documents
    chunks_embedded: int = 0  # ... whose text has a vector
    texts: int = 0  # distinct content hashes of those chunks
    texts_embedded: int = 0  # ... that have a vector

    def __add__(self, other: RepoCoverage) -> RepoCoverage:
        return RepoCoverage(*(a + b for a, b in zip(attrs.astuple(self), attrs.astuple(other), strict=True)))

    @property
    def percent(self) -> int:
        """Rounded down: 100 only when every chunk has a vector."""
        return self.chunks_embedded * 100 // self.chunks if self.chunks else 100


class Coverage:
    def __init__(self) -> None:
        self.loaded = False
        self._counts: dict[str, Counter[str]] = {}  # repo -> content hash -> chunk documents
        self._vectors: Container[str] = ()
        self._chunks: Counter[str] = Counter()
        self._chunks_embedded: Counter[str] = Counter()
        self._texts_embedded: Counter[str] = Counter()

    def reset(self, counts: dict[str, Counter[str]], vectors: Container[str]) -> None:
        """Start from the store's chunk hashes (a copy this object now owns) against `vectors`."""
        self._counts = counts
        self._vectors = vectors
        self.loaded = True
        self.recount()

    def recount(self) -> None:
        """Count again against the vector store (after it forgot rows)."""
        vectors = self._vectors
        self._chunks = Counter({repo: sum(counts.values()) for repo, counts in self._counts.items()})
        self._chunks_embedded.clear()
        self._texts_embedded.clear()
        for repo, counts in self._counts.items():
            embedded = [n for h, n in counts.items() if h in vectors]
            self._chunks_embedded[repo] = sum(embedded)
            self._texts_embedded[repo] = len(embedded)

    def changed(self, changes: Iterable[tuple[str, str, int]]) -> None:
        """A commit's changes: (repo, content hash, chunk documents added or, negative, removed)."""
        vectors = self._vectors
        for repo, h, n in changes:
            counts = self._counts.setdefault(repo, Counter())
            before = counts.get(h, 0)
            after = max(before + n, 0)
            if after:
                counts[h] = after
            else:
                counts.pop(h, None)
            self._chunks[repo] += after - before
            if h in vectors:
                self._chunks_embedded[repo] += after - before
                self._texts_embedded[repo] += (after > 0) - (before > 0)
            if not counts:
                del self._counts[repo]
                self._chunks.pop(repo, None)
                self._chunks_embedded.pop(repo, None)
                self._texts_embedded.pop(repo, None)

    def added(self, hashes: Iterable[str]) -> None:
        """Vectors just stored for these hashes, none of which had one before."""
        for h in hashes:
            for repo, counts in self._counts.items():
                if n := counts.get(h):
                    self._chunks_embedded[repo] += n
                    self._texts_embedded[repo] += 1

    def of(self, repo: str) -> RepoCoverage:
        counts = self._counts.get(repo)
        if not counts:
            return RepoCoverage()
        return RepoCoverage(self._chunks[repo], self._chunks_embedded[repo], len(counts), self._texts_embedded[repo])

    def total(self, repos: Iterable[str] | None = None) -> RepoCoverage:
        found = RepoCoverage()
        for repo in self._counts if repos is None else repos:
            found += self.of(repo)
        return found

    def texts_missing(self) -> int:
        """Distinct chunk texts without a vector, over every repository (a text in two counts twice)."""
        return sum(len(counts) - self._texts_embedded[repo] for repo, counts in self._counts.items())
