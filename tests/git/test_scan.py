import logging
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pygit2
import pytest

from codeweir.errors import FileSkipped, RepoError
from codeweir.git import scan as scan_module
from codeweir.git.scan import Snapshot, _index_entries, blob_id, read_file, scan
from codeweir.git.worktree import path_bytes
from codeweir.records import TrackedFile
from tests.gitrepo import GitRepo, make_repo

MAX = 1_000_000


def blobs(snapshot) -> dict[str, str]:
    return {f.path: f.blob for f in snapshot.files}


@pytest.fixture(autouse=True, params=["git status", "libgit2"])
def engine(request, monkeypatch) -> str:
    """Every test here runs twice: with the git command (at any size), and without one (libgit2's diff)."""
    if request.param == "libgit2":
        monkeypatch.setattr(scan_module, "GIT", None)
    else:
        monkeypatch.setattr(scan_module, "GIT_STATUS_MIN_FILES", 0)
    return request.param


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    return make_repo(
        tmp_path / "repo",
        {
            "README.md": "# demo\n",
            "src/app.py": "def main():\n    return 1\n",
            "src/util.py": "X = 1\n",
            "build/out.txt": "built\n",
            ".gitignore": "build/\n*.log\n",
        },
    )


def test_worktree_scan_lists_tracked_and_untracked_not_ignored_files(repo: GitRepo) -> None:
    repo.write("notes.txt", "untracked\n")
    repo.write("new/dir/deep.py", "pass\n")
    repo.write("debug.log", "ignored\n")
    repo.write("build/more.txt", "ignored\n")
    snapshot = scan(repo.config(), MAX)
    assert [f.path for f in snapshot.files] == [
        ".gitignore",
        "README.md",
        "new/dir/deep.py",
        "notes.txt",
        "src/app.py",
        "src/util.py",
    ]
    assert snapshot.source == "worktree"
    assert snapshot.head == repo.head()
    assert snapshot.skipped == {}


def test_every_worktree_blob_id_is_what_git_hash_object_prints(repo: GitRepo) -> None:
    repo.write("src/app.py", "def main():\n    return 2\n")  # modified, unstaged
    repo.write("src/util.py", "X = 2\n")
    repo.git("add", "src/util.py")  # staged
    repo.write("src/util.py", "X = 3\n")  # and modified again
    repo.write("notes.txt", "untracked\n")
    snapshot = scan(repo.config(), MAX)
    assert blobs(snapshot) == {f.path: repo.hash_object(f.path) for f in snapshot.files}
    assert {f.path: f.size for f in snapshot.files} == {f.path: repo.path(f.path).stat().st_size for f in snapshot.files}


def test_staged_rename_then_edit_reports_the_new_path_with_its_worktree_blob(repo: GitRepo) -> None:
    repo.git("mv", "src/util.py", "src/helpers.py")
    repo.write("src/helpers.py", "X = 99\n")
    files = blobs(scan(repo.config(), MAX))
    assert "src/util.py" not in files
    assert files["src/helpers.py"] == repo.hash_object("src/helpers.py")


def test_rescans_follow_every_index_change(repo: GitRepo) -> None:
    """Listings of the index are reused between scans only while the index file is unchanged."""
    config = repo.config()

    def scan_matches_git() -> bool:
        return blobs(scan(config, MAX)) == {p: repo.hash_object(p) for p in repo.git("ls-files").splitlines()}

    assert scan_matches_git() and scan_matches_git()
    repo.write("src/app.py", "modified\n")
    assert scan_matches_git()
    repo.git("add", "src/app.py")
    assert scan_matches_git()
    repo.commit("commit")
    assert scan_matches_git()
    repo.git("rm", "-q", "src/util.py")
    assert scan_matches_git()


def _indexed_mtime(repo: GitRepo, path: str) -> int:
    debug = repo.git("ls-files", "--debug", path)
    return int(next(line for line in debug.splitlines() if "mtime:" in line).split()[1].split(":")[0])


def _touch_in_the_past(repo: GitRepo, path: str) -> int:
    """Give `path` a new mtime (content unchanged), old enough not to be racy."""
    mtime = int(repo.path(path).stat().st_mtime) - 1000
    os.utime(repo.path(path), (mtime, mtime))
    return mtime


