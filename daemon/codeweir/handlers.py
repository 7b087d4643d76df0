"""The control API's methods: what each request does to the daemon's state.

`Daemon` holds the running state that requests read and change (config, store, job
runner, per-repository sync results). The server decodes requests and calls these.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from typing import Any

import attrs
import trio

from . import __version__, pipeline, systemd
from .config import Config, load_config
from .errors import ConfigError, RequestError
from .jobs import JobRunner
from .scheduler import Job, SyncRequest
from .search import Filters, search_lexical, search_symbols
from .store import Store

log = logging.getLogger(__name__)


@attrs.define
class RepoState:
    """What the last finished sync of a repository found."""

    total: int | None = None
    skipped: dict[str, int] = attrs.Factory(dict)
    head: str = ""
    synced_at: float | None = None
    error: str | None = None


@attrs.define(eq=False)
class Stages:
    """The shared pipeline's channels and limiters, made by run_daemon()."""

    files: trio.MemorySendChannel
    writes: trio.MemorySendChannel
    git_limiter: trio.CapacityLimiter
    search_limiter: trio.CapacityLimiter


class Daemon:
    def __init__(
        self, config: Config, config_path, store: Store, stages: Stages, runner: JobRunner, *, stop: Callable[[], None]
    ) -> None:
        self._stop = stop
        self.config = config
        self.config_path = config_path
        self.store = store
        self.stages = stages
        self.runner = runner
        self.repo_states: dict[str, RepoState] = {r.name: RepoState() for r in config.repositories}
        self.started = time.time()
        # Scheduler times are trio's clock; this turns them into wall-clock times for people.
        self._wall_offset = time.time() - trio.current_time()
        self._reloaded = trio.Event()

    def shutdown(self) -> None:
        """Stop accepting and cancel syncs; run_daemon() then drains and commits."""
        systemd.notify("STOPPING=1")
        self.runner.cancel_all()
        self._stop()

    # -- syncs --------------------------------------------------------------------------------

    async def run_job(self, job: Job, report: pipeline.Report) -> dict[str, int]:
        """The job runner's callback: one sync of one repository."""
        repo = self.config.repo(job.request.repo)
        if repo is None:
            raise RequestError(f"repository {job.request.repo!r} is not configured")
        state = self.repo_states.setdefault(repo.name, RepoState())
        try:
            result = await pipeline.sync_repository(
                repo,
                store=self.store,
                files=self.stages.files,
                writes=self.stages.writes,
                git_limiter=self.stages.git_limiter,
                max_bytes=self.config.limits.max_file_bytes,
                report=report,
                full=job.request.full,
                paths=job.request.paths,
            )
        except Exception as exc:
            state.error = str(exc)
            raise
        if job.request.paths is None:
            state.total = result.total
            state.skipped = result.skipped
        state.head = result.head
        state.synced_at = time.time()
        state.error = None
        return {
            "files": result.total,
            "indexed": result.indexed,
            "deleted": result.deleted,
            "unchanged": result.unchanged,
            **{f"status_{k}": v for k, v in result.statuses.items()},
        }

    def submit_all(self, *, full: bool = False) -> list[Job]:
        return [self.runner.submit(SyncRequest(r.name, full=full)) for r in self.config.repositories]

    def job_view(self, job: Job) -> dict[str, Any]:
        def wall(t: float | None) -> float | None:
            return None if t is None else round(t + self._wall_offset, 3)

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
            statuses = await trio.to_thread.run_sync(
                self.store.file_status, repo.name, limiter=self.stages.search_limiter
            )
            chunks = await trio.to_thread.run_sync(
                self.store.count, ("doc_kind", "chunk"), ("repo", repo.name), limiter=self.stages.search_limiter
            )
            repos.append(
                {
                    "name": repo.name,
                    "path": repo.path,
                    "files_indexed": statuses.get("indexed", 0),
                    "files_seen": sum(statuses.values()),
                    "files_total": state.total,
                    "files_skipped": {**state.skipped, **{k: v for k, v in statuses.items() if k != "indexed"}},
                    "chunks": chunks,
                    "head": state.head,
                    "synced_at": state.synced_at,
                    "error": state.error,
                }
            )
        jobs = self.runner.jobs()
        return {
            "daemon": {
                "version": __version__,
                "pid": os.getpid(),
                "uptime_s": round(time.time() - self.started, 1),
                "state_dir": self.config.state_dir,
                "socket": self.config.socket,
            },
            "repos": repos,
            "queue": {
                "queued": sum(j.state == "queued" for j in jobs),
                "running": sum(j.state == "running" for j in jobs),
            },
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
        jobs = [
            self.runner.submit(SyncRequest(name, full=params.full, paths=paths, priority=params.priority))
            for name in names
        ]
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
        filters = Filters(repo=params.repo, path=params.path, lang=params.lang, kind=params.kind)
        notes: list[str] = []
        query, mode = params.query, params.mode
        if query.startswith("sym:"):
            query, mode = query.removeprefix("sym:"), "symbol"
        if mode in ("hybrid", "semantic"):
            notes.append(f"{mode} search is not available yet; showing lexical results")
            mode = "lexical"
        searches = {"lexical": search_lexical, "symbol": search_symbols}
        if mode not in searches:
            raise RequestError(f"mode: {mode!r} is not supported yet (use lexical or symbol)")
        started = trio.current_time()
        hits = await trio.to_thread.run_sync(
            searches[mode], self.store, query, filters, params.limit, limiter=self.stages.search_limiter
        )
        return {
            "results": [attrs.asdict(h, filter=lambda a, _: a.name != "content_hash") for h in hits],
            "took_ms": round((trio.current_time() - started) * 1000, 2),
            "mode": mode,
            "notes": notes,
        }

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
            return [
                j for j in self.runner.jobs() if j.request.repo in names and j.state in ("queued", "running")
            ]

        with trio.move_on_after(params.timeout if params.timeout is not None else math.inf):
            while jobs := pending():
                for job in jobs:
                    await self.runner.wait(job.id)
            return {"done": True}
        return {"done": False, "pending": [self.job_view(j) for j in pending()]}

    async def reload(self, params, notify) -> dict[str, Any]:
        return await self.reload_config()

    async def reload_config(self) -> dict[str, Any]:
        """Re-read the config; a broken one is rejected and the old one stays in force."""
        try:
            new = await trio.to_thread.run_sync(load_config, self.config_path)
        except ConfigError as exc:
            log.error("reload rejected: %s", exc)
            raise RequestError(f"reload rejected, the old config stays in force: {exc}", code=-32000) from None
        old = {r.name: r for r in self.config.repositories}
        now = {r.name: r for r in new.repositories}
        removed = sorted(set(old) - set(now))
        changed = sorted(n for n in now if n in old and now[n] != old[n])
        added = sorted(set(now) - set(old))
        self.config = new
        for name in removed:
            self.runner.cancel(repo=name)
            self.repo_states.pop(name, None)
            tracker = pipeline.SyncTracker(name, 1, report=lambda event: None)
            await self.stages.writes.send(pipeline.DeleteRepo(tracker, name))
            await tracker.done.wait()
        for name in added + changed:
            self.repo_states.setdefault(name, RepoState())
            self.runner.submit(SyncRequest(name, full=name in changed))
        log.info("config reloaded: added %s, removed %s, changed %s", added, removed, changed)
        return {"added": added, "removed": removed, "changed": changed}

    def handlers(self) -> dict[str, Any]:
        return {
            name: getattr(self, name)
            for name in ("status", "repos", "sync", "search", "jobs", "cancel", "wait", "reload")
        }
