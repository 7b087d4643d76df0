"""Loose objects whose zlib stream ends early, found before libgit2 reads them.

libgit2 (1.9) spins forever reading a loose object whose zlib stream ends early, as a truncated
file's does (libgit2 issue 7342). A ref scan asks this module which objects are cut short and lets
libgit2 read none of those whole.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from pathlib import Path

import pygit2

# objects dir -> loose object id -> (its file's inode, what _cut_short said of it)
_loose_verdicts: dict[str, dict[str, tuple[int, str | None]]] = {}


def cut_short_objects(git: pygit2.Repository) -> dict[str, str]:
    """The loose objects whose zlib stream ends early: id -> type ("" when even that is lost).

    Each loose file is read once: git never rewrites one in place, it renames a new file over
    it. The listing's inodes come without a stat (8,656 loose objects of go-std: 7 ms a scan).
    """
    objects = str(_objects_dir(git))
    known = _loose_verdicts.get(objects, {})
    verdicts = {}
    for oid, entry in _loose_objects(objects):
        cached = known.get(oid)
        verdicts[oid] = cached if cached and cached[0] == entry.inode() else (entry.inode(), _cut_short(entry.path))
    _loose_verdicts[objects] = verdicts
    return {oid: kind for oid, (_, kind) in verdicts.items() if kind is not None}


def _objects_dir(git: pygit2.Repository) -> Path:
    """A linked worktree's objects are its main repository's, which its "commondir" names."""
    git_dir = Path(git.path)
    try:
        git_dir = git_dir / (git_dir / "commondir").read_text().strip()
    except OSError:
        pass
    return git_dir / "objects"


def _loose_objects(objects: str) -> Iterator[tuple[str, os.DirEntry]]:
    """(id, file) of each loose object: objects/ab/cdef..."""
    for fan_out in os.scandir(objects):
        if len(fan_out.name) == 2 and fan_out.is_dir():
            for entry in os.scandir(fan_out.path):
                yield fan_out.name + entry.name, entry


def _cut_short(path: str) -> str | None:
    """The type of the loose object at `path` if its zlib stream ends early ("" when the type
    is lost too); None when the stream is whole, or is no zlib at all (libgit2 reports that)."""
    inflater = zlib.decompressobj()
    head = b""
    try:
        with open(path, "rb") as handle:
            while not inflater.eof and (data := handle.read(1 << 16)):
                head = (head + inflater.decompress(data))[:32]
    except (OSError, zlib.error):
        return None
    if inflater.eof:
        return None
    kind, space, _ = head.partition(b" ")
    return kind.decode() if space and kind in (b"blob", b"tree", b"commit", b"tag") else ""
