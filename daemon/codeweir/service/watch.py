"""Watching repositories: worktree changes (watchfiles) and ref moves (polling), turned into syncs.

A saved file becomes an interactive sync of just the changed paths, once the worktree has been
quiet for `debounce` seconds (an editor's save is several events). A commit or checkout moves
HEAD or a ref: that becomes a sync of the whole repository, which looks at every view (the
worktree and the refs `refs` names). Bare repositories and configured refs have no worktree to
watch; their refs are polled.

Paths are named as git/worktree.py names them. A change to a path whose name is not UTF-8
ends watchfiles' watch ("Unable to decode path") and loses what it had gathered: the watcher
then asks for a sync of the whole repository and watches again.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import anyio
import attrs
import pygit2
import trio
import watchfiles
from watchfiles._rust_notify import WatchfilesRustInternalError  # what its stub exports

from codeweir.config import RepoConfig
from codeweir.errors import Busy, RepoError
from codeweir.git.repo import open_repository, views_state
from codeweir.git.worktree import path_name
from codeweir.service.scheduler import SyncRequest

log = logging.getLogger(__name__)

Submit = Callable[[SyncRequest], object]


@attrs.frozen
class Changes:
    paths: frozenset[str] = frozenset()  # relative to the worktree root, posix, named as git/worktree.py says
    refs_moved: bool = False  # HEAD or a ref changed: a commit, checkout, merge or fetch
    lost_track: bool = False  # changes went unseen (the watch broke off): sync everything


@attrs.define
class Debouncer:
    """Gathers changes until `quiet` seconds pass without one, or `max_delay` since the first.

    `max_delay` keeps a worktree that never goes quiet (a build writing files) from starving
    the index.
    """

    quiet: float
    max_delay: float
    _paths: set[str] = attrs.field(factory=set, init=False)
    _refs_moved: bool = attrs.field(default=False, init=False)
    _lost_track: bool = attrs.field(default=False, init=False)
    _first: float = attrs.field(default=math.inf, init=False)
    _last: float = attrs.field(default=math.inf, init=False)

    def add(self, changes: Changes, now: float) -> None:
        if not changes.paths and not changes.refs_moved and not changes.lost_track:
            return
        self._paths |= changes.paths
        self._refs_moved |= changes.refs_moved
        self._lost_track |= changes.lost_track
        self._first = min(self._first, now)
        self._last = now

    def deadline(self) -> float:
        """When the pending changes are due; inf with nothing pending."""
        return min(self._last + self.quiet, self._first + self.max_delay)

    def take(self, now: float) -> Changes | None:
        """The pending changes if they are due (and forget them), else None."""
        if now < self.deadline():
            return None
        changes = Changes(frozenset(self._paths), self._refs_moved, self._lost_track)
        self._paths, self._refs_moved, self._lost_track = set(), False, False
        self._first, self._last = math.inf, math.inf
        return changes


def sync_request(repo_name: str, changes: Changes) -> SyncRequest:
    if changes.refs_moved or changes.lost_track:
        # The whole repository: a checkout may change any file, and a sync of it covers the paths.
        return SyncRequest(repo_name)
    return SyncRequest(repo_name, paths=changes.paths, priority="interactive")


def is_ref_change(relative: str) -> bool:
    """Whether a path under the worktree is a file git rewrites when HEAD or a ref moves."""
    if relative.endswith(".lock"):
        return False  # git writes the lock, then renames it over the ref: that rename counts
    return relative in (".git/HEAD", ".git/packed-refs") or relative.startswith(".git/refs/")


class _Worktree:
    """Turns watchfiles' absolute paths into changes that matter, with git's ignore rules."""

    def __init__(self, repo: RepoConfig) -> None:
        self.root = Path(repo.path)
        self._git = open_repository(repo)

    def changes(self, raw: Iterable[tuple[watchfiles.Change, str]]) -> Changes:
        paths, refs_moved = set(), False
        for _, absolute in raw:
            try:
                relative = Path(absolute).relative_to(self.root).as_posix()
            except ValueError:
                continue
            if relative == ".git" or relative.startswith(".git/"):
                refs_moved |= is_ref_change(relative)
            elif not self._ignored(relative, absolute):
                paths.add(path_name(os.fsencode(relative)))
        return Changes(frozenset(paths), refs_moved)

    def _ignored(self, relative: str, absolute: str) -> bool:
        # libgit2 matches "build/" rules against a directory only when told it is one.
        as_dir = relative + "/" if os.path.isdir(absolute) else relative
        try:
            return self._git.path_is_ignored(as_dir)
        except (pygit2.GitError, ValueError):
            return False  # an unreadable .gitignore: better a needless sync than a missed one


def _submit(submit: Submit, request: SyncRequest) -> bool:
    """Submit; False when the queue is full, for the caller to try again later."""
    try:
        submit(request)
        return True
    except Busy as exc:
        log.warning("repository %r: sync deferred: %s", request.repo, exc)
        return False


async def watch_worktree(
    repo: RepoConfig,
    submit: Submit,
    *,
    debounce: float = 0.3,
    max_delay: float = 1.0,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Submit a sync for every quiet-separated burst of changes in `repo`'s worktree.

    Started means the repository is open; the watches are set up a moment later (the daemon's
    start-up sync covers that moment). Raises RepoError (inside exception groups, from the
    nurseries) when the worktree cannot be watched; watch_repository handles that.
    """
    worktree = await trio.to_thread.run_sync(_Worktree, repo)
    debouncer = Debouncer(quiet=debounce, max_delay=max_delay)
    send, receive = trio.open_memory_channel[Changes](16)
    task_status.started()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_read_changes, worktree, send)
        async with receive:
            while True:
                with trio.move_on_at(debouncer.deadline()):
                    debouncer.add(await receive.receive(), trio.current_time())
                    continue
                changes = debouncer.take(trio.current_time())
                if changes is not None and not _submit(submit, sync_request(repo.name, changes)):
                    debouncer.add(changes, trio.current_time())  # queue full: try again when quiet


