"""Which refs hold which file versions: the bookkeeping that lets several refs share documents.

A repository is indexed as one or more *views*: the main one (`MAIN`: its worktree, or for a
bare repository or one with `ref` set, that ref) and one per configured ref (`refs = [...]`),
named by the ref's short name ("main", "release/5.1", "v5.1.3"). Documents belong to file
*versions* (repository, path, blob id): a file whose blob is the same on several views is
chunked, stored and embedded once, and a view lists which version of each path it holds. A
search without a `ref:` filter sees the main view; one with it sees that ref's.

Chunks are shared too, between the versions of one path: a chunk document is keyed by its path
and content (`chunk_key`), so a function that two branches' versions of a file have alike is
stored once, at its *home* version's lines (the version that wrote it, always one some view
holds). Each version lists its chunks and where they sit (`Placement`, in its file document:
index/chunk_tables.py); a search that sees a chunk through another version places it there
(`Visibility.placed`).

`Membership` is pure state, no I/O: the writer changes what is written (`set`), and `commit`
publishes it to readers, who only ever see committed views (each published view is a new dict,
never changed after, so a search thread may read one while the writer works).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

import attrs

MAIN = ""  # the main view's name: the worktree (or the configured ref, or HEAD when bare)
VIEWS_KEY = "views"  # in a repository's meta document: view -> the commit its last sync saw


def version_key(repo: str, path: str, blob: str) -> str:
    """The term a version's file document and the chunks it is home to carry (repository names hold no "/")."""
    return f"{repo}/{path}\x00{blob}"