def test_a_scan_writes_back_the_stat_data_of_files_it_hashed_unchanged(repo: GitRepo) -> None:
    """As git status does, so that a touched checkout is hashed once, not on every rescan."""
    mtime = _touch_in_the_past(repo, "src/app.py")
    assert _indexed_mtime(repo, "src/app.py") != mtime
    assert blobs(scan(repo.config(), MAX))["src/app.py"] == repo.hash_object("src/app.py")
    assert _indexed_mtime(repo, "src/app.py") == mtime


def test_a_scan_while_a_git_command_holds_the_index_lock_answers_without_writing(repo: GitRepo) -> None:
    lock = repo.path(".git/index.lock")
    lock.write_bytes(b"")
    mtime = _touch_in_the_past(repo, "src/app.py")
    repo.write("src/util.py", "X = 2\n")
    assert blobs(scan(repo.config(), MAX)) == {
        p: repo.hash_object(p) for p in (".gitignore", "README.md", "src/app.py", "src/util.py")
    }
    assert lock.read_bytes() == b""
    lock.unlink()
    assert _indexed_mtime(repo, "src/app.py") != mtime


def test_file_deleted_in_worktree_is_absent(repo: GitRepo) -> None:
    repo.remove("src/util.py")
    assert "src/util.py" not in blobs(scan(repo.config(), MAX))


def test_merge_conflict_reports_the_worktree_file_once(repo: GitRepo) -> None:
    repo.git("checkout", "-q", "-b", "other")
    repo.write("src/util.py", "X = 'other'\n")
    repo.commit("other")
    repo.git("checkout", "-q", "main")
    repo.write("src/util.py", "X = 'main'\n")
    repo.commit("main")
    with pytest.raises(RuntimeError):
        repo.git("merge", "-q", "other")
    paths = [f.path for f in scan(repo.config(), MAX).files]
    assert paths.count("src/util.py") == 1
    assert blobs(scan(repo.config(), MAX))["src/util.py"] == repo.hash_object("src/util.py")


def test_linked_worktree_scans_its_own_checkout(repo: GitRepo, tmp_path: Path) -> None:
    repo.git("worktree", "add", "-q", "-b", "feature", str(tmp_path / "feature"))
    linked = GitRepo(tmp_path / "feature")
    linked.write("src/app.py", "feature work\n")
    files = blobs(scan(linked.config(), MAX))
    assert files["src/app.py"] == linked.hash_object("src/app.py")
    assert blobs(scan(repo.config(), MAX))["src/app.py"] == repo.hash_object("src/app.py")


def test_unborn_head_scans_untracked_files_with_empty_head(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "fresh", {"a.txt": "a\n"}, commit=False)
    snapshot = scan(repo.config(), MAX)
    assert blobs(snapshot) == {"a.txt": repo.hash_object("a.txt")}
    assert snapshot.head == ""


def test_symlinks_submodules_and_large_files_are_skipped_and_counted(repo: GitRepo, tmp_path: Path) -> None:
    other = make_repo(tmp_path / "other", {"x": "x\n"})
    repo.symlink("link.py", "src/app.py")  # tracked symlink
    repo.write("big.bin", b"x" * 2000)  # tracked, too large
    repo.add_gitlink("vendor/lib", other.head())  # tracked submodule
    repo.commit("add odd things")
    repo.symlink("untracked_link", "README.md")
    repo.write("untracked_big.txt", "y" * 2000)
    make_repo(repo.path("nested"), {"n.txt": "n\n"})  # untracked nested repository
    snapshot = scan(repo.config(), 1000)
    assert snapshot.skipped == {"symlink": 2, "too_large": 2, "submodule": 2}
    assert set(blobs(snapshot)) == {".gitignore", "README.md", "src/app.py", "src/util.py"}


def test_a_rescan_from_the_kept_listing_skips_and_counts_as_the_first_scan_did(repo: GitRepo, tmp_path: Path) -> None:
    other = make_repo(tmp_path / "other", {"x": "x\n"})
    repo.symlink("link.py", "src/app.py")
    repo.add_gitlink("vendor/lib", other.head())
    repo.write("big.bin", b"x" * 2000)
    repo.commit("add odd things")
    first = scan(repo.config(), 1000)
    again = scan(repo.config(), 1000)
    assert again.skipped == first.skipped == {"symlink": 1, "submodule": 1, "too_large": 1}
    assert again.files == first.files