async def _read_changes(worktree: _Worktree, send: trio.MemorySendChannel[Changes]) -> None:
    # awatch waits in a thread that cancellation cannot interrupt; setting stop_event ends that
    # wait within one step, so a cancelled watcher goes away at once instead of after its timeout.
    stop = anyio.Event()
    async with send, trio.open_nursery() as nursery:
        nursery.start_soon(_set_when_cancelled, stop)
        while not stop.is_set():
            lost_track = False
            try:  # awatch raises what its watch raised inside an exception group
                async for raw in watchfiles.awatch(worktree.root, watch_filter=None, step=20, stop_event=stop):
                    changes = await trio.to_thread.run_sync(worktree.changes, raw)
                    if changes.paths or changes.refs_moved:
                        await send.send(changes)
                    if not worktree.root.is_dir():  # its watches went with it: watch again once it is back
                        raise RepoError(f"{worktree.root}: the worktree is gone")
            except* OSError as errors:
                raise RepoError(f"cannot watch {worktree.root}: {_reasons(errors)}") from None
            except* WatchfilesRustInternalError as errors:
                if not all(_UNDECODABLE in str(exc) for exc in _leaves(errors)):
                    raise RepoError(f"cannot watch {worktree.root}: {_reasons(errors)}") from None
                log.info("%s: %s; syncing the whole worktree and watching again", worktree.root, _reasons(errors))
                lost_track = True
            if lost_track:
                await send.send(Changes(lost_track=True))
        nursery.cancel_scope.cancel()


def _reasons(errors: BaseExceptionGroup) -> str:
    return "; ".join(str(exc) for exc in _leaves(errors))


# watchfiles ends its watch with this when a changed path's name is not UTF-8 (it has no bytes API).
_UNDECODABLE = "Unable to decode path"


async def _set_when_cancelled(event: anyio.Event) -> None:
    try:
        await trio.sleep_forever()
    finally:
        event.set()


async def poll_refs(
    repo: RepoConfig,
    submit: Submit,
    *,
    interval: float = 30.0,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Submit a sync of the whole repository whenever its ref, or one of the refs `repo.refs`
    names, points somewhere new, appears or goes.

    A ref that cannot be resolved counts as a change too: the sync that follows fails and the
    repository's backoff says why in status.
    """
    last = await _resolve_or_error(repo)
    task_status.started()
    while True:
        await trio.sleep(interval)
        current = await _resolve_or_error(repo)
        if current != last and _submit(submit, SyncRequest(repo.name)):
            last = current


async def _resolve_or_error(repo: RepoConfig) -> str:
    try:
        return await trio.to_thread.run_sync(views_state, repo)
    except RepoError as exc:
        return f"error: {exc}"


def watches_worktree(repo: RepoConfig) -> bool:
    """Whether `repo` indexes a worktree (watched) rather than a ref (polled)."""
    return not repo.ref and not open_repository(repo).is_bare


async def watch_repository(
    repo: RepoConfig,
    submit: Submit,
    *,
    debounce: float = 0.3,
    poll_interval: float = 30.0,
    retry: float = 60.0,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Watch a worktree or poll a ref, whichever `repo` indexes; never raises for a repository
    that goes missing or breaks: logs it and tries again every `retry` seconds."""
    task_status.started()
    last_reasons = ""
    while True:
        try:
            if await trio.to_thread.run_sync(watches_worktree, repo):
                await watch_worktree(repo, submit, debounce=debounce)
            else:
                await poll_refs(repo, submit, interval=poll_interval)
        except* RepoError as errors:  # from inside the watcher's nurseries
            reasons = _reasons(errors)
            # Once per new reason: a repository that stays missing should not fill the log.
            log.log(
                logging.DEBUG if reasons == last_reasons else logging.WARNING,
                "not watching %s; trying again every %g s",
                reasons,
                retry,
            )
            last_reasons = reasons
        await trio.sleep(retry)


def _leaves(group: BaseExceptionGroup) -> Iterable[BaseException]:
    for exc in group.exceptions:
        yield from _leaves(exc) if isinstance(exc, BaseExceptionGroup) else (exc,)