def chunk_key(repo: str, path: str, content_hash: str, occurrence: int) -> str:
    """The term of one chunk document: a path's chunk of this content (`occurrence`: which of the
    chunks of one version with this content, 0 for the first), whatever version holds it. A
    digest: a term per chunk, so a short one keeps Tantivy's term dictionary and merges small."""
    named = f"{repo}/{path}\x00{content_hash}\x00{occurrence}"
    return hashlib.blake2b(named.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


@attrs.frozen
class Placement:
    """Where a chunk sits in one version of its file."""

    blob: str
    start_line: int
    end_line: int
    start_byte: int
    end_byte: int
    content_hash: str


def chunk_keys(repo: str, path: str, content_hashes: Iterable[str]) -> list[str]:
    """The chunk key of each of a version's chunks, in order."""
    seen: dict[str, int] = {}
    keys = []
    for content_hash in content_hashes:
        n = seen[content_hash] = seen.get(content_hash, -1) + 1
        keys.append(chunk_key(repo, path, content_hash, n))
    return keys


@attrs.frozen
class Visibility:
    """What a search must do to see only some views: leave out the versions (`hidden`, version
    keys: file documents) and the chunks (`hidden_chunks`, chunk keys) none of them holds, and
    the repositories that have none of them; and place the chunks it sees through a version
    other than their home where that version has them (`placed`, by chunk key)."""

    hidden: tuple[str, ...] = ()
    repos_without: tuple[str, ...] = ()
    hidden_chunks: tuple[str, ...] = ()
    placed: Mapping[str, Placement] = attrs.field(factory=dict, eq=False)
    # The hidden versions again, by (repository, path): their blobs.
    hidden_by_path: Mapping[tuple[str, str], tuple[str, ...]] = attrs.field(factory=dict, eq=False)


Views = Mapping[str, Mapping[str, Mapping[str, str]]]  # repo -> view -> path -> blob


class Membership:
    def __init__(self, views: Views | None = None) -> None:
        self._committed: dict[str, dict[str, dict[str, str]]] = {
            repo: {view: dict(files) for view, files in by_view.items()} for repo, by_view in (views or {}).items()
        }
        self._written = _copy(self._committed)
        self._touched: set[tuple[str, str]] = set()
        # Visibilities computed from the committed views they sit beside: one attribute, read
        # once, so a search never caches what it computed from views since replaced.
        self._cache: tuple[Views, dict[tuple[str | None, tuple[str, ...]], Visibility]] = (self._committed, {})

    # -- reading (any thread: committed state only) -------------------------------------------

    def repos(self) -> list[str]:
        return sorted(self._committed)

    def views(self, repo: str) -> list[str]:
        """The views of `repo` that hold files, the main view first."""
        return sorted(self._committed.get(repo, {}), key=lambda v: (v != MAIN, v))

    def files(self, repo: str, view: str = MAIN) -> Mapping[str, str]:
        """path -> blob of `view`, as of the last commit (a mapping never changed after)."""
        return self._committed.get(repo, {}).get(view, {})

    def holders(self, repo: str, path: str, blob: str) -> tuple[str, ...]:
        """The views holding this version, as of the last commit, the main view first."""
        return tuple(v for v in self.views(repo) if self.files(repo, v).get(path) == blob)

    def visibility(self, repo: str | None, refs: tuple[str, ...] = ()) -> Visibility:
        """What to leave out so a search over `repo` (None: every repository) sees the views
        `refs` (empty: the main view) and nothing else."""
        key = (repo, tuple(sorted(set(refs))))
        committed, cache = self._cache
        cached = cache.get(key)
        if cached is None:
            cached = cache[key] = _visibility(committed, repo, key[1] or (MAIN,))
        return cached

    def known_visibility(self, repo: str | None, refs: tuple[str, ...] = ()) -> Visibility | None:
        """`visibility`, where it was worked out since the last commit; else None."""
        return self._cache[1].get((repo, tuple(sorted(set(refs)))))

    # -- writing (the writer task only) --------------------------------------------------------

    def written(self, repo: str, view: str) -> Mapping[str, str]:
        """path -> blob of `view` as written so far, committed or not."""
        return self._written.get(repo, {}).get(view, {})

    def set(self, repo: str, view: str, path: str, blob: str | None) -> str | None:
        """`view` holds `blob` at `path` from now on (None: no file there). Returns the blob it
        held before when no view holds that version any more: its documents are to go."""
        files = self._written.setdefault(repo, {}).setdefault(view, {})
        old = files.pop(path, None) if blob is None else files.get(path)
        if blob is not None:
            files[path] = blob
        if not files:
            del self._written[repo][view]
            if not self._written[repo]:
                del self._written[repo]
        self._touched.add((repo, view))
        if old is None or old == blob:
            return None
        return None if self.holds(repo, path, old) else old

    def drop_repo(self, repo: str) -> list[tuple[str, str]]:
        """Forget every view of `repo`; returns the (path, blob) versions they held."""
        views = self._written.pop(repo, {})
        self._touched.update((repo, view) for view in views)
        self._touched.update((repo, view) for view in self._committed.get(repo, {}))
        return sorted({(path, blob) for files in views.values() for path, blob in files.items()})

    def written_views(self, repo: str) -> Mapping[str, Mapping[str, str]]:
        """view -> path -> blob of `repo`, as written so far (the writer's; not to be changed)."""
        return self._written.get(repo, {})

    def holds(self, repo: str, path: str, blob: str) -> bool:
        """Whether a view holds this version, as written so far."""
        return any(files.get(path) == blob for files in self._written.get(repo, {}).values())

    def commit(self) -> None:
        """Publish what was written to readers."""
        if not self._touched:
            return
        committed = dict(self._committed)
        for repo, view in self._touched:
            files = self._written.get(repo, {}).get(view)
            views = dict(committed.get(repo, {}))
            if files is None:
                views.pop(view, None)
            else:
                views[view] = dict(files)
            if views:
                committed[repo] = views
            else:
                committed.pop(repo, None)
        self._touched.clear()
        self._committed = committed
        self._cache = (committed, {})

    def rollback(self) -> None:
        """Forget what was written since the last commit."""
        self._written = _copy(self._committed)
        self._touched.clear()


def _copy(views: Mapping[str, Mapping[str, Mapping[str, str]]]) -> dict[str, dict[str, dict[str, str]]]:
    return {repo: {view: dict(files) for view, files in by_view.items()} for repo, by_view in views.items()}


def loaded(members: Iterable[tuple[str, str, str, str]]) -> Membership:
    """Membership from (repo, view, path, blob) rows, as the index stores them."""
    views: dict[str, dict[str, dict[str, str]]] = {}
    for repo, view, path, blob in members:
        views.setdefault(repo, {}).setdefault(view, {})[path] = blob
    return Membership(views)


def _visibility(committed: Views, only: str | None, wanted: tuple[str, ...]) -> Visibility:
    by_path: dict[tuple[str, str], list[str]] = {}
    without: list[str] = []
    for repo in [only] if only is not None else sorted(committed):
        views = committed.get(repo, {})
        shown = [views[v] for v in wanted if v in views]
        if not shown:
            without.append(repo)
            continue
        for view, files in views.items():
            if view in wanted:
                continue
            for path, blob in files.items():
                blobs = by_path.setdefault((repo, path), [])
                if blob not in blobs and all(s.get(path) != blob for s in shown):
                    blobs.append(blob)
    hidden_by_path = {where: tuple(blobs) for where, blobs in by_path.items() if blobs}
    hidden = sorted(version_key(repo, path, blob) for (repo, path), blobs in hidden_by_path.items() for blob in blobs)
    return Visibility(tuple(hidden), tuple(without), hidden_by_path=hidden_by_path)
