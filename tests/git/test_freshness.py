"""Freshness: real git repositories, their worktrees changed under the index."""

import pytest

from codeweir.errors import RepoError
from codeweir.git.freshness import stale_paths
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
