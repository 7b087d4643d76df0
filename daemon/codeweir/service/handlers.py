"""The control API's methods: what each request does to the daemon's state.

`Daemon` holds the running state that requests read and change (config, store, job
runner, per-repository sync results). The server decodes requests and calls these.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import attrs
import trio

from codeweir.config import Config, RepoConfig, load_config
from codeweir.embed.backlog import EmbeddingService
from codeweir.errors import Busy, CodeweirError, ConfigError, RequestError, StoreError
from codeweir.index.store import VERSIONS, Store
from codeweir.index.writes import DeleteRepo, FinishRebuild, Report, write_one
from codeweir.ingest import pipeline
from codeweir.search.planner import SearchRequests
from codeweir.search.query import parse_query
from codeweir.service import systemd
from codeweir.service.jobs import JobRunner
from codeweir.service.scheduler import Job, SyncRequest
from codeweir.service.watch import watch_repository

log = logging.getLogger(__name__)

STATUS_FILE_ERRORS = 5  # files per repository whose error status shows


@attrs.define
class RepoState:
    """What the last finished sync of a repository found."""

    total: int | None = None
    skipped: dict[str, int] = attrs.Factory(dict)
    head: str = ""
    synced_at: float | None = None
    error: str | None = None


@attrs.define
class StatusThrottle:
    """Lets a STATUS= progress line through at most every `interval` seconds: systemd (and
    `systemctl status`) need not hear of every commit."""

    interval: float = 0.5
    _last: float = -math.inf

    def due(self, now: float) -> bool:
        if now - self._last < self.interval:
            return False
        self._last = now
        return True


@attrs.define(eq=False)
class Stages:
    """The shared pipeline's channels and limiters, made by run_daemon()."""

    files: trio.MemorySendChannel
    writes: trio.MemorySendChannel
    git_limiter: trio.CapacityLimiter
    search_limiter: trio.CapacityLimiter


