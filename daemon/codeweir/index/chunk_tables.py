"""Each version's chunk table: its chunks, by chunk key, and where each sits (see
index/membership.py for why versions share chunks).

A version's file document stores its table (`encode_table`, `decode_table`). `ChunkTables`
holds the tables the writer and searches meet: read from the file documents and cached, and as
written since the last commit; from them it says, chunk by chunk, what a search over some views
leaves out and where it places what it sees. It holds too the chunk documents written since the
last commit, by home version: the index cannot read them back before it, and a version dropped
meanwhile moves them home to another. Pure: the store hands it the read of a version's file
document with each ask (`read`), and tells it what each write, drop, commit and rollback changes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Generic, TypeVar

import attrs

from codeweir.index.membership import MAIN, Membership, Placement, Visibility, chunk_keys, version_key

TABLES_KEPT = 4096  # versions' chunk tables kept in memory (read from their file documents)

Table = Mapping[str, Placement]  # a version's chunks: chunk key -> where it sits
# A version's file document, as `ChunkTables` reads it: its repository, path, blob and encoded table.
StoredTable = tuple[str, str, str, bytes]
Doc = TypeVar("Doc")  # a chunk document's content, as the store writes it (schema.ChunkDoc)


def encode_table(placements: Iterable[Placement]) -> bytes:
    """A version's chunks as its file document stores them: content hash and lines, in order."""
    rows = [[p.content_hash, p.start_line, p.end_line, p.start_byte, p.end_byte] for p in placements]
    return json.dumps(rows, separators=(",", ":")).encode()


def decode_table(repo: str, path: str, blob: str, data: bytes) -> dict[str, Placement]:
    rows = json.loads(data) if data else []
    keys = chunk_keys(repo, path, (row[0] for row in rows))
    return {
        key: Placement(blob, start_line, end_line, start_byte, end_byte, content_hash)
        for key, (content_hash, start_line, end_line, start_byte, end_byte) in zip(keys, rows, strict=True)
    }


# The file document of a version, by its key, in the index written to: None where there is none.
# Handed in with each ask rather than kept: the store holds the tables, and a bound method of its
# own kept here would tie the two in a cycle that only the garbage collector frees, with the
# index's writer lock in it.
ReadTable = Callable[[str], StoredTable | None]


class ChunkTables(Generic[Doc]):
    def __init__(self) -> None:
        # Cached from file documents; and as written since the last commit (the writer's).
        self._cached: dict[str, Table] = {}
        self._written: dict[str, Table] = {}
        # The chunk documents written since the last commit: by home version, and each one's home.
        self._pending_homed: dict[str, dict[str, Doc]] = {}
        self._pending_home_of: dict[str, str] = {}
        self._visible: dict[tuple[str | None, tuple[str, ...]], tuple[Visibility, Visibility]] = {}

    def table(self, key: str, read: ReadTable) -> Table:
        """The chunks of the version `key` and where they sit: as written, committed or not."""
        if (table := self._written.get(key)) is not None or (table := self._cached.get(key)) is not None:
            return table
        if (stored := read(key)) is None:
            return {}
        table = decode_table(*stored)
        if len(self._cached) >= TABLES_KEPT:
            self._cached.clear()
        self._cached[key] = table
        return table

    def written(self, key: str, table: Table) -> None:
        """The version `key` was written with these chunks, uncommitted."""
        self._written[key] = table

    def homed(self, chunk_id: str, home: str, made: Doc) -> None:
        """The chunk document `chunk_id` was written, uncommitted, at its home `home`."""
        if (before := self._pending_home_of.get(chunk_id)) is not None:
            self._pending_homed[before].pop(chunk_id, None)
        self._pending_home_of[chunk_id] = home
        self._pending_homed.setdefault(home, {})[chunk_id] = made

    def pending_homed_at(self, key: str) -> dict[str, Doc]:
        """The chunk documents written since the last commit whose home is the version `key`: a copy."""
        return dict(self._pending_homed.get(key, {}))

    def pending_home(self, chunk_id: str) -> str | None:
        """The home of the chunk document `chunk_id`, where it was written since the last commit."""
        return self._pending_home_of.get(chunk_id)

    def dropped(self, key: str) -> None:
        """The version `key` was deleted (its chunks that moved home are `homed` there already)."""
        for chunk_id in self._pending_homed.pop(key, {}):
            self._pending_home_of.pop(chunk_id, None)
        self._written.pop(key, None)
        self._cached.pop(key, None)

    def committed(self) -> None:
        # Not kept: a table is read again, from its file document, when a path's versions meet.
        self._written, self._pending_homed, self._pending_home_of = {}, {}, {}

    def rolled_back(self) -> None:
        self._written, self._pending_homed, self._pending_home_of, self._cached = {}, {}, {}, {}

    def known_visibility(self, base: Visibility, repo: str | None, refs: tuple[str, ...] = ()) -> Visibility | None:
        """`visibility`, where the views' `base` needs nothing more or it was worked out from it; else None."""
        if not base.hidden:
            return base
        cached = self._visible.get((repo, refs))
        return cached[1] if cached is not None and cached[0] is base else None

    def visibility(self, membership: Membership, read: ReadTable, repo: str | None, refs: tuple[str, ...] = ()) -> Visibility:
        """What a search over `repo` (None: all) that sees the views `refs` (none: the main
        view) leaves out, and where it places the chunks it sees (see membership.Visibility)."""
        base = membership.visibility(repo, refs)
        if not base.hidden:
            return base
        key = (repo, refs)
        if (cached := self._visible.get(key)) is not None and cached[0] is base:
            return cached[1]
        wanted = refs or (MAIN,)
        hidden_chunks: list[str] = []
        placed: dict[str, Placement] = {}
        for (repo_name, path), blobs in base.hidden_by_path.items():
            seen: dict[str, Placement] = {}
            for view in wanted:
                if (shown := membership.files(repo_name, view).get(path)) is not None:
                    for chunk_id, placement in self.table(version_key(repo_name, path, shown), read).items():
                        seen.setdefault(chunk_id, placement)
            placed.update(seen)
            for blob in blobs:
                hidden_chunks.extend(c for c in self.table(version_key(repo_name, path, blob), read) if c not in seen)
        visibility = attrs.evolve(base, hidden_chunks=tuple(sorted(set(hidden_chunks))), placed=placed)
        if len(self._visible) > 64:
            self._visible.clear()
        self._visible[key] = (base, visibility)
        return visibility
