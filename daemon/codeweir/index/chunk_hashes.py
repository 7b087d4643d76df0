"""The chunks' content hashes per repository, as of the last commit, and what each commit changed.

The embed backlog counts from them which chunks have a vector (embed/coverage.py). Pure
bookkeeping: the store reads the counts from the committed index when first asked, tells it
each chunk document a write adds or deletes and when a commit lands; the store's lock orders
those calls. The counts are `DigestCounts`, 16 bytes a distinct hash where dicts of Python
objects took 200.
"""

from __future__ import annotations

from collections import Counter, deque
from typing import NamedTuple

from codeweir.index.digest_counts import DigestCounts, digest64


class ChunkHashChange(NamedTuple):
    """What a commit changed in a repository: the chunk documents of a content hash added (`n`
    > 0) or removed (`n` < 0); a `content_hash` None says the repository has none left at all."""

    repo: str
    content_hash: str | None
    n: int


class ChunkHashes:
    def __init__(self) -> None:
        self._counts: dict[str, DigestCounts] | None = None  # repo -> content hash -> chunk documents; None: not read yet
        self._pending: list[ChunkHashChange] = []  # a content hash None: the repository dropped
        self._changes: deque[ChunkHashChange] = deque()

    @property
    def loaded(self) -> bool:
        return self._counts is not None

    def load(self, counts: dict[str, DigestCounts]) -> None:
        """What the committed chunk documents hold: repo -> content hash -> documents."""
        self._counts = {repo: found for repo, found in counts.items() if len(found)}

    def counts(self) -> dict[str, DigestCounts]:
        """repo -> content hash -> chunk documents, as of the last commit: a copy. The changes
        recorded so far are in it, and dropped."""
        self._changes.clear()
        return {repo: counts.copy() for repo, counts in (self._counts or {}).items()}

    def written(self, repo: str, content_hash: str, n: int) -> None:
        """A write added `n` chunk documents of `content_hash` (removed, when negative), uncommitted."""
        self._pending.append(ChunkHashChange(repo, content_hash, n))

    def repo_dropped(self, repo: str) -> None:
        self._pending.append(ChunkHashChange(repo, None, 0))

    def all_dropped(self) -> None:
        """Every chunk is gone (the index was found damaged and is built again)."""
        self._pending = [ChunkHashChange(repo, None, 0) for repo in self._counts or {}]

    def rolled_back(self) -> None:
        self._pending = []

    def committed(self) -> None:
        """Bring the counts up to what the commit made visible, and record the changes."""
        pending, self._pending = self._pending, []
        if self._counts is None:
            return
        delta: dict[str, Counter[str]] = {}
        for repo, content_hash, n in pending:
            if content_hash is None:
                if self._counts.pop(repo, None) is not None:
                    self._changes.append(ChunkHashChange(repo, None, 0))
                delta.pop(repo, None)
            else:
                delta.setdefault(repo, Counter())[content_hash] += n
        for repo, changes in delta.items():
            counts = self._counts.get(repo) or self._counts.setdefault(repo, DigestCounts())
            for content_hash, n in changes.items():
                before, after = counts.add(digest64(content_hash), n)
                if after != before:
                    self._changes.append(ChunkHashChange(repo, content_hash, after - before))
            if not len(counts):
                del self._counts[repo]
                self._changes.append(ChunkHashChange(repo, None, 0))

    def take_changes(self) -> list[ChunkHashChange]:
        """What the commits since the last call (or `counts`) changed, in order. Cheap, never
        blocks; any thread."""
        changes = []
        while self._changes:
            try:
                changes.append(self._changes.popleft())
            except IndexError:  # cleared by counts() meanwhile
                break
        return changes