def test_file_of_exactly_the_size_limit_is_kept(repo: GitRepo) -> None:
    size = repo.path("README.md").stat().st_size
    assert "README.md" in blobs(scan(repo.config(), size))
    assert scan(repo.config(), size - 1).skipped["too_large"] >= 1


def test_include_and_exclude_globs_select_files_and_count_exclusions(repo: GitRepo) -> None:
    repo.write("vendor/dep/lib.py", "pass\n")
    repo.write("src/test_app.py", "pass\n")
    config = repo.config(include=("*.py",), exclude=("vendor/**", "**/test_*.py"))
    snapshot = scan(config, MAX)
    assert set(blobs(snapshot)) == {"src/app.py", "src/util.py"}
    assert snapshot.skipped == {"excluded": 4}  # .gitignore, README.md and the two excluded


def test_paths_restrict_the_scan_to_files_and_directories(repo: GitRepo) -> None:
    repo.write("src/new.py", "pass\n")
    repo.remove("src/util.py")
    assert set(blobs(scan(repo.config(), MAX, paths=["src"]))) == {"src/app.py", "src/new.py"}
    assert set(blobs(scan(repo.config(), MAX, paths=["README.md", "src/util.py"]))) == {"README.md"}
    assert scan(repo.config(), MAX, paths=[]).files == ()


def test_bare_repository_scans_head_tree(repo: GitRepo, tmp_path: Path) -> None:
    repo.write("notes.txt", "untracked, not in the bare clone\n")
    bare = repo.clone_bare(tmp_path / "bare.git")
    snapshot = scan(bare.config(), MAX)
    assert snapshot.source == "ref:HEAD"
    assert snapshot.head == repo.head()
    assert blobs(snapshot) == {p: repo.hash_object(p) for p in repo.git("ls-files").splitlines()}
    assert {f.path: f.size for f in snapshot.files}["README.md"] == len("# demo\n")


def test_configured_branch_and_tag_scan_that_tree_not_the_worktree(repo: GitRepo) -> None:
    first = repo.head()
    repo.git("tag", "v1.0")
    repo.write("src/app.py", "changed\n")
    repo.write("added.py", "pass\n")
    second = repo.commit("second")
    repo.write("src/app.py", "uncommitted\n")
    tagged = scan(repo.config(ref="v1.0"), MAX)
    assert (tagged.source, tagged.head) == ("ref:v1.0", first)
    assert "added.py" not in blobs(tagged)
    for ref in ("main", "refs/heads/main", "HEAD"):
        snapshot = scan(repo.config(ref=ref), MAX)
        assert snapshot.head == second
        assert blobs(snapshot)["src/app.py"] == repo.git("rev-parse", "HEAD:src/app.py")


def test_ref_scan_skips_symlinks_submodules_large_and_excluded(repo: GitRepo, tmp_path: Path) -> None:
    other = make_repo(tmp_path / "other", {"x": "x\n"})
    repo.symlink("link.py", "src/app.py")
    repo.write("big.bin", b"x" * 2000)
    repo.add_gitlink("vendor/lib", other.head())
    repo.commit("odd things")
    snapshot = scan(repo.config(ref="main", exclude=("*.md",)), 1000)
    assert snapshot.skipped == {"symlink": 1, "too_large": 1, "submodule": 1, "excluded": 1}


def test_a_scan_of_a_path_that_cannot_be_opened_says_so_in_the_adapters_wording(tmp_path: Path) -> None:
    # Every wording is pinned in tests/git/test_repo.py; a scan passes the adapter's on.
    config = GitRepo(tmp_path / "nowhere").config(name="ghost")
    with pytest.raises(RepoError, match=r"^repository 'ghost' at .*nowhere: cannot open: no such directory$"):
        scan(config, MAX)


def test_unknown_ref_is_a_repo_error_naming_ref_and_repository(repo: GitRepo) -> None:
    with pytest.raises(RepoError, match=r"^repository 'repo' at .*: ref 'nope' does not name a commit$"):
        scan(repo.config(ref="nope"), MAX)


