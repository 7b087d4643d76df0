"""The pygit2 adapter: opening repositories and resolving refs, on real git repositories."""

import re
import shutil
import threading
from pathlib import Path

import pytest

from codeweir.config import RepoConfig
from codeweir.errors import RepoError
from codeweir.git.repo import (
    cached_repository,
    find_repository_root,
    open_repository,
    resolve_commit,
    resolve_ref,
    where,
)
from tests.gitrepo import GitRepo, make_repo


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    return make_repo(tmp_path / "repo", {"a.py": "print(1)\n", "src/b.py": "B = 2\n"})


def bare_init(root: Path) -> GitRepo:
    root.mkdir(parents=True)
    bare = GitRepo(root)
    bare.git("init", "-q", "--bare", "-b", "main")
    return bare


def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


def test_where_names_the_repository_by_name_and_path() -> None:
    assert where(RepoConfig(name="app", path="/src/app")) == "repository 'app' at /src/app"


# --- opening ------------------------------------------------------------------------------


def test_a_worktree_opens_at_its_root(repo: GitRepo) -> None:
    git = open_repository(repo.config())
    assert not git.is_bare
    assert Path(git.workdir).resolve() == repo.root.resolve()


def test_a_bare_repository_opens_as_bare(repo: GitRepo, tmp_path: Path) -> None:
    bare = repo.clone_bare(tmp_path / "bare.git")
    git = open_repository(bare.config())
    assert git.is_bare
    assert Path(git.path).resolve() == bare.root.resolve()


def test_a_missing_path_cannot_be_opened_as_no_such_directory(tmp_path: Path) -> None:
    config = RepoConfig(name="ghost", path=str(tmp_path / "nowhere"))
    with pytest.raises(RepoError, match=exactly(f"repository 'ghost' at {tmp_path}/nowhere: cannot open: no such directory")):
        open_repository(config)


def test_a_plain_directory_cannot_be_opened_as_not_a_git_repository(tmp_path: Path) -> None:
    config = RepoConfig(name="plain", path=str(tmp_path))
    with pytest.raises(RepoError, match=exactly(f"repository 'plain' at {tmp_path}: cannot open: not a git repository")):
        open_repository(config)


def test_a_subdirectory_of_a_repository_cannot_be_opened_and_the_root_is_named(repo: GitRepo) -> None:
    config = GitRepo(repo.path("src")).config()
    message = f"repository 'repo' at {repo.path('src')}: cannot open: not the root of a git repository (the root is {repo.root})"
    with pytest.raises(RepoError, match=exactly(message)):
        open_repository(config)


def test_a_repository_libgit2_refuses_cannot_be_opened_with_libgit2s_reason(repo: GitRepo) -> None:
    repo.git("config", "core.repositoryformatversion", "99")
    with pytest.raises(RepoError, match=rf"^repository 'repo' at {repo.root}: cannot open: .*unsupported repository version 99"):
        open_repository(repo.config())


# --- the per-thread cache -----------------------------------------------------------------


def test_the_cached_open_is_reused_within_a_thread_and_not_shared_across_threads(repo: GitRepo) -> None:
    first = cached_repository(repo.config())
    assert cached_repository(repo.config()) is first
    in_other_thread = []
    thread = threading.Thread(target=lambda: in_other_thread.append(cached_repository(repo.config())))
    thread.start()
    thread.join()
    assert in_other_thread[0] is not first


def test_the_cached_open_reopens_a_repository_whose_git_dir_was_replaced(repo: GitRepo, tmp_path: Path) -> None:
    old = cached_repository(repo.config())
    # Made while the old one exists, so its git directory cannot reuse the old one's inode.
    replacement = make_repo(tmp_path / "replacement", {"other.py": "O = 1\n"})
    replacement_head = replacement.head()
    assert replacement_head != repo.head()
    shutil.rmtree(repo.root)
    replacement.root.rename(repo.root)
    new = cached_repository(repo.config())
    assert new is not old
    assert resolve_ref(repo.config(), new) == replacement_head
    assert cached_repository(repo.config()) is new


