"""pygit2 adapter: the files of a repository (worktree or a ref) with their git blob ids.

Paths are named as git/worktree.py says: any path git stores, as a str every stage can carry.
Worktree files are opened beneath the worktree's root with no symlink followed (worktree.py).

Every function blocks; callers run them in a thread. pygit2 and OS errors leave this module as
RepoError (naming the repository) or FileSkipped (one file).
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
import subprocess
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import pygit2
from pygit2.enums import DeltaStatus, DiffOption

from codeweir.errors import FileSkipped, RepoError
from codeweir.git.loose_objects import cut_short_objects
from codeweir.git.repo import cached_repository, resolve_commit, where
from codeweir.git.worktree import open_beneath, path_name, read_fd, read_regular, why_unreadable
from codeweir.globs import GlobFilter, PathScope
from codeweir.records import TrackedFile

if TYPE_CHECKING:
    from codeweir.config import RepoConfig

log = logging.getLogger(__name__)

_SYMLINK_MODE = 0o120000
_GITLINK_MODE = 0o160000
_STAGE_MASK = 0x3000  # GIT_INDEX_ENTRY_STAGEMASK: non-zero for the sides of a merge conflict

# Index-to-worktree deltas whose content only the worktree has (unreadable ones are skipped):
_FROM_DISK = frozenset(
    {DeltaStatus.UNTRACKED, DeltaStatus.MODIFIED, DeltaStatus.TYPECHANGE, DeltaStatus.CONFLICTED, DeltaStatus.UNREADABLE}
)
_NOT_FROM_INDEX = _FROM_DISK | {DeltaStatus.DELETED}
# Index to worktree only: git status's HEAD-to-index half would walk every tree of HEAD.
_WORKTREE_DIFF = (
    DiffOption.INCLUDE_UNTRACKED
    | DiffOption.RECURSE_UNTRACKED_DIRS
    | DiffOption.INCLUDE_TYPECHANGE
    | DiffOption.INCLUDE_UNREADABLE
)


@attrs.frozen
class Snapshot:
    files: tuple[TrackedFile, ...]  # sorted by path
    # reason -> count, for reasons with a count: "excluded", "symlink", "submodule", "too_large",
    # "unreadable" (a worktree file that cannot be stat'ed or hashed, a ref's blob that cannot be read)
    skipped: Mapping[str, int]
    head: str  # commit the snapshot is based on; "" for an unborn HEAD
    source: str  # "worktree" or "ref:<name>"


def blob_id(data: bytes) -> str:
    """Git's blob id of `data`: what `git hash-object` prints for a file holding it."""
    return str(pygit2.hash(data))


# --- scanning -----------------------------------------------------------------------------


def scan(repo: RepoConfig, max_file_bytes: int, paths: Iterable[str] | None = None) -> Snapshot:
    """The files of `repo` with blob ids: its worktree, or a ref's tree (bare, or `repo.ref` set).

    Symlinks, submodules, files over `max_file_bytes` and files the include/exclude globs drop
    are skipped and counted by reason. `paths` restricts the scan to those files and directories.
    """
    git = cached_repository(repo)
    selector = _Selector(repo, max_file_bytes, None if paths is None else PathScope.of(paths))
    try:
        if git.is_bare or repo.ref:
            return _scan_ref(repo, git, selector)
        return _scan_worktree(repo, git, selector)
    except (pygit2.GitError, OSError) as exc:
        raise RepoError(f"{where(repo)}: {exc}") from None


@attrs.define
class _Selector:
    """Decides, file by file, what a scan keeps, and counts what it skips."""

    repo: RepoConfig
    max_file_bytes: int
    scope: PathScope | None
    skipped: Counter[str] = attrs.Factory(Counter)
    _globs: GlobFilter = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        try:
            self._globs = GlobFilter.of(self.repo.include, self.repo.exclude)
        except ValueError as exc:
            raise RepoError(f"{where(self.repo)}: {exc}") from None

    def in_scope(self, path: str) -> bool:
        """Whether `path` is wanted at all; counts it as excluded when the globs drop it."""
        if self.scope is not None and path not in self.scope:
            return False
        if not self._globs.matches(path):
            self.skipped["excluded"] += 1
            return False
        return True

    def is_regular(self, mode: int) -> bool:
        """Whether an entry of this git file mode is a regular file; counts symlinks and submodules."""
        if mode == _GITLINK_MODE:
            self.skipped["submodule"] += 1
            return False
        if mode == _SYMLINK_MODE:
            self.skipped["symlink"] += 1
            return False
        return True

    def fits(self, size: int) -> bool:
        if size > self.max_file_bytes:
            self.skipped["too_large"] += 1
            return False
        return True

    def skip(self, reason: str) -> None:
        self.skipped[reason] += 1