class Daemon:
    def __init__(
        self,
        config: Config,
        config_path,
        store: Store,
        stages: Stages,
        runner: JobRunner,
        *,
        stop: Callable[[], None],
        embedding: EmbeddingService,
        started_in: Path | None = None,
    ) -> None:
        self._stop = stop
        self.embedding = embedding
        self.searches = SearchRequests(store, embedding, stages.search_limiter, lambda name: self.config.repo(name))
        self.config = config
        self.config_path = config_path
        self.started_in = started_in
        self.store = store
        self.stages = stages
        self.runner = runner
        self.repo_states: dict[str, RepoState] = {r.name: RepoState() for r in config.repositories}
        self.started = time.time()
        self._rebuilt: set[str] = set()  # repositories synced into the index being rebuilt
        # Scheduler times are trio's clock; this turns them into wall-clock times for people.
        self._wall_offset = time.time() - trio.current_time()
        self._reload_lock = trio.Lock()
        # One watcher per repository, each in its own scope so that reload can stop it.
        self.watchers: dict[str, trio.CancelScope] = {}
        self._services: trio.Nursery | None = None

    def shutdown(self) -> None:
        """Stop accepting and cancel syncs; run_daemon() then drains and commits."""
        systemd.notify("STOPPING=1")
        self.runner.cancel_all()
        self._stop()

    # -- watchers -------------------------------------------------------------------------------

    def start_watchers(self, services: trio.Nursery) -> None:
        """Watch every configured repository from the services nursery; reload adds and stops watchers."""
        self._services = services
        for repo in self.config.repositories:
            self._start_watcher(repo)

    def _start_watcher(self, repo: RepoConfig) -> None:
        if self._services is None:
            return  # not serving yet: start_watchers will start it
        scope = self.watchers[repo.name] = trio.CancelScope()
        self._services.start_soon(self._watch, repo, scope, name=f"watch {repo.name}")

    async def _watch(self, repo: RepoConfig, scope: trio.CancelScope) -> None:
        try:
            with scope:
                await watch_repository(repo, self.runner.submit)
        finally:
            if self.watchers.get(repo.name) is scope:
                del self.watchers[repo.name]

    def _stop_watcher(self, name: str) -> None:
        scope = self.watchers.pop(name, None)
        if scope is not None:
            scope.cancel()

    # -- syncs --------------------------------------------------------------------------------

    async def run_job(self, job: Job, report: Report) -> dict[str, int]:
        """The job runner's callback: one sync of one repository."""
        repo = self.config.repo(job.request.repo)
        if repo is None:
            raise RequestError(f"repository {job.request.repo!r} is not configured")
        state = self.repo_states.setdefault(repo.name, RepoState())
        throttle = StatusThrottle()

        def report_progress(event: dict) -> None:
            report(event)
            if event.get("stage") == "index" and throttle.due(trio.current_time()):
                systemd.notify(f"STATUS=syncing {repo.name}: {event['done']}/{event['total']} files")

        outcome = "cancelled"
        try:
            result = await pipeline.sync_repository(
                repo,
                store=self.store,
                files=self.stages.files,
                writes=self.stages.writes,
                git_limiter=self.stages.git_limiter,
                max_bytes=self.config.limits.max_file_bytes,
                report=report_progress,
                full=job.request.full,
                paths=job.request.paths,
            )
            outcome = f"completed: {result.indexed} indexed, {result.deleted} deleted, {result.unchanged} unchanged"
        except Exception as exc:
            state.error = str(exc)
            outcome = f"failed: {exc}"
            raise
        finally:
            self._status_after(job, f"{repo.name} {outcome}")
        if job.request.paths is None:
            state.total = result.total
            state.skipped = result.skipped
            await self._note_rebuilt(repo.name)
        state.head = result.head
        state.synced_at = time.time()
        state.error = None
        return {
            "files": result.total,
            "indexed": result.indexed,
            "deleted": result.deleted,
            "unchanged": result.unchanged,
            "commits": result.commits,
            **{f"status_{k}": v for k, v in result.statuses.items()},
        }

    def _status_after(self, job: Job, summary: str) -> None:
        others = any(j.state == "running" and j.id != job.id for j in self.runner.jobs())
        systemd.notify(f"STATUS={'syncing' if others else 'idle'}; last sync: {summary}")

    async def _note_rebuilt(self, name: str) -> None:
        """While the index is rebuilt: once every configured repository has been synced into the
        rebuild, the writer swaps it in. Until then searches read the old index."""
        if not self.store.rebuilding:
            return
        self._rebuilt.add(name)
        if not {r.name for r in self.config.repositories} <= self._rebuilt:
            return
        try:
            await write_one(self.stages.writes, name, FinishRebuild)
        except StoreError as exc:  # the old index still serves; the next sync tries again
            log.error("the rebuilt index could not replace the old one: %s", exc)
        else:
            self._rebuilt.clear()

    def submit_all(self, *, full: bool = False) -> list[Job]:
        return [self.runner.submit(SyncRequest(r.name, full=full)) for r in self.config.repositories]

    def _wall(self, t: float | None) -> float | None:
        return None if t is None else round(t + self._wall_offset, 3)

    def job_view(self, job: Job) -> dict[str, Any]:
        wall = self._wall
        return {
            "id": job.id,
            "repo": job.request.repo,
            "state": job.state,
            "full": job.request.full,
            "paths": sorted(job.request.paths) if job.request.paths is not None else None,
            "priority": job.request.priority,
            "created": wall(job.created),
            "started": wall(job.started),
            "ended": wall(job.ended),
            "counts": dict(job.counts),
            "error": job.error,
        }

    # -- methods ------------------------------------------------------------------------------

    async def status(self, params, notify) -> dict[str, Any]:
        repos = []
        for repo in self.config.repositories:
            state = self.repo_states.get(repo.name, RepoState())
            statuses = await trio.to_thread.run_sync(self.store.file_status, repo.name, limiter=self.stages.search_limiter)
            chunks = await trio.to_thread.run_sync(
                self.store.count, ("doc_kind", "chunk"), ("repo", repo.name), limiter=self.stages.search_limiter
            )
            file_errors = await trio.to_thread.run_sync(
                self.store.file_errors, repo.name, STATUS_FILE_ERRORS, limiter=self.stages.search_limiter
            )
            repos.append(
                {
                    "name": repo.name,
                    "path": repo.path,
                    "files_indexed": statuses.get("indexed", 0),
                    "files_seen": sum(statuses.values()),
                    "files_total": state.total,
                    # Skipped by the scan (a corrupt blob: "unreadable") or by its file's parse (an
                    # unreadable worktree file): both kinds count.
                    "files_skipped": dict(
                        Counter(state.skipped) + Counter({k: v for k, v in statuses.items() if k != "indexed"})
                    ),
                    "chunks": chunks,
                    "chunks_embedded": max(0, chunks - self.embedding.pending_for(repo.name))
                    if self.embedding.vectors is not None
                    else 0,
                    "file_errors": file_errors,  # a few files that could not be read or chunked, and why
                    "head": state.head,
                    "synced_at": state.synced_at,
                    "error": state.error,
                    "backoff": self._backoff_view(repo.name),
                }
            )
        jobs = self.runner.jobs()
        return {
            "daemon": {
                "version": version("codeweir"),
                "pid": os.getpid(),
                "uptime_s": round(time.time() - self.started, 1),
                "state_dir": self.config.state_dir,
                "socket": self.config.socket,
            },
            "repos": repos,
            "model": self.embedding.describe(),
            "index": {
                "directory": str(self.store.directory),
                "versions": VERSIONS,
                # An index of other versions is rebuilt while searches read it.
                "rebuilding": self.store.rebuilding,
                "rebuilt_repos": sorted(self._rebuilt),
            },
            "queue": {
                "queued": sum(j.state == "queued" for j in jobs),
                "running": sum(j.state == "running" for j in jobs),
            },
        }

    def _backoff_view(self, name: str) -> dict[str, Any] | None:
        """Why a repository keeps failing and when it is tried again (wall clock); None if healthy."""
        state = self.runner.backoff.state(name)
        if state is None:
            return None
        retry_at = state["retry_at"]
        return {
            **state,
            "retry_at": self._wall(retry_at),
            "retry_in_s": round(max(0.0, retry_at - trio.current_time()), 1),
        }

    async def repos(self, params, notify) -> dict[str, Any]:
        return {
            "repos": [
                {
                    "name": r.name,
                    "path": r.path,
                    "ref": r.ref or None,
                    "include": list(r.include),
                    "exclude": list(r.exclude),
                    "error": self.repo_states.get(r.name, RepoState()).error,
                }
                for r in self.config.repositories
            ]
        }

    def _check_repo(self, name: str | None) -> None:
        if name is not None and self.config.repo(name) is None:
            known = ", ".join(r.name for r in self.config.repositories) or "none"
            raise RequestError(f"repo: no repository named {name!r} (configured: {known})")

    async def sync(self, params, notify) -> dict[str, Any]:
        self._check_repo(params.repo)
        if params.repo is None and not params.all:
            raise RequestError("sync: name a repository or set all=true")
        names = [params.repo] if params.repo else [r.name for r in self.config.repositories]
        paths = frozenset(params.paths) if params.paths is not None else None
        jobs = [self.runner.submit(SyncRequest(name, full=params.full, paths=paths, priority=params.priority)) for name in names]
        if params.wait:
            async with trio.open_nursery() as nursery:
                for job in jobs:
                    nursery.start_soon(self._follow, job, notify)
            jobs = [self._latest(job) for job in jobs]
        return {"jobs": [self.job_view(j) for j in jobs]}

    def _latest(self, job: Job) -> Job:
        return next((j for j in self.runner.jobs() if j.id == job.id), job)

    async def _follow(self, job: Job, notify) -> None:
        async with self.runner.subscribe(job.id) as events:
            async for event in events:
                await notify("progress", {"job": job.id, "repo": job.request.repo, **event})
        await self.runner.wait(job.id)

    async def search(self, params, notify) -> dict[str, Any]:
        self._check_repo(params.repo)
        query = parse_query(params.query, regex=params.mode == "regex")
        self._check_repo(query.repo)
        return await self.searches.answer(query, params)

    async def jobs(self, params, notify) -> dict[str, Any]:
        return {"jobs": [self.job_view(j) for j in self.runner.jobs()]}

    async def cancel(self, params, notify) -> dict[str, Any]:
        if params.job is None and params.repo is None:
            raise RequestError("cancel: name a job or a repository")
        self._check_repo(params.repo)
        cancelled = self.runner.cancel(job_id=params.job, repo=params.repo)
        if params.job is not None and not cancelled:
            raise RequestError(f"job: no queued or running job {params.job!r}")
        return {"cancelled": [self.job_view(j) for j in cancelled]}

    async def wait(self, params, notify) -> dict[str, Any]:
        self._check_repo(params.repo)
        names = {params.repo} if params.repo else {r.name for r in self.config.repositories}

        def pending() -> list[Job]:
            return [j for j in self.runner.jobs() if j.request.repo in names and j.state in ("queued", "running")]

        with trio.move_on_after(params.timeout if params.timeout is not None else math.inf):
            while jobs := pending():
                for job in jobs:
                    await self.runner.wait(job.id)
            return {"done": True}
        return {"done": False, "pending": [self.job_view(j) for j in pending()]}

    async def reload(self, params, notify) -> dict[str, Any]:
        return await self.reload_config()

    def reload_soon(self) -> None:
        """SIGHUP: reload in the background, so that signals are still handled meanwhile."""
        if self._services is None:
            log.warning("SIGHUP before the daemon is ready: ignored")
            return
        self._services.start_soon(self._reload_logged, name="reload")

    async def _reload_logged(self) -> None:
        try:
            await self.reload_config()
        except CodeweirError:
            pass  # logged by reload_config; the old config stays in force

    async def reload_config(self) -> dict[str, Any]:
        """Re-read the config; a broken one is rejected and the old one stays in force.

        Added repositories are watched and synced, changed ones resynced in full, removed ones
        stop being watched and lose their documents. Tells systemd (RELOADING=1, then READY=1).
        """
        async with self._reload_lock:
            systemd.notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")
            try:
                new = await trio.to_thread.run_sync(functools.partial(load_config, self.config_path, started_in=self.started_in))
            except ConfigError as exc:
                log.error("reload rejected, the old config stays in force: %s", exc)
                systemd.notify("READY=1", f"STATUS=reload rejected: {exc}")
                raise RequestError(f"reload rejected, the old config stays in force: {exc}", code=-32000) from None
            changes, ending = self._apply_config(new)
            for job in ending:
                await self.runner.wait(job.id)  # a removed repository's last files land before its deletion
            await self.delete_repos(changes["removed"])
            log.info("config reloaded: %s", changes)
            systemd.notify("READY=1", f"STATUS=config reloaded: {len(self.config.repositories)} repositories")
            return changes

    def _apply_config(self, new: Config) -> tuple[dict[str, list[str]], list[Job]]:
        """Switch to `new`'s repositories; returns what changed and the running syncs being cancelled."""
        old = {r.name: r for r in self.config.repositories}
        now = {r.name: r for r in new.repositories}
        removed = sorted(old.keys() - now.keys())
        added = sorted(now.keys() - old.keys())
        changed = sorted(n for n in old.keys() & now.keys() if old[n] != now[n])
        # The socket, state dir, limits and model are taken when the daemon starts.
        restart = [
            f.name
            for f in attrs.fields(Config)
            if f.name not in ("repositories", "log_level") and getattr(new, f.name) != getattr(self.config, f.name)
        ]
        if restart:
            log.warning("reload: changes to %s take effect when the daemon restarts", ", ".join(restart))
        if new.log_level != self.config.log_level:
            logging.getLogger().setLevel(new.log_level.upper())
        self.config = attrs.evolve(self.config, repositories=new.repositories, log_level=new.log_level)
        ending = []
        for name in removed + changed:
            self._stop_watcher(name)
            ending += self.runner.cancel(repo=name)
            self.repo_states.pop(name, None)
            self.runner.backoff.succeeded(name)  # forget old failures: a new config deserves a fresh try
        for name in added + changed:
            self.repo_states[name] = RepoState()
            self._start_watcher(now[name])
            try:
                self.runner.submit(SyncRequest(name, full=name in changed))
            except Busy as exc:
                log.warning("reload: sync of %s not queued: %s", name, exc)
        changes = {"added": added, "removed": removed, "changed": changed, "restart_needed": restart}
        return changes, [job for job in ending if job.request.repo in removed]

    async def delete_repos(self, names: list[str]) -> None:
        """Delete every document of these repositories, in one commit each."""
        for name in names:
            try:
                await write_one(self.stages.writes, name, lambda tracker: DeleteRepo(tracker, name))
            except StoreError as exc:
                raise StoreError(f"repository {name!r}: its documents could not be deleted: {exc}") from None

    async def forget_unconfigured(self) -> None:
        """At start: delete the documents of repositories removed from the config while the daemon was down."""
        configured = {r.name for r in self.config.repositories}
        if stale := [name for name in self.store.repos() if name not in configured]:
            log.info("deleting the documents of repositories no longer configured: %s", ", ".join(stale))
            await self.delete_repos(stale)

    def handlers(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ("status", "repos", "sync", "search", "jobs", "cancel", "wait", "reload")}