def test_the_cached_open_of_a_repository_since_removed_says_no_such_directory(repo: GitRepo) -> None:
    cached_repository(repo.config())
    shutil.rmtree(repo.root)
    with pytest.raises(RepoError, match=exactly(f"repository 'repo' at {repo.root}: cannot open: no such directory")):
        cached_repository(repo.config())


# --- resolving refs -----------------------------------------------------------------------


def test_head_resolves_to_the_checked_out_commit(repo: GitRepo) -> None:
    assert resolve_ref(repo.config()) == repo.head()
    commit = resolve_commit(repo.config(), open_repository(repo.config()))
    assert commit is not None and str(commit.id) == repo.head()


def test_a_configured_branch_or_annotated_tag_resolves_to_its_commit(repo: GitRepo) -> None:
    tagged = repo.head()
    repo.git("tag", "-a", "v1", "-m", "release")
    repo.git("checkout", "-q", "-b", "feature")
    feature = repo.commit("on feature")
    repo.git("checkout", "-q", "main")
    assert resolve_ref(repo.config(ref="feature")) == feature
    assert resolve_ref(repo.config(ref="v1")) == tagged  # the tag object peeled to its commit
    assert resolve_ref(repo.config(ref=tagged[:10])) == tagged


def test_an_unborn_head_resolves_to_empty_in_a_worktree_or_a_bare_repository(tmp_path: Path) -> None:
    for config in (make_repo(tmp_path / "empty").config(), bare_init(tmp_path / "empty.git").config()):
        assert resolve_ref(config) == ""
        assert resolve_commit(config, open_repository(config)) is None


def test_an_unborn_branch_named_as_the_ref_does_not_name_a_commit(tmp_path: Path) -> None:
    config = make_repo(tmp_path / "empty").config(ref="main")
    with pytest.raises(RepoError, match=exactly(f"repository 'repo' at {tmp_path}/empty: ref 'main' does not name a commit")):
        resolve_ref(config)


@pytest.mark.parametrize(
    "ref",
    [
        pytest.param("nope", id="no-such-ref"),
        pytest.param("a..b", id="a-range-not-a-revision"),
        pytest.param("tree", id="a-tag-of-a-tree"),
        pytest.param("blob", id="a-tag-of-a-blob"),
    ],
)
def test_a_ref_that_names_no_commit_says_so_naming_the_ref(repo: GitRepo, ref: str) -> None:
    repo.git("tag", "tree", "HEAD^{tree}")
    repo.git("tag", "blob", "HEAD:a.py")
    with pytest.raises(RepoError, match=exactly(f"repository 'repo' at {repo.root}: ref {ref!r} does not name a commit")):
        resolve_ref(repo.config(ref=ref))


def test_a_ref_whose_commit_is_corrupt_cannot_be_read_with_libgit2s_reason(repo: GitRepo) -> None:
    commit = repo.head()
    loose = repo.path(f".git/objects/{commit[:2]}/{commit[2:]}")
    loose.chmod(0o644)
    loose.write_bytes(b"not zlib")
    with pytest.raises(RepoError, match=rf"^repository 'repo' at {repo.root}: ref 'main' cannot be read: .*inflate"):
        resolve_ref(repo.config(ref="main"))


# --- finding the repository a directory is in ---------------------------------------------


def test_the_repository_root_is_found_from_its_root_or_a_subdirectory(repo: GitRepo) -> None:
    assert find_repository_root(repo.root) == repo.root.resolve()
    assert find_repository_root(repo.path("src")) == repo.root.resolve()


def test_a_bare_repositorys_root_is_its_own_directory(repo: GitRepo, tmp_path: Path) -> None:
    bare = repo.clone_bare(tmp_path / "bare.git")
    assert find_repository_root(bare.root) == bare.root.resolve()


def test_no_repository_root_is_found_outside_any_repository(tmp_path: Path) -> None:
    assert find_repository_root(tmp_path) is None