def _scan_worktree(repo: RepoConfig, git: pygit2.Repository, selector: _Selector) -> Snapshot:
    index_file = Path(git.path) / "index"
    before = _file_signature(index_file)
    changes = _worktree_changes(git)
    files: list[TrackedFile] = []
    unchanged_during_diff = before is not None and before == _file_signature(index_file)
    listing = _tracked_files(git, before if unchanged_during_diff else None)
    for path, mode in listing.others:  # symlinks and submodules: counted, never read
        if changes.get(path) not in _NOT_FROM_INDEX and selector.in_scope(path):
            selector.is_regular(mode)
    for file in listing.files:
        if changes.get(file.path) not in _NOT_FROM_INDEX and selector.in_scope(file.path) and selector.fits(file.size):
            files.append(file)
    root = git.workdir
    for path, change in changes.items():
        if change not in _FROM_DISK or not selector.in_scope(path.rstrip("/")):
            continue
        if found := _worktree_file(root, path, change, selector):
            files.append(found)
    files.sort(key=lambda f: f.path)
    head = "" if git.head_is_unborn else str(git.head.target)
    return Snapshot(tuple(files), dict(selector.skipped), head, "worktree")


@attrs.frozen
class _IndexListing:
    """The index's stage-0 entries: its regular files, and (path, mode) of the rest (symlinks,
    submodules). Kept between scans, one per repository: the files alone, with no mode or tuple
    of their own, are a third smaller (the kernel's 78,000: 7 MiB less)."""

    signature: tuple[int, ...] | None  # of the index file the entries were read from
    files: tuple[TrackedFile, ...]
    others: tuple[tuple[str, int], ...]


_index_listings: dict[str, _IndexListing] = {}  # by git dir


def _tracked_files(git: pygit2.Repository, signature: tuple[int, ...] | None) -> _IndexListing:
    """The index's stage-0 entries, as the last diff saw them.

    `signature` is the index file's, given when it did not change while the diff ran: then the
    entries are those of that file, and a listing of it is reused, which makes a no-change
    rescan little more than the diff.
    """
    listing = _index_listings.get(git.path)
    if signature and listing is not None and listing.signature == signature:
        return listing
    files: list[TrackedFile] = []
    others: list[tuple[str, int]] = []
    for path, blob, mode, size in _index_entries(git.index):
        if mode in (_SYMLINK_MODE, _GITLINK_MODE):
            others.append((path, mode))
        else:
            files.append(TrackedFile(path, blob, size))
    listing = _IndexListing(signature, tuple(files), tuple(others))
    if signature:
        _index_listings[git.path] = listing
    return listing


def _file_signature(path: Path) -> tuple[int, ...] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    # git and libgit2 replace the index by renaming a new file over it: a new inode each write.
    return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _worktree_changes(git: pygit2.Repository) -> dict[str, DeltaStatus]:
    """path -> how the worktree differs from the index, for each file that differs.

    Like `git status`, it writes back the stat data of files it found unchanged only by
    hashing them (after a checkout or a touch), so the next scan need not hash them again. When
    the index cannot be written (a git command holds its lock, a read-only repository), it
    compares without writing. In a worktree of GIT_STATUS_MIN_FILES files or more, where there
    is a git command, it asks `git status`: git checks the files on every core, libgit2 on one
    (the kernel's 78,000: 90 ms, and 300), and below that starting git costs more than it saves.
    """
    index = git.index
    if len(index) >= GIT_STATUS_MIN_FILES and (changes := _git_status_changes(git)) is not None:
        return changes
    index.read(False)  # a diff against a given index does not reload it when git changed it
    try:
        try:
            diff = index.diff_to_workdir(_WORKTREE_DIFF | DiffOption.UPDATE_INDEX)
        except pygit2.GitError:
            diff = index.diff_to_workdir(_WORKTREE_DIFF)
    except pygit2.GitError as exc:
        if _TOO_DEEP not in str(exc):
            raise
        return _walked_changes(git)
    return {path_name(delta.new_file.raw_path): delta.status for delta in diff.deltas}