def test_unborn_head_of_a_bare_repository_scans_to_nothing_even_beside_a_cut_short_object(tmp_path: Path) -> None:
    bare = GitRepo(tmp_path / "empty.git")
    bare.root.mkdir()
    bare.git("init", "-q", "--bare", "-b", "main")
    assert scan(bare.config(), MAX) == Snapshot((), {}, "", "ref:HEAD")
    (tmp_path / "stray").write_text("a stray object no ref reaches\n" * 50)
    stray = bare.git("hash-object", "-w", str(tmp_path / "stray"))
    damage_loose_object(bare, stray, cut_in_half)
    assert scan(bare.config(), MAX) == Snapshot((), {}, "", "ref:HEAD")


def test_bad_glob_is_a_repo_error_naming_the_glob(repo: GitRepo) -> None:
    with pytest.raises(RepoError, match=r"glob '!\*\.py'"):
        scan(repo.config(exclude=("!*.py",)), MAX)


def test_corrupt_object_is_a_repo_error(repo: GitRepo) -> None:
    tree = repo.git("rev-parse", "HEAD^{tree}")
    loose = repo.path(f".git/objects/{tree[:2]}/{tree[2:]}")
    loose.chmod(0o644)
    loose.write_bytes(b"not zlib")
    with pytest.raises(RepoError, match="repository 'repo'"):
        scan(repo.config(ref="main"), MAX)


# Ways a loose object file goes bad: its bytes -> what is left of them (None: the file is gone).


def not_zlib(data: bytes) -> bytes | None:
    return b"not zlib"


