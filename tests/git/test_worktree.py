"""Worktree paths: names for any path git can store, and opening a file beneath the worktree."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codeweir.git import worktree
from codeweir.git.worktree import NotRegularFile, path_bytes, path_name, read_regular

CONTROLS = [chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]]


@given(st.binary(max_size=64))
def test_every_path_git_can_store_has_a_name_that_gives_back_its_bytes(raw: bytes) -> None:
    name = path_name(raw)
    assert path_bytes(name) == raw
    name.encode("utf-8")  # storable anywhere: no lone surrogates
    assert not any(c in name for c in CONTROLS)


@given(st.text(alphabet=st.characters(blacklist_characters=["\\", *CONTROLS], blacklist_categories=["Cs"])))
def test_a_utf8_name_without_controls_or_backslashes_is_itself(text: str) -> None:
    assert path_name(text.encode()) == text
    assert path_bytes(text) == text.encode()


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        (b"bad\xffname.py", r"bad\xffname.py"),
        (b"new\nline.py", r"new\x0aline.py"),
        (b"\x1b[31mred.py", r"\x1b[31mred.py"),
        (b"back\\slash.py", r"back\\slash.py"),
        (b"\\xff.py", r"\\xff.py"),  # a name that reads like an escape is escaped itself
        ("café/ü.py".encode(), "café/ü.py"),
        ("csi\u009b.py".encode(), r"csi\xc2\x9b.py"),
    ],
)
def test_undecodable_bytes_controls_and_backslashes_are_written_as_escapes(raw: bytes, name: str) -> None:
    assert path_name(raw) == name
    assert path_bytes(name) == raw


def test_a_backslash_that_starts_no_escape_stands_for_itself() -> None:
    assert path_bytes(r"a\b.py") == b"a\\b.py"


def has_openat2(directory: Path) -> bool:
    root = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = worktree._openat2(root, b".", os.O_RDONLY)
    finally:
        os.close(root)
    if fd is not None:
        os.close(fd)
    return fd is not None


@pytest.fixture(params=["openat2", "walk"])
def opener(request, monkeypatch, tmp_path) -> str:
    """Both ways of opening beneath the root: openat2 where this kernel has it, and the walk."""
    if request.param == "walk":
        monkeypatch.setattr(worktree, "_libc", False)
    elif not has_openat2(tmp_path):
        pytest.skip("this kernel (or its seccomp filter) offers no openat2")
    return request.param


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "src" / "deep").mkdir(parents=True)
    (root / "src" / "deep" / "a.py").write_text("inside\n")
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "deep" / "a.py").write_text("SECRET\n")
    return root


def test_a_file_beneath_the_root_is_read(tree: Path, opener: str) -> None:
    assert read_regular(str(tree), "src/deep/a.py") == b"inside\n"


def test_a_directory_swapped_for_a_symlink_is_not_followed(tree: Path, opener: str) -> None:
    (tree / "src" / "deep" / "a.py").unlink()
    (tree / "src" / "deep").rmdir()
    (tree / "src" / "deep").symlink_to(tree.parent / "outside" / "deep")
    with pytest.raises(OSError) as raised:
        read_regular(str(tree), "src/deep/a.py")
    assert worktree.why_unreadable(raised.value) == "it, or a directory on its path, is a symlink: not followed"


def test_a_file_swapped_for_a_symlink_is_not_followed(tree: Path, opener: str) -> None:
    (tree / "src" / "deep" / "a.py").unlink()
    (tree / "src" / "deep" / "a.py").symlink_to(tree.parent / "outside" / "deep" / "a.py")
    with pytest.raises(OSError, match="symbolic links"):
        read_regular(str(tree), "src/deep/a.py")


def test_a_fifo_is_refused_at_once_and_never_read(tree: Path, opener: str) -> None:
    os.mkfifo(tree / "src" / "pipe.py")  # nobody writes to it: a blocking open would wait for good
    with pytest.raises(NotRegularFile, match="not a regular file"):
        read_regular(str(tree), "src/pipe.py")


@pytest.mark.parametrize("name", ["../outside/deep/a.py", "src/../../outside/deep/a.py", "/etc/passwd", "src//deep/a.py"])
def test_a_path_that_is_no_path_git_stores_is_refused(tree: Path, name: str, opener: str) -> None:
    with pytest.raises(OSError, match="not a path inside the worktree"):
        read_regular(str(tree), name)


def test_a_file_nested_100_deep_is_read(tmp_path: Path, opener: str) -> None:
    name = "/".join(["d"] * 100) + "/f.py"
    (tmp_path / name).parent.mkdir(parents=True)
    (tmp_path / name).write_text("deep\n")
    assert read_regular(str(tmp_path), name) == b"deep\n"


def test_a_path_longer_than_path_max_is_read_a_component_at_a_time(tmp_path: Path, opener: str) -> None:
    parts = ["p" * 200] * 25  # 5,025 bytes: over PATH_MAX (4,096), which one open cannot take
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    for part in parts:
        os.mkdir(part, dir_fd=fd)
        child = os.open(part, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = child
    file = os.open("f.py", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
    os.write(file, b"long\n")
    os.close(file)
    os.close(fd)
    assert read_regular(str(tmp_path), "/".join([*parts, "f.py"])) == b"long\n"


def test_a_read_stops_one_byte_past_its_limit(tree: Path) -> None:
    (tree / "big.txt").write_bytes(b"x" * 10_000)
    assert read_regular(str(tree), "big.txt", limit=100) == b"x" * 101


def held_stat(root: Path, name: str) -> worktree.Signature:
    found = worktree.stat_beneath(str(root), name)
    if found is None:
        pytest.skip("no openat2 or statx here: the freshness check uses open_beneath and os.fstat")
    return found


def test_a_stat_that_keeps_the_gil_gives_what_os_stat_gives(tree: Path) -> None:
    info = os.stat(tree / "src" / "deep" / "a.py")
    signature = (info.st_mode, info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
    assert held_stat(tree, "src/deep/a.py") == signature


def test_a_stat_that_keeps_the_gil_follows_no_symlink_and_refuses_what_git_stores_no_path_for(tree: Path) -> None:
    held_stat(tree, "src/deep/a.py")
    (tree / "src" / "link.py").symlink_to(tree / "src" / "deep" / "a.py")
    assert not stat.S_ISREG(held_stat(tree, "src/link.py")[0])  # the link itself, never its target
    (tree / "src" / "deep" / "a.py").unlink()
    (tree / "src" / "deep").rmdir()
    (tree / "src" / "deep").symlink_to(tree.parent / "outside" / "deep")
    with pytest.raises(OSError, match="symbolic links"):
        worktree.stat_beneath(str(tree), "src/deep/a.py")
    with pytest.raises(FileNotFoundError):
        worktree.stat_beneath(str(tree), "src/gone.py")
    with pytest.raises(OSError, match="not a path inside the worktree"):
        worktree.stat_beneath(str(tree), "../outside/deep/a.py")
