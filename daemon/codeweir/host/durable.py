"""Files and directories replaced whole: a reader, or a restart after a crash, sees the old
content or the new.

Both the index's metadata and the vector store's segments are written this way: into a temp
file beside the target, fsynced, renamed over it, and the directory fsynced so the rename lasts.
Built models and installed checkpoints are directories written the same way.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomic_with(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Replace `path` by what `write(file)` writes."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a failed write leaves the old file and nothing beside it
        raise
    fsync(path.parent)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` by `data`."""
    write_atomic_with(path, lambda f: f.write(data))


def fsync(path: Path) -> None:
    """Flush a file or a directory (its entries: renames, new files) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_dir(new: Path, target: Path, scratch: Path) -> None:
    """Put `new` at `target`, moving a stale `target` into `scratch` (deleted with it)."""
    if target.exists():
        target.rename(scratch / "stale")
    try:
        new.rename(target)
    except OSError:
        if not target.exists():  # another builder finishing first is fine; anything else is not
            raise
    fsync(target.parent)


def fsync_tree(directory: Path) -> None:
    """Every file and directory under `directory`, deepest first, then `directory` itself."""
    for path in [*sorted(directory.rglob("*"), reverse=True), directory]:
        fsync(path)