GIT = shutil.which("git")
GIT_STATUS_MIN_FILES = 2000  # libgit2 takes ~4 us a file, git ~1 us after ~2.5 ms to start
# What a status entry's worktree column says, where _worktree_changes has a use for it.
_WORKTREE_COLUMN = {b"M": DeltaStatus.MODIFIED, b"T": DeltaStatus.TYPECHANGE, b"D": DeltaStatus.DELETED}
_STATUS = ("status", "--porcelain=v2", "-z", "--untracked-files=all", "--ignore-submodules=all", "--no-renames")
STATUS_TIMEOUT_SECONDS = 600.0


def _git_status_changes(git: pygit2.Repository) -> dict[str, DeltaStatus] | None:
    """What _worktree_changes says, from `git status`; None where git is missing or fails (a
    repository it refuses, a version without these options): libgit2 answers then."""
    if GIT is None:
        return None
    # A daemon started from a git hook inherits GIT_DIR and the like, which would point git
    # at another repository than the one named.
    env = {name: value for name, value in os.environ.items() if not name.startswith("GIT_")}
    try:
        done = subprocess.run(
            [GIT, "-C", git.workdir, *_STATUS], capture_output=True, env=env, timeout=STATUS_TIMEOUT_SECONDS, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        log.debug("git status failed in %s: %s", git.workdir, done.stderr.decode(errors="replace").strip())
        return None
    changes: dict[str, DeltaStatus] = {}
    for entry in done.stdout.split(b"\0"):
        kind = entry[:1]
        if kind == b"?":
            changes[path_name(entry[2:])] = DeltaStatus.UNTRACKED
        elif kind == b"u":  # u XY sub m1 m2 m3 mW h1 h2 h3 path
            changes[path_name(entry.split(b" ", 10)[10])] = DeltaStatus.CONFLICTED
        elif kind == b"1":  # 1 XY sub mH mI mW hH hI path
            fields = entry.split(b" ", 8)
            if (status := _WORKTREE_COLUMN.get(fields[1][1:2])) is not None:
                changes[path_name(fields[8])] = status
    git.index.read(False)  # git may have written it (stat data refreshed): the entries are listed from it
    return changes


# libgit2's workdir iterator gives up on a directory nested 100 deep (FILESYSTEM_MAX_DEPTH in its
# iterator.c), failing the whole diff, where git goes on.
_TOO_DEEP = "directory nesting too deep"


def _walked_changes(git: pygit2.Repository) -> dict[str, DeltaStatus]:
    """What _worktree_changes says, for a worktree libgit2 will not walk (_TOO_DEEP).

    The worktree is walked here, without recursion, and libgit2 asked only what is ignored. A
    tracked file whose stat data differs from its index entry's, or that changed in the second
    the index was written, counts as modified: the scan hashes it. Slower than libgit2's diff and
    nothing is written back, so it is used only where libgit2 refuses.
    """
    index_file = Path(git.path) / "index"
    try:
        index_written = int(index_file.stat().st_mtime)
    except OSError:
        index_written = 0
    tracked: dict[str, tuple[int, int, int, int]] = {}  # path -> (mode, size, mtime s, mtime ns)
    conflicted: set[str] = set()
    directories: set[str] = set()  # of tracked paths
    for path, stage, mode, size, seconds, nanoseconds in _index_stat_entries(git.index):
        if stage:
            conflicted.add(path)
        else:
            tracked[path] = (mode, size, seconds, nanoseconds)
        parts = path.split("/")
        directories.update("/".join(parts[:end]) for end in range(1, len(parts)))
    root = os.fsencode(git.workdir)
    changes: dict[str, DeltaStatus] = {}
    seen: set[str] = {path for path, (mode, *_) in tracked.items() if mode == _GITLINK_MODE}
    pending = [b""]  # directories to list, relative, each ending in "/" (but the root)
    while pending:
        directory = pending.pop()
        try:
            with os.scandir(root + directory) as listing:
                entries = list(listing)
        except OSError:
            if directory:
                changes[path_name(directory)] = DeltaStatus.UNREADABLE
            continue
        for entry in entries:
            relative = directory + entry.name
            if relative == b".git":
                continue
            path = path_name(relative)
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:  # gone since listed
                continue
            if stat.S_ISDIR(info.st_mode):
                if path in seen:  # a submodule's checkout
                    continue
                if path not in directories:
                    if _is_ignored(git, relative + b"/"):
                        continue
                    if os.path.lexists(root + relative + b"/.git"):  # a nested repository, as libgit2 says it
                        changes[path + "/"] = DeltaStatus.UNTRACKED
                        continue
                pending.append(relative + b"/")
            elif stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode):  # FIFOs, sockets, devices: no files to git
                if path in conflicted:
                    changes[path] = DeltaStatus.CONFLICTED
                elif path in tracked:
                    seen.add(path)
                    if change := _stat_change(tracked[path], info, index_written):
                        changes[path] = change
                elif not _is_ignored(git, relative):
                    changes[path] = DeltaStatus.UNTRACKED
    for path in tracked.keys() - seen:
        changes.setdefault(path, DeltaStatus.DELETED)
    return changes


