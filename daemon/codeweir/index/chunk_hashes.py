"""What each commit changed in the chunks' content hashes, per repository.

The embed backlog counts which chunks have a vector (embed/coverage.py): it reads every chunk's
hash from the committed index once (`Store.chunk_hash_counts`) and from then on applies what each
commit changed. Pure bookkeeping: the store tells it each chunk document a write adds or deletes
and when a commit lands; the store's lock orders those calls. It keeps no counts of its own: the
coverage's are the one copy (the kernel's 1.8 M hashes, 21 MiB, and as much again in each merge
of a copy, which a first index makes again and again).
"""

from __future__ import annotations

from collections import Counter, deque
from typing import NamedTuple


class ChunkHashChange(NamedTuple):
    """What a commit changed in a repository: the chunk documents of a content hash added (`n`
    > 0) or removed (`n` < 0); a `content_hash` None says every chunk of the repository went."""

    repo: str
    content_hash: str | None
    n: int


class ChunkHashes:
    def __init__(self) -> None:
        self._repos: set[str] | None = None  # the repositories that may have chunks; None: not read yet
        self._pending: list[ChunkHashChange] = []  # a content hash None: the repository dropped
        self._changes: deque[ChunkHashChange] = deque()

    def load(self, repos: set[str]) -> None:
        """The committed index was just read, with chunks in `repos`: changes are recorded from
        here on, and those recorded before are dropped."""
        self._repos = set(repos)
        self._changes.clear()

    def written(self, repo: str, content_hash: str, n: int) -> None:
        """A write added `n` chunk documents of `content_hash` (removed, when negative), uncommitted."""
        self._pending.append(ChunkHashChange(repo, content_hash, n))

    def repo_dropped(self, repo: str) -> None:
        self._pending.append(ChunkHashChange(repo, None, 0))

    def all_dropped(self) -> None:
        """Every chunk is gone (the index was found damaged and is built again)."""
        self._pending = [ChunkHashChange(repo, None, 0) for repo in self._repos or ()]

    def rolled_back(self) -> None:
        self._pending = []

    def committed(self) -> None:
        """Record what the commit made visible: per repository and hash, the documents added
        less those deleted, where that is not zero."""
        pending, self._pending = self._pending, []
        if self._repos is None:
            return
        delta: dict[str, Counter[str]] = {}
        for repo, content_hash, n in pending:
            if content_hash is None:
                if repo in self._repos:
                    self._repos.discard(repo)
                    self._changes.append(ChunkHashChange(repo, None, 0))
                delta.pop(repo, None)
            else:
                delta.setdefault(repo, Counter())[content_hash] += n
        for repo, changes in delta.items():
            self._repos.add(repo)
            self._changes.extend(ChunkHashChange(repo, h, n) for h, n in changes.items() if n)

    def take_changes(self) -> list[ChunkHashChange]:
        """What the commits since the last call (or `load`) changed, in order. Cheap, never
        blocks; any thread."""
        changes = []
        while self._changes:
            try:
                changes.append(self._changes.popleft())
            except IndexError:  # cleared by load() meanwhile
                break
        return changes
