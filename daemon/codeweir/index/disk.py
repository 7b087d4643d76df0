"""The index's directories on disk: opening one, the versions it was written with, the swap that
puts a rebuild in its place, and telling damage (a file truncated, garbled or missing) apart from
other failures by Tantivy's errors and by the checksums in the footers it writes."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import zlib
from pathlib import Path

from codeweir.host.durable import write_atomic

META_FILE = "codeweir-index.json"
REBUILD_SUFFIX = ".rebuild"  # the index being rebuilt, beside the one searches read
RETIRED_SUFFIX = ".old"  # the replaced index, for the moment between the two renames
DAMAGED_SUFFIX = ".damaged-"  # + a UTC time: a damaged index moved aside, kept for inspection


# Tantivy reports I/O failures as ValueError with Rust's debug text; the OS's words are in it.
OS_MESSAGE = re.compile(r'message: "([^"]+)"')


def failure_reason(exc: BaseException) -> str:
    """A failure in a person's words: "No space left on device", not a Rust debug dump."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc)
    found = OS_MESSAGE.search(text)
    if found:
        return found.group(1)
    if _is_panic(exc):
        text = f"Tantivy panicked: {text}"
    return text if len(text) <= 300 else text[:300] + "..."


def _is_panic(exc: BaseException) -> bool:
    """A Rust panic inside Tantivy (pyo3's PanicException, a BaseException), which a damaged
    file can cause."""
    return type(exc).__name__ == "PanicException"


def tantivy_failure(exc: BaseException) -> bool:
    return isinstance(exc, (OSError, ValueError)) or _is_panic(exc)


# An OS error inside Tantivy's: permission, disk, I/O; a missing file counts as damage.
_OS_ERROR = re.compile(r"\bOs \{ code: \d+, kind: (\w+)")


def is_damage(exc: BaseException) -> bool:
    """Whether Tantivy failed for what its files hold (truncated, garbled, missing, a panic)
    rather than for what the OS refused (permission, a full disk, an I/O error)."""
    if _is_panic(exc):
        return True
    if not isinstance(exc, ValueError):
        return False
    found = _OS_ERROR.search(str(exc))
    return found is None or found.group(1) == "NotFound"


_FOOTER_MAGIC = 1337  # Tantivy's: each file ends with a JSON footer, its length (u32) and this (u32)
_SEGMENT_FILES = ("store", "idx", "term", "fieldnorm", "fast", "pos")


def verify_directory(directory: Path) -> str | None:
    """What is wrong with the committed index in `directory` (see Store.verify), or None."""
    try:
        committed = _committed_files(directory)
    except FileNotFoundError:
        return None  # no index yet
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return f"meta.json cannot be read: {exc}"
    for name in committed:
        try:
            problem = _verify_file(directory / name)
        except FileNotFoundError:
            try:  # merged away, or its deletes superseded, since meta.json was read?
                if name not in _committed_files(directory):
                    continue
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                continue  # meta.json replaced this very moment: the next open judges
            if name.endswith(".pos"):
                continue  # a segment without positions
            problem = "missing"
        except OSError as exc:
            return f"{name}: {failure_reason(exc)}"
        if problem is not None:
            return f"{name}: {problem}"
    return None


def _committed_files(directory: Path) -> list[str]:
    """The files of every segment the index's meta.json names (a .pos file may not exist)."""
    meta = json.loads((directory / "meta.json").read_bytes())
    names = []
    for segment in meta["segments"]:
        stem = segment["segment_id"].replace("-", "")
        names += [f"{stem}.{ext}" for ext in _SEGMENT_FILES]
        deletes = segment.get("deletes")
        if isinstance(deletes, dict) and "opstamp" in deletes:
            names.append(f"{stem}.{deletes['opstamp']}.del")
    return names


def _verify_file(path: Path) -> str | None:
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        if size < 8:
            return f"truncated to {size} bytes"
        file.seek(size - 8)
        length, magic = struct.unpack("<II", file.read(8))
        if magic != _FOOTER_MAGIC or length + 8 > size:
            return "its footer is missing (truncated or overwritten)"
        file.seek(size - 8 - length)
        try:
            expected = json.loads(file.read(length))["crc"]
        except (ValueError, KeyError, TypeError):
            return None  # a footer of another Tantivy version: not ours to judge
        file.seek(0)
        crc, left = 0, size - 8 - length
        while left > 0 and (block := file.read(min(left, 1 << 20))):
            crc = zlib.crc32(block, crc)
            left -= len(block)
        if left or crc != expected:
            return "its checksum does not match its contents (garbled)"
    return None


def why_writes_fail(directory: Path) -> str | None:
    """The OS's reason that writing in `directory` fails now (disk full, read-only), or None."""
    probe = directory / f".probe-{os.getpid()}"
    try:
        with open(probe, "wb") as f:
            f.write(bytes(4096))
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        return exc.strerror or str(exc)
    finally:
        try:
            probe.unlink(missing_ok=True)
        except OSError:
            pass  # never created
    return None


def sibling(directory: Path, suffix: str) -> Path:
    return directory.with_name(directory.name + suffix)


def read_versions(meta: Path) -> dict | None:
    try:
        return json.loads(meta.read_text())
    except (OSError, ValueError):
        return None


def claim_versions(directory: Path, versions: dict) -> bool:
    """True when `directory` holds an index of the current versions, or none yet (then it
    records them); False when it holds one of other (or unknown) versions."""
    meta = directory / META_FILE
    if read_versions(meta) == versions:
        return True
    if (directory / "meta.json").exists():  # Tantivy's: an index is there
        return False
    write_atomic(meta, json.dumps(versions).encode())
    return True


def prepare_rebuild(directory: Path, versions: dict) -> Path:
    """The rebuild's directory: kept when a crash interrupted a rebuild for these versions (the
    rebuild resumes like any sync), started afresh otherwise."""
    directory.mkdir(exist_ok=True)
    if not claim_versions(directory, versions):
        shutil.rmtree(directory)
        directory.mkdir()
        claim_versions(directory, versions)
    return directory


def finish_swap(directory: Path, rebuild: Path) -> None:
    """Complete a swap that a crash interrupted. The old index is renamed away only once the
    rebuild is complete, so a retired index without a current one means: move the rebuild in."""
    retired = sibling(directory, RETIRED_SUFFIX)
    if not retired.exists():
        return
    if not directory.exists():
        os.rename(rebuild if rebuild.exists() else retired, directory)
    shutil.rmtree(retired, ignore_errors=True)