def _stat_change(entry: tuple[int, int, int, int], info: os.stat_result, index_written: int) -> DeltaStatus | None:
    """How a tracked file differs from its index entry, by stat data alone (as git first looks)."""
    mode, size, seconds, nanoseconds = entry
    if stat.S_ISLNK(info.st_mode) != (mode == _SYMLINK_MODE):
        return DeltaStatus.TYPECHANGE
    if stat.S_ISLNK(info.st_mode):
        return None  # a symlink is skipped whatever it points at
    same = (
        info.st_size & 0xFFFFFFFF == size  # the index keeps 32 bits of it
        and int(info.st_mtime) == seconds
        and (not nanoseconds or info.st_mtime_ns % 1_000_000_000 == nanoseconds)  # git built without USE_NSEC writes 0
        and seconds < index_written  # else racily clean: changed in the second the index was written
    )
    return None if same else DeltaStatus.MODIFIED


def _is_ignored(git: pygit2.Repository, relative: bytes) -> bool:
    """Whether git ignores `relative` (a directory's ends in "/"). pygit2 takes UTF-8 only: a name
    that is not is matched with its bad bytes replaced, which wildcard rules still match."""
    try:
        return git.path_is_ignored(relative.decode("utf-8", "replace"))
    except pygit2.GitError:
        return False  # an unreadable .gitignore: index rather than lose files


def _worktree_file(root: str, path: str, change: DeltaStatus, selector: _Selector) -> TrackedFile | None:
    """A file whose current content only the worktree has: open it beneath the root, read and hash it."""
    if change == DeltaStatus.UNREADABLE:
        selector.skip("unreadable")
        return None
    name = path.rstrip("/")
    try:
        fd = open_beneath(root, name)
    except (FileNotFoundError, NotADirectoryError):  # deleted since status looked
        return None
    except OSError as exc:
        selector.skip("symlink" if exc.errno == errno.ELOOP else "unreadable")
        return None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):  # a gitlink's checkout or an untracked nested repository
            selector.skip("submodule")
        elif not stat.S_ISREG(info.st_mode):  # a FIFO, socket or device: never read
            selector.skip("unreadable")
        elif selector.fits(info.st_size):
            data = read_fd(fd, selector.max_file_bytes)
            if selector.fits(len(data)):  # it may have grown since the fstat
                return TrackedFile(name, blob_id(data), len(data))
    except OSError:
        selector.skip("unreadable")
    finally:
        os.close(fd)
    return None


def _scan_ref(repo: RepoConfig, git: pygit2.Repository, selector: _Selector) -> Snapshot:
    """A ref's tree. A blob that cannot be read is skipped as "unreadable"; a commit or tree
    that cannot be read makes the ref unreadable (RepoError)."""
    name = repo.ref or "HEAD"
    source = f"ref:{name}"
    cut_short = cut_short_objects(git)
    if cut_short:  # before resolving: that reads the commit whole
        _refuse_cut_short_commit_or_trees(repo, git, name, cut_short)
    commit = resolve_commit(repo, git)
    if commit is None:  # an unborn HEAD
        return Snapshot((), {}, "", source)
    tree_index = pygit2.Index()
    tree_index.read_tree(commit.tree)
    odb = git.odb
    files = []
    for path, blob, mode, _ in _index_entries(tree_index):
        if not (selector.in_scope(path) and selector.is_regular(mode)):
            continue
        try:
            size = _blob_size(odb, blob, cut_short)
        except FileSkipped as exc:
            log.warning("%s: %s: %s; skipped", where(repo), path, exc)
            selector.skip("unreadable")
            continue
        if selector.fits(size):
            files.append(TrackedFile(path, blob, size))
    return Snapshot(tuple(files), dict(selector.skipped), str(commit.id), source)


