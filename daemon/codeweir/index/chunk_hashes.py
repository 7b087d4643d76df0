"""The chunks' content hashes per repository, as of the last commit, and what each commit changed.

The embed backlog counts from them which chunks have a vector (embed/coverage.py). Pure
bookkeeping: the store tells it what each write changes, when a commit lands and what the
chunk documents hold when first asked; the store's lock orders those calls.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable

# A chunk key as kept here: its 128-bit digest as an int (44 bytes, not a 32-character str's 81),
# else the key itself. Its hashes: one content hash (the same str object the counts hold), or a
# tuple of them where one key has several documents. The kernel's 1.77 M chunks: 471 MiB kept
# with str keys and tuples of one, read through a copy of the lot (708 MiB at the peak).
Key = int | str
Hashes = str | tuple[str, ...]


def _key(chunk_key: str) -> Key:
    try:
        return int(chunk_key, 16)
    except ValueError:
        return chunk_key


def _hashes(held: Hashes) -> tuple[str, ...]:
    return (held,) if isinstance(held, str) else held


class ChunkHashes:
    def __init__(self) -> None:
        self._files: dict[str, dict[Key, Hashes]] | None = None  # repo -> chunk key -> its hashes; None: not read yet
        self._counts: dict[str, Counter[str]] = {}  # repo -> content hash -> chunk documents
        self._pending: list[tuple[str, str | None, tuple[str, ...]]] = []  # chunk key None: the whole repository
        self._changes: deque[tuple[str, str, int]] = deque()  # (repo, hash, +n or -n) per commit

    @property
    def loaded(self) -> bool:
        return self._files is not None

    def load(self, documents: Iterable[tuple[str, str, str]]) -> None:
        """What the committed chunk documents hold: (repo, chunk key, content hash), one a document.
        Read in one pass; should the iteration raise, nothing is loaded."""
        files: dict[str, dict[Key, Hashes]] = {}
        counts: dict[str, Counter[str]] = {}
        for repo, chunk_key, content_hash in documents:
            keys = files.setdefault(repo, {})
            key = _key(chunk_key)
            held = keys.get(key)
            keys[key] = content_hash if held is None else (*_hashes(held), content_hash)
            counts.setdefault(repo, Counter())[content_hash] += 1
        self._files, self._counts = files, counts

    def counts(self) -> dict[str, Counter[str]]:
        """repo -> content hash -> chunk documents, as of the last commit: a copy. The changes
        recorded so far are in it, and dropped."""
        self._changes.clear()
        return {repo: Counter(counts) for repo, counts in self._counts.items()}

    def written(self, repo: str, chunk_key: str, hashes: tuple[str, ...]) -> None:
        """The chunk document `chunk_key` was written with these hashes (none: deleted), uncommitted."""
        self._pending.append((repo, chunk_key, hashes))

    def repo_dropped(self, repo: str) -> None:
        self._pending.append((repo, None, ()))

    def all_dropped(self) -> None:
        """Every chunk is gone (the index was found damaged and is built again)."""
        self._pending = [(repo, None, ()) for repo in self._files or {}]

    def rolled_back(self) -> None:
        self._pending = []

    def committed(self) -> None:
        """Bring the hashes up to what the commit made visible, and record the changes."""
        pending, self._pending = self._pending, []
        if self._files is None:
            return
        delta: Counter[tuple[str, str]] = Counter()
        for repo, key, hashes in pending:
            files = self._files.setdefault(repo, {})
            if key is None:
                for old in files.values():
                    delta.subtract((repo, h) for h in _hashes(old))
                files.clear()
                continue
            kept = _key(key)
            delta.subtract((repo, h) for h in _hashes(files.pop(kept, ())))
            if hashes:
                files[kept] = hashes[0] if len(hashes) == 1 else hashes
                delta.update((repo, h) for h in hashes)
        for (repo, h), n in delta.items():
            if not n:
                continue
            counts = self._counts.setdefault(repo, Counter())
            counts[h] += n
            if counts[h] <= 0:
                del counts[h]
            self._changes.append((repo, h, n))
        for repo in [r for r, files in self._files.items() if not files]:
            del self._files[repo]
            self._counts.pop(repo, None)

    def take_changes(self) -> list[tuple[str, str, int]]:
        """What the commits since the last call (or `counts`) changed: (repo, content hash, chunk
        documents added, or removed when negative). Cheap, never blocks; any thread."""
        changes = []
        while self._changes:
            try:
                changes.append(self._changes.popleft())
            except IndexError:  # cleared by counts() meanwhile
                break
        return changes