def cut_in_half(data: bytes) -> bytes | None:
    return data[: len(data) // 2]  # the header survives


def cut_to_five_bytes(data: bytes) -> bytes | None:
    return data[:5]  # the type is lost too


def missing(data: bytes) -> bytes | None:
    return None


def damage_loose_object(repo: GitRepo, oid: str, damage: Callable[[bytes], bytes | None]) -> None:
    """Replace `oid`'s loose object file with what `damage` leaves of it; a new file, so a
    clone that shares the old one by a hard link keeps it."""
    objects = repo.path("objects") if repo.path("objects").is_dir() else repo.path(".git/objects")
    loose = objects / oid[:2] / oid[2:]
    data = loose.read_bytes()
    loose.unlink()
    if (left := damage(data)) is not None:
        loose.write_bytes(left)


@pytest.fixture
def bare(repo: GitRepo, tmp_path: Path) -> GitRepo:
    """A bare clone whose objects are all loose, with a file large enough to be cut in the middle,
    a tag, and a branch whose tree main does not reach."""
    repo.write("src/data.py", "".join(f"VALUE_{i} = {i * 7919 % 10007}\n" for i in range(300)))
    repo.commit("data")
    repo.git("tag", "-a", "v1.0", "-m", "release")
    repo.git("checkout", "-q", "-b", "other")
    repo.write("extra/more.py", "MORE = 1\n")
    repo.commit("other")
    repo.git("checkout", "-q", "main")
    return repo.clone_bare(tmp_path / "bare.git")


@pytest.mark.parametrize("damage", [not_zlib, cut_in_half, cut_to_five_bytes, missing], ids=lambda f: f.__name__)
def test_a_blob_that_cannot_be_read_is_skipped_as_unreadable_and_logged(bare: GitRepo, damage, caplog) -> None:
    """One bad object skips one file, not the sync (a cut-short one made libgit2 spin forever)."""
    blob = bare.git("rev-parse", "HEAD:src/data.py")
    damage_loose_object(bare, blob, damage)
    with caplog.at_level(logging.WARNING, logger="codeweir.git.scan"):
        snapshot = scan(bare.config(), MAX)
    assert snapshot.skipped == {"unreadable": 1}
    assert set(blobs(snapshot)) == {".gitignore", "README.md", "src/app.py", "src/util.py"}
    (logged,) = [r.getMessage() for r in caplog.records]
    assert "src/data.py" in logged and blob in logged
    app = {f.path: f for f in snapshot.files}["src/app.py"]
    assert read_file(bare.config(), app) == b"def main():\n    return 1\n"


@pytest.mark.parametrize("damage", [cut_in_half, cut_to_five_bytes], ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    ("ref", "spec", "what"),
    [
        ("HEAD", "HEAD", "commit"),
        ("v1.0", "v1.0^{commit}", "commit"),
        ("HEAD", "HEAD^{tree}", "tree of /"),
        ("main", "HEAD:src", "tree of src/"),
    ],
)
def test_a_cut_short_commit_or_tree_is_a_repo_error_naming_it(bare: GitRepo, ref, spec, what, damage) -> None:
    """Not a scan that never returns: libgit2 spins forever on a truncated loose object."""
    oid = bare.git("rev-parse", spec)
    damage_loose_object(bare, oid, damage)
    if what == "commit" and damage is cut_to_five_bytes:
        what = "object"  # its type is lost with its header
    with pytest.raises(RepoError, match=f"repository 'repo' at .*: ref '{ref}': {what} {oid} is cut short"):
        scan(bare.config(ref=ref), MAX)


def test_a_cut_short_object_the_ref_does_not_reach_changes_nothing(bare: GitRepo, tmp_path: Path) -> None:
    whole = scan(GitRepo(bare.root).clone_bare(tmp_path / "whole.git").config(), MAX)
    damage_loose_object(bare, bare.git("rev-parse", "other:extra"), cut_in_half)
    assert scan(bare.config(), MAX) == whole
    with pytest.raises(RepoError, match="tree of extra/"):
        scan(bare.config(ref="other"), MAX)


def test_a_linked_worktrees_ref_scan_checks_the_main_repositorys_objects(repo: GitRepo, tmp_path: Path) -> None:
    repo.git("worktree", "add", "-q", "-b", "feature", str(tmp_path / "feature"))
    linked = GitRepo(tmp_path / "feature")
    damage_loose_object(repo, repo.git("rev-parse", "HEAD:src/app.py"), cut_in_half)
    assert scan(linked.config(ref="feature"), MAX).skipped == {"unreadable": 1}


def test_read_file_returns_worktree_bytes_or_blob_data(repo: GitRepo) -> None:
    repo.write("src/app.py", "edited\n")
    worktree = {f.path: f for f in scan(repo.config(), MAX).files}
    assert read_file(repo.config(), worktree["src/app.py"]) == b"edited\n"
    committed = {f.path: f for f in scan(repo.config(ref="HEAD"), MAX).files}
    assert read_file(repo.config(ref="HEAD"), committed["src/app.py"]) == b"def main():\n    return 1\n"


def test_read_file_of_a_vanished_file_raises_file_skipped(repo: GitRepo) -> None:
    file = {f.path: f for f in scan(repo.config(), MAX).files}["src/util.py"]
    repo.remove("src/util.py")
    with pytest.raises(FileSkipped, match="src/util.py"):
        read_file(repo.config(), file)


def test_read_file_refuses_a_file_replaced_by_a_symlink(repo: GitRepo) -> None:
    file = {f.path: f for f in scan(repo.config(), MAX).files}["src/util.py"]
    repo.remove("src/util.py")
    repo.symlink("src/util.py", "/etc/passwd")
    with pytest.raises(FileSkipped, match="src/util.py"):
        read_file(repo.config(), file)


def test_read_file_of_a_missing_blob_raises_file_skipped(repo: GitRepo) -> None:
    ghost = TrackedFile("gone.py", "0" * 39 + "1", 3)
    with pytest.raises(FileSkipped, match="gone.py"):
        read_file(repo.config(ref="HEAD"), ghost)


@pytest.mark.parametrize("data", [b"", b"hello\n", bytes(range(256)) * 10])
def test_blob_id_matches_git_hash_object(data: bytes) -> None:
    printed = (
        subprocess.run(["git", "hash-object", "--stdin"], input=data, capture_output=True, check=True).stdout.decode().strip()
    )
    assert blob_id(data) == printed


def test_fast_index_reader_agrees_with_pygit2_entries(repo: GitRepo) -> None:
    """The cffi reader must stay in step with pygit2's own IndexEntry objects."""
    repo.symlink("link", "README.md")
    repo.git("add", "link")
    index = pygit2.Repository(str(repo.root)).index
    fast = [(path, blob, mode) for path, blob, mode, _ in _index_entries(index)]
    assert fast == [(e.path, str(e.id), int(e.mode)) for e in index]
    sizes = {path: size for path, _, _, size in _index_entries(index)}
    assert sizes["README.md"] == os.lstat(repo.path("README.md")).st_size


# -- paths git can store that are no plain UTF-8, directories nested deeper than libgit2 walks ----------

ODD_NAMES = [b"bad\xffname.py", b"new\nline.py", b"back\\slash.py", b"esc\x1b[31m.py", "café.py".encode()]
DEEP = "/".join(["d"] * 100)  # libgit2's workdir iterator stops at 100 levels; git does not


def write_raw(repo: GitRepo, relative: bytes, content: bytes) -> bytes:
    """Write a file at a path given as git's bytes; returns its absolute path."""
    path = os.path.join(os.fsencode(repo.root), relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as file:
        file.write(content)
    return path


def git_paths(repo: GitRepo, *args: str) -> set[bytes]:
    """The paths a git command lists with -z, as bytes."""
    listed = subprocess.run(["git", *args, "-z"], cwd=repo.root, capture_output=True, check=True).stdout
    return {path for path in listed.split(b"\0") if path}


def git_lists(repo: GitRepo) -> set[bytes]:
    """The worktree's files as git lists them: tracked and untracked, not ignored, not deleted."""
    return git_paths(repo, "ls-files", "--cached", "--others", "--exclude-standard") - git_paths(repo, "ls-files", "--deleted")


def test_paths_that_are_not_utf8_or_hold_controls_are_scanned_under_names_that_give_back_their_bytes(repo: GitRepo) -> None:
    for i, raw in enumerate(ODD_NAMES):
        write_raw(repo, b"odd/" + raw, f"X{i} = {i}\n".encode())
    repo.commit("odd names")
    write_raw(repo, b"odd/edited\xfe.py", b"E = 1\n")
    repo.commit("one more")
    write_raw(repo, b"odd/edited\xfe.py", b"E = 2\n")  # modified in the worktree
    write_raw(repo, b"odd/untracked\xfd.py", b"U = 1\n")
    write_raw(repo, b"build/ignored\xfc.py", b"I = 1\n")
    snapshot = scan(repo.config(), MAX)
    assert {path_bytes(f.path) for f in snapshot.files} == git_lists(repo)
    for file in snapshot.files:
        content = read_file(repo.config(), file)
        with open(os.path.join(os.fsencode(repo.root), path_bytes(file.path)), "rb") as on_disk:
            assert content == on_disk.read()
        assert file.blob == blob_id(content)
        file.path.encode("utf-8")  # a name any stage can store
    committed = scan(repo.config(ref="HEAD"), MAX)
    assert {path_bytes(f.path) for f in committed.files} == git_paths(repo, "ls-tree", "-r", "--name-only", "HEAD")
    assert {f.path: f.blob for f in committed.files}["odd/edited\\xfe.py"] == blob_id(b"E = 1\n")


def test_read_file_does_not_follow_a_directory_swapped_for_a_symlink(repo: GitRepo, tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "util.py").write_text("SECRET = 'from outside the repository'\n")
    file = {f.path: f for f in scan(repo.config(), MAX).files}["src/util.py"]
    repo.remove("src/util.py")
    repo.remove("src/app.py")
    repo.path("src").rmdir()
    repo.symlink("src", str(tmp_path / "outside"))
    with pytest.raises(FileSkipped, match=r"src/util.py: it, or a directory on its path, is a symlink: not followed"):
        read_file(repo.config(), file)


def test_read_file_refuses_a_fifo_at_once(repo: GitRepo) -> None:
    file = {f.path: f for f in scan(repo.config(), MAX).files}["src/util.py"]
    repo.remove("src/util.py")
    os.mkfifo(repo.path("src/util.py"))  # nobody writes to it: a blocking open would wait for good
    with pytest.raises(FileSkipped, match="src/util.py: not a regular file"):
        read_file(repo.config(), file)


def test_a_scan_skips_an_untracked_fifo_and_counts_nothing_for_it(repo: GitRepo) -> None:
    os.mkfifo(repo.path("src/pipe.py"))
    snapshot = scan(repo.config(), MAX)
    assert "src/pipe.py" not in blobs(snapshot) and snapshot.skipped == {}


@pytest.mark.parametrize("committed", [True, False], ids=["tracked", "untracked"])
def test_a_directory_nested_100_deep_is_scanned_as_git_lists_it(repo: GitRepo, committed: bool) -> None:
    repo.write(f"{DEEP}/kept.py", "K = 1\n")
    repo.write(f"{DEEP}/edited.py", "E = 1\n")
    repo.write(f"{DEEP}/deleted.py", "D = 1\n")
    if committed:
        repo.commit("deep")
        repo.remove(f"{DEEP}/deleted.py")
        for name in ("kept.py", "edited.py"):  # clean by their stat data, not racily clean
            _touch_in_the_past(repo, f"{DEEP}/{name}")
        repo.git("update-index", "-q", "--refresh")
    repo.write(f"{DEEP}/edited.py", "E = 2\n")  # the same size: only its mtime tells
    repo.write(f"{DEEP}/new.py", "N = 1\n")
    repo.write(f"{DEEP}/debug.log", "ignored\n")
    repo.write(f"{DEEP}/build/out.py", "ignored\n")
    repo.remove("src/util.py")
    repo.write("notes.txt", "untracked\n")
    write_raw(repo, DEEP.encode() + b"/odd\xff.py", b"O = 1\n")
    snapshot = scan(repo.config(), MAX)
    assert {path_bytes(f.path) for f in snapshot.files} == git_lists(repo)
    assert {f.blob for f in snapshot.files} == {blob_id(read_file(repo.config(), f)) for f in snapshot.files}
    assert blobs(snapshot)[f"{DEEP}/edited.py"] == blob_id(b"E = 2\n")
    assert snapshot.skipped == {}


def test_a_worktree_too_deep_for_libgit2_skips_and_counts_what_any_other_does(repo: GitRepo, tmp_path: Path) -> None:
    other = make_repo(tmp_path / "other", {"x": "x\n"})
    repo.write(f"{DEEP}/f.py", "F = 1\n")
    repo.symlink("link.py", "src/app.py")
    repo.write("big.bin", b"x" * 2000)
    repo.add_gitlink("vendor/lib", other.head())
    repo.commit("add odd things")
    repo.symlink("untracked_link", "README.md")
    repo.write("untracked_big.txt", "y" * 2000)
    make_repo(repo.path("nested"), {"n.txt": "n\n"})
    snapshot = scan(repo.config(), 1000)
    assert snapshot.skipped == {"symlink": 2, "too_large": 2, "submodule": 2}
    assert set(blobs(snapshot)) == {".gitignore", "README.md", "src/app.py", "src/util.py", f"{DEEP}/f.py"}


def test_a_merge_conflict_in_a_worktree_too_deep_for_libgit2_is_reported_once(repo: GitRepo) -> None:
    repo.write(f"{DEEP}/f.py", "F = 1\n")
    repo.commit("deep")
    repo.git("checkout", "-q", "-b", "other")
    repo.write("src/util.py", "X = 'other'\n")
    repo.commit("other")
    repo.git("checkout", "-q", "main")
    repo.write("src/util.py", "X = 'main'\n")
    repo.commit("main")
    with pytest.raises(RuntimeError):
        repo.git("merge", "-q", "other")
    files = scan(repo.config(), MAX).files
    assert [f.path for f in files].count("src/util.py") == 1
    assert blobs(scan(repo.config(), MAX))["src/util.py"] == repo.hash_object("src/util.py")


def test_a_git_dir_in_the_environment_does_not_turn_the_scan_to_another_repository(repo: GitRepo, tmp_path, monkeypatch) -> None:
    other = make_repo(tmp_path / "other", {"elsewhere.txt": "x\n"})
    monkeypatch.setenv("GIT_DIR", str(other.root / ".git"))  # as in a daemon a git hook started
    repo.write("notes.txt", "untracked\n")
    assert "notes.txt" in blobs(scan(repo.config(), MAX)) and "elsewhere.txt" not in blobs(scan(repo.config(), MAX))


def test_where_the_git_command_fails_libgit2_answers_the_same(repo: GitRepo, monkeypatch) -> None:
    repo.write("notes.txt", "untracked\n")
    repo.write("src/app.py", "changed\n")
    expected = blobs(scan(repo.config(), MAX))
    monkeypatch.setattr(scan_module, "GIT", "/bin/false")
    assert blobs(scan(repo.config(), MAX)) == expected
