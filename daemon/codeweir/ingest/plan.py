"""Sync planning: what is indexed against what the repository holds now. Pure; no I/O."""

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
    considered = sorted((f for f in current if scope is None or f.path in scope), key=attrgetter("path"))
    present = {f.path for f in considered}
    if len(present) != len(considered):
        counts = Counter(f.path for f in considered)
        duplicates = sorted(p for p, n in counts.items() if n > 1)
        raise ValueError(f"current files list a path more than once: {', '.join(duplicates[:5])}")
    to_index = tuple(f for f in considered if full or indexed.get(f.path) != f.blob)
    delete = tuple(sorted(p for p in indexed.keys() - present if scope is None or p in scope))
    return Plan(index=to_index, delete=delete, unchanged=len(considered) - len(to_index))