def _blob_size(odb: pygit2.Odb, blob: str, cut_short: Mapping[str, str]) -> int:
    if blob in cut_short:
        raise FileSkipped(f"blob {blob} is cut short (a truncated loose object)")
    try:
        return odb.read_header(blob)[1]
    except pygit2.GitError as exc:  # corrupt or missing (NotFoundError is a GitError too)
        raise FileSkipped(f"cannot read blob {blob}: {exc}") from None


# libgit2 (1.9) spins forever reading a loose object whose zlib stream ends early, as a
# truncated file's does (libgit2 issue 7342). A ref scan finds such objects first and lets
# libgit2 read whole none that it needs: the commit and its trees (blob headers read safely).


def _refuse_cut_short_commit_or_trees(repo: RepoConfig, git: pygit2.Repository, name: str, cut_short: Mapping[str, str]) -> None:
    """RepoError naming the first cut-short object between `name` and the trees of its commit;
    reads only objects that are whole."""
    try:
        start = str(git.lookup_reference_dwim(name).resolve().target)
    except (KeyError, ValueError, pygit2.GitError):
        start = name  # a commit id; revparse reads anything else as before
    wanted: list[tuple[str, str | None]] = [(start, None)]  # (id, the path of a tree; None above the trees)
    while wanted:
        oid, path = wanted.pop()
        if oid in cut_short:
            what = (cut_short[oid] or "object") if path is None else f"tree of {path or '/'}"
            raise RepoError(
                f"{where(repo)}: ref {name!r}: {what} {oid} is cut short (a truncated loose object; git fsck lists them all)"
            )
        try:
            obj = git[oid]
        except (KeyError, ValueError):
            return  # not an object id: revparse says what is wrong with the ref
        if isinstance(obj, pygit2.Tag):
            wanted.append((str(obj.target), None))
        elif isinstance(obj, pygit2.Commit):
            wanted.append((str(obj.tree_id), ""))
        elif isinstance(obj, pygit2.Tree):
            wanted += [(str(e.id), f"{path}{e.name}/") for e in obj if e.type_str == "tree"]


def _index_entries(index: pygit2.Index) -> Iterator[tuple[str, str, int, int]]:
    """(path, hex id, mode, worktree size) of each stage-0 entry, in path order.

    Read from libgit2's entries through pygit2's cffi handle: building pygit2's IndexEntry
    objects costs twice as much, and a first scan lists every entry.
    """
    ffi, lib, handle = pygit2.ffi, pygit2.C, index._index
    for i in range(lib.git_index_entrycount(handle)):
        entry = lib.git_index_get_byindex(handle, i)
        if entry.flags & _STAGE_MASK:
            continue
        yield path_name(ffi.string(entry.path)), ffi.buffer(entry.id.id)[:].hex(), entry.mode, entry.file_size


def _index_stat_entries(index: pygit2.Index) -> Iterator[tuple[str, int, int, int, int, int]]:
    """(path, stage, mode, size, mtime seconds, mtime nanoseconds) of every entry, as the index keeps them."""
    ffi, lib, handle = pygit2.ffi, pygit2.C, index._index
    for i in range(lib.git_index_entrycount(handle)):
        entry = lib.git_index_get_byindex(handle, i)
        stage = (entry.flags & _STAGE_MASK) >> 12
        yield path_name(ffi.string(entry.path)), stage, entry.mode, entry.file_size, entry.mtime.seconds, entry.mtime.nanoseconds


# --- reading ------------------------------------------------------------------------------


def read_file(repo: RepoConfig, file: TrackedFile, limit: int | None = None) -> bytes:
    """The content of a scanned file: from disk for a worktree, from the object database for a ref.

    A worktree file is opened beneath the worktree's root with no symlink followed, and read only
    if it is a regular file; at most `limit` + 1 bytes of it are read when a limit is given.
    Raises FileSkipped when this file cannot be read, RepoError when the repository cannot.
    """
    git = cached_repository(repo)
    if git.is_bare or repo.ref:
        try:
            return git[file.blob].data  # type: ignore[attr-defined]  # a Blob; pygit2's stubs say Object
        except (KeyError, ValueError, pygit2.GitError) as exc:
            raise FileSkipped(f"{where(repo)}: {file.path}: cannot read blob {file.blob}: {exc}") from None
    try:
        return read_regular(git.workdir, file.path, limit)
    except OSError as exc:
        raise FileSkipped(f"{where(repo)}: {file.path}: {why_unreadable(exc)}") from None
