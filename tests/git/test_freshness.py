"""Freshness: real git repositories, their worktrees changed under the index."""

import os

import pytest

from codeweir.errors import RepoError
from codeweir.git.freshness import stale_paths
from codeweir.git.scan import blob_id, scan
from codeweir.git.worktree import path_bytes
from tests.gitrepo import make_repo


@pytest.fixture
def repo(tmp_path):
    return make_repo(tmp_path / "r", {"a.py": "one\n", "b.py": "two\n"})


def indexed(repo, *paths):
    return {path: repo.hash_object(path) for path in paths}


def test_unchanged_files_are_fresh(repo):
    assert stale_paths(repo.config(), indexed(repo, "a.py", "b.py")) == set()


def test_an_edited_or_deleted_file_is_stale(repo):
    blobs = indexed(repo, "a.py", "b.py")
    repo.write("a.py", "one, edited\n")
    repo.remove("b.py")
    assert stale_paths(repo.config(), blobs) == {"a.py", "b.py"}


def test_a_file_edited_back_to_what_was_indexed_is_fresh_again(repo):
    blobs = indexed(repo, "a.py")
    repo.write("a.py", "changed\n")
    assert stale_paths(repo.config(), blobs) == {"a.py"}
    repo.write("a.py", "one\n")
    assert stale_paths(repo.config(), blobs) == set()


def test_a_ref_is_compared_with_its_tree(repo, tmp_path):
    blobs = indexed(repo, "a.py", "b.py")
    bare = repo.clone_bare(tmp_path / "bare.git")
    assert stale_paths(bare.config(ref="main"), blobs) == set()
    repo.write("a.py", "moved on\n")
    repo.commit("edit a")
    repo.git("push", "-q", str(bare.root), "main")
    assert stale_paths(bare.config(ref="main"), blobs) == {"a.py"}
    with pytest.raises(RepoError, match=r"^repository 'repo' at .*bare\.git: ref 'nope' does not name a commit$"):
        stale_paths(bare.config(ref="nope"), blobs)


def test_files_named_in_bytes_that_are_not_utf8_are_checked_under_their_names(repo, tmp_path):
    raw = os.path.join(os.fsencode(repo.root), b"odd\xff\nname.py")
    with open(raw, "wb") as file:
        file.write(b"odd = 1\n")
    repo.commit("an odd name")
    blobs = {f.path: f.blob for f in scan(repo.config(), 1 << 20).files}
    [name] = [path for path in blobs if path_bytes(path) == b"odd\xff\nname.py"]
    assert stale_paths(repo.config(), blobs) == set()
    assert stale_paths(repo.config(ref="main"), blobs) == set()
    with open(raw, "wb") as file:
        file.write(b"odd = 2\n")
    assert stale_paths(repo.config(), blobs) == {name}
    assert stale_paths(repo.clone_bare(tmp_path / "bare.git").config(ref="main"), blobs) == set()


def test_a_directory_swapped_for_a_symlink_makes_its_files_stale_without_reading_them(repo, tmp_path):
    repo.write("src/c.py", "SECRET = 1\n")
    repo.commit("add src")
    blobs = indexed(repo, "src/c.py")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "c.py").write_text("SECRET = 1\n")  # the very content: only a read would say fresh
    repo.remove("src/c.py")
    repo.path("src").rmdir()
    repo.symlink("src", str(tmp_path / "outside"))
    assert blob_id(b"SECRET = 1\n") == blobs["src/c.py"]
    assert stale_paths(repo.config(), blobs) == {"src/c.py"}


def test_a_file_seen_on_a_ref_is_stale_once_the_ref_holds_another_version(repo):
    repo.git("branch", "release")
    blobs = indexed(repo, "a.py", "b.py")
    repo.write("a.py", "worktree only\n")  # the worktree is not the ref
    assert stale_paths(repo.config(), blobs, "release") == set()
    repo.git("checkout", "-q", "release")
    repo.write("a.py", "on the release branch\n")
    repo.remove("b.py")
    repo.commit("release work")
    repo.git("checkout", "-q", "main")
    assert stale_paths(repo.config(), blobs, "release") == {"a.py", "b.py"}
    assert stale_paths(repo.config(), {"b.py": blobs["b.py"]}) == set()  # the main view: the worktree, as before


def test_a_ref_short_name_is_a_branch_before_a_tag_and_an_annotated_tag_is_followed_to_its_commit(repo):
    blobs = indexed(repo, "a.py")
    repo.git("tag", "-a", "-m", "first", "v1")
    repo.write("a.py", "later\n")
    repo.commit("later")
    assert stale_paths(repo.config(), blobs, "v1") == set()
    repo.git("branch", "v1")  # a branch of the same name, at the later commit, is what v1 names
    assert stale_paths(repo.config(), blobs, "v1") == {"a.py"}
    repo.git("update-ref", "refs/remotes/origin/main", "v1^{}")
    assert stale_paths(repo.config(), blobs, "origin/main") == set()


def test_every_file_seen_on_a_ref_that_is_gone_is_stale(repo):
    repo.git("branch", "gone")
    blobs = indexed(repo, "a.py", "b.py")
    repo.git("branch", "-D", "gone")
    assert stale_paths(repo.config(), blobs, "gone") == {"a.py", "b.py"}
