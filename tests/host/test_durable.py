"""durable: a file replaced whole is either the old content or the new, never a mix or a leftover."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from codeweir.host import durable
from codeweir.host.durable import write_atomic, write_atomic_with


def test_write_atomic_replaces_the_content_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "meta.json"
    target.write_bytes(b"old")
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta.json"]


def test_a_writer_that_fails_leaves_the_old_content_and_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "segment.npy"
    target.write_bytes(b"old")

    def fail_halfway(f) -> None:
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic_with(target, fail_halfway)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["segment.npy"]


def test_the_data_and_the_directory_are_fsynced_before_and_after_the_rename(tmp_path: Path, monkeypatch) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(
        durable.os, "fsync", lambda fd: (events.append(f"fsync {os.readlink(f'/proc/self/fd/{fd}')}"), real_fsync(fd))
    )
    monkeypatch.setattr(durable.os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b)))
    write_atomic(tmp_path / "x", b"data")
    assert events[1:] == ["replace", f"fsync {tmp_path}"]
    assert events[0].startswith(f"fsync {tmp_path}/.x.") and events[0].endswith(".tmp")


def test_replace_dir_puts_the_new_directory_in_place_and_the_stale_one_into_scratch(tmp_path: Path) -> None:
    target, new, scratch = tmp_path / "model", tmp_path / "new", tmp_path / "scratch"
    for directory, content in ((target, "old"), (new, "new")):
        directory.mkdir()
        (directory / "file").write_text(content)
    scratch.mkdir()
    durable.replace_dir(new, target, scratch)
    assert (target / "file").read_text() == "new" and not new.exists()
    assert (scratch / "stale" / "file").read_text() == "old"
