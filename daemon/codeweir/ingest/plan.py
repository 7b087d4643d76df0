"""Sync planning: what is indexed against what the repository holds now, per view (the worktree
and each configured ref). Pure; no I/O."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from operator import attrgetter

import attrs

from codeweir.globs import PathScope
from codeweir.records import TrackedFile


@attrs.frozen
class Plan:
    index: tuple[TrackedFile, ...]  # new, or changed (blob differs), in path order
    delete: tuple[str, ...]  # indexed paths no longer present, in order
    unchanged: int


def plan_sync(
    indexed: Mapping[str, str],
    current: Sequence[TrackedFile],
    *,
    full: bool = False,
    only_paths: Collection[str] | None = None,
) -> Plan:
    """Plan a sync from `indexed` (path -> blob id in the index) and the `current` files.

    A file is (re)indexed when it is new or its blob id differs, or always when `full`.
    `only_paths` makes a partial sync: only those files, and files below those directories,
    are considered for indexing and deletion. Raises ValueError if a path appears twice in
    `current`.
    """
    scope = None if only_paths is None else PathScope.of(only_paths)
    considered = list(current) if scope is None else [f for f in current if f.path in scope]
    present = {f.path: f.blob for f in considered}
    if len(present) != len(considered):
        counts = Counter(f.path for f in considered)
        duplicates = sorted(p for p, n in counts.items() if n > 1)
        raise ValueError(f"current files list a path more than once: {', '.join(duplicates[:5])}")
    if scope is None and not full and present == indexed:  # nothing changed: one comparison in C
        return Plan(index=(), delete=(), unchanged=len(considered))
    considered.sort(key=attrgetter("path"))
    to_index = tuple(f for f in considered if full or indexed.get(f.path) != f.blob)
    delete = tuple(sorted(p for p in indexed.keys() - present.keys() if scope is None or p in scope))
    return Plan(index=to_index, delete=delete, unchanged=len(considered) - len(to_index))


@attrs.frozen
class Version:
    """A file version no view in the index holds yet: parsed once, for every view taking it."""

    file: TrackedFile
    read_from: str  # the view it is read from: a ref's (its blob is in the object store) over the worktree's
    views: tuple[str, ...]


@attrs.frozen
class ViewsPlan:
    adopt: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]  # (view, ((path, blob), ...)): versions indexed already
    parse: tuple[Version, ...]  # in path order
    leave: tuple[tuple[str, str], ...]  # (view, path): no file there any more
    unchanged: int  # (view, path) pairs that hold the version they held


def plan_views(
    indexed: Mapping[str, Mapping[str, str]],
    current: Mapping[str, Sequence[TrackedFile]],
    *,
    full: bool = False,
    only_paths: Collection[str] | None = None,
) -> ViewsPlan:
    """Plan a sync of a repository's views: `indexed` (view -> path -> blob in the index) against
    `current` (view -> its files now; a view left out is unchanged, one mapped to no files has gone).

    Each version no view of the index holds is parsed once, for all the views that take it; a view
    taking a version the index holds already only adopts it (`full`: every current version is
    parsed again). `only_paths` makes a partial sync of the views given (see `plan_sync`).
    """
    held: set[tuple[str, str]] = set()  # every version a view holds: gathered once one has changed
    adopt: dict[str, list[tuple[str, str]]] = {}
    new: dict[tuple[str, str], tuple[TrackedFile, list[str]]] = {}
    leave: list[tuple[str, str]] = []
    unchanged = 0
    for view in sorted(current):
        plan = plan_sync(indexed.get(view, {}), current[view], full=full, only_paths=only_paths)
        unchanged += plan.unchanged
        leave.extend((view, path) for path in plan.delete)
        if plan.index and not held:
            held.update((path, blob) for files in indexed.values() for path, blob in files.items())
        for file in plan.index:
            version = (file.path, file.blob)
            if version in held and not full:
                adopt.setdefault(view, []).append(version)
            else:
                new.setdefault(version, (file, []))[1].append(view)
    parse = tuple(
        Version(file, next((v for v in views if v), views[0]), tuple(views)) for file, views in (new[k] for k in sorted(new))
    )
    return ViewsPlan(tuple((view, tuple(files)) for view, files in adopt.items()), parse, tuple(leave), unchanged)
