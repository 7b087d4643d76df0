"""loose_objects: which loose objects a ref scan must not let libgit2 read whole."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import pygit2
import pytest

from codeweir.git.loose_objects import cut_short_objects
from tests.gitrepo import GitRepo, make_repo


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    return make_repo(tmp_path / "r", {"a.py": "x = 1\n" * 200, "b.py": "y = 2\n"})


def loose_file(repo: GitRepo, oid: str) -> Path:
    return repo.path(f".git/objects/{oid[:2]}/{oid[2:]}")


def replace_file(path: Path, data: bytes) -> None:
    """As git does: a new file renamed over the old one (a new inode)."""
    new = path.with_name(path.name + ".new")
    new.write_bytes(data)
    os.replace(new, path)


def test_a_whole_repository_has_no_cut_short_objects(repo: GitRepo) -> None:
    assert cut_short_objects(pygit2.Repository(str(repo.root))) == {}


def test_a_truncated_loose_blob_is_reported_with_its_type(repo: GitRepo) -> None:
    oid = repo.hash_object("a.py")
    path = loose_file(repo, oid)
    replace_file(path, path.read_bytes()[:-20])
    assert cut_short_objects(pygit2.Repository(str(repo.root))) == {oid: "blob"}


def test_an_object_cut_before_its_header_is_reported_without_a_type(repo: GitRepo) -> None:
    oid = repo.hash_object("a.py")
    path = loose_file(repo, oid)
    replace_file(path, zlib.compress(b"blob 1200\0" + b"x" * 1200)[:2])
    assert cut_short_objects(pygit2.Repository(str(repo.root))) == {oid: ""}


def test_a_file_that_is_not_zlib_at_all_is_left_for_libgit2_to_report(repo: GitRepo) -> None:
    path = loose_file(repo, repo.hash_object("b.py"))
    replace_file(path, b"not zlib")
    assert cut_short_objects(pygit2.Repository(str(repo.root))) == {}


def test_a_cut_short_object_rewritten_whole_is_no_longer_reported(repo: GitRepo) -> None:
    oid = repo.hash_object("a.py")
    path = loose_file(repo, oid)
    whole = path.read_bytes()
    git = pygit2.Repository(str(repo.root))
    replace_file(path, whole[:-20])
    assert cut_short_objects(git) == {oid: "blob"}
    replace_file(path, whole)  # a new inode: read again, not taken from the remembered verdict
    assert cut_short_objects(git) == {}


def test_a_linked_worktree_reads_its_main_repositorys_objects(repo: GitRepo, tmp_path: Path) -> None:
    repo.git("worktree", "add", "-q", str(tmp_path / "linked"))
    oid = repo.hash_object("a.py")
    path = loose_file(repo, oid)
    replace_file(path, path.read_bytes()[:-20])
    assert cut_short_objects(pygit2.Repository(str(tmp_path / "linked"))) == {oid: "blob"}
