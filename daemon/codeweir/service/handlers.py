"""The control API's methods: what each request does to the daemon's state.

`Daemon` answers the requests (status, repos, sync, search, jobs, cancel, wait, reload; read and
refs, with search's paging and context, in reading.py) over
the daemon's shared state (state.py), and holds the parts that change that state besides the
syncs (syncs.py, which run_daemon() hands the job runner): the rebuild's bookkeeping
(rebuild.py), the watchers (watchers.py) and reload (reload.py). The server structures each
request's params into its protocol class before it calls a handler, so a handler gets a
checked `SyncParams`, `WaitParams`... never a dict.
"""

from __future__ import annotations

import math
import os
import time
from collections import Counter
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from codeweir.config import Config
from codeweir.errors import RequestError
from codeweir.index.membership import MAIN
from codeweir.index.schema import VERSIONS
from codeweir.protocol_params import CancelParams, NoParams, ReadParams, RefsParams, SearchParams, SyncParams, WaitParams
from codeweir.protocol_results import SearchResult
from codeweir.search.planner import SearchRequests
from codeweir.search.query import parse_query
from codeweir.search.references import find_references
from codeweir.service import systemd
from codeweir.service.jobs import JobRunner
from codeweir.service.reading import Reading
from codeweir.service.rebuild import Rebuild
from codeweir.service.reload import Reloader
from codeweir.service.scheduler import Job, SyncRequest
from codeweir.service.server import Handler, Notify
from codeweir.service.state import DaemonState, RepoState, Stages
from codeweir.service.watchers import Watchers

if TYPE_CHECKING:
    from codeweir.embed.backlog import EmbeddingService
    from codeweir.index.store import Store

STATUS_FILE_ERRORS = 5  # files per repository whose error status shows


class Daemon:
    """The running daemon as requests see it; run_daemon() makes one and calls its entry points."""

    def __init__(
        self,
        config: Config,
        config_path: Path | None,
        store: Store,
        stages: Stages,
        runner: JobRunner,
        *,
        stop: Callable[[], None],
        embedding: EmbeddingService,
        started_in: Path | None = None,
    ) -> None:
        self._stop = stop
        self.state = DaemonState(config, store, stages, runner)
        self.store = store
        self.stages = stages
        self.runner = runner
        self.embedding = embedding
        self.searches = SearchRequests(store, embedding, stages.search_limiter, self.state.repo, stages.search_workers)
        self.reading = Reading(self.state, store, self.searches, stages.search_limiter, find_references)
        self.rebuild = Rebuild(store, stages.writes)
        self.watchers = Watchers(self.state)
        self.reloader = Reloader(
            self.state,
            self.watchers,
            config_path,
            started_in=started_in,
            model_installed=lambda: self.embedding.model_installed(),
        )
        self.started = time.time()
        # Scheduler times are trio's clock; this turns them into wall-clock times for people.
        self._wall_offset = time.time() - trio.current_time()

    @property
    def config(self) -> Config:
        """The config in force (a reload replaces it)."""
        return self.state.config

    # -- run_daemon()'s entry points -----------------------------------------------------------

    def start(self, services: trio.Nursery) -> None:
        """The daemon serves: watch every configured repository. Watchers, and reloads on SIGHUP,
        run in `services` from now on."""
        self.state.services = services
        self.watchers.start_all()

    def submit_all(self, *, full: bool = False) -> list[Job]:
        return [self.runner.submit(SyncRequest(r.name, full=full)) for r in self.config.repositories]

    def reload_soon(self) -> None:
        self.reloader.reload_soon()

    def shutdown(self) -> None:
        """Stop accepting and cancel syncs; run_daemon() then drains and commits."""
        systemd.notify("STOPPING=1")
        self.runner.cancel_all()
        self.embedding.stop()  # after the call into the model in flight, not after the backlog
        self._stop()

    def handlers(self) -> dict[str, Handler]:
        """The server's methods: each takes its params class of protocol_params.PARAMS and a notify."""
        return {
            name: self._telling_damage(getattr(self, name))
            for name in ("status", "repos", "sync", "search", "jobs", "cancel", "wait", "reload", "read", "refs")
        }

    def _telling_damage(self, handler: Handler) -> Handler:
        """`handler`, answering a read that found the index damaged with why (the index is then
        rebuilt in the background) rather than with an internal error."""

        async def handle(params: Any, notify: Notify) -> Any:
            try:
                return await handler(params, notify)
            except BaseException as exc:  # Tantivy's panics are BaseExceptions
                if (damage := self.store.damage_error(exc, "reading the index")) is None:
                    raise
                raise damage from None

        return handle

    # -- the methods ----------------------------------------------------------------------------

    async def status(self, params: NoParams, notify: Notify) -> dict[str, Any]:
        limiter = self.stages.search_limiter
        repos = []
        for repo in self.config.repositories:
            state = self.state.repo_state(repo.name)
            statuses = await trio.to_thread.run_sync(self.store.file_status, repo.name, limiter=limiter)
            chunks = await trio.to_thread.run_sync(self.store.count, ("doc_kind", "chunk"), ("repo", repo.name), limiter=limiter)
            # Counted as commits and vectors land (embed/coverage.py), so a status costs nothing more.
            covered = self.embedding.repo_coverage(repo.name) if self.embedding.vectors is not None else None
            file_errors = await trio.to_thread.run_sync(self.store.file_errors, repo.name, STATUS_FILE_ERRORS, limiter=limiter)
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
                    # Chunks whose text has a vector of the configured model, and the distinct
                    # texts (identical chunks share one vector): null while the model is not loaded.
                    "chunks_embedded": min(covered.chunks_embedded, chunks) if covered else 0,
                    "texts": covered.texts if covered else None,
                    "texts_embedded": covered.texts_embedded if covered else None,
                    "file_errors": file_errors,  # a few files that could not be read or chunked, and why
                    "head": state.head,
                    # Each ref `refs` names, as its last sync saw it; patterns naming no ref.
                    "refs": await self._refs_status(repo.name, state),
                    "refs_unmatched": list(state.unmatched),
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
                "rebuilt_repos": sorted(self.rebuild.synced),
                # Why the index was found damaged, until it holds every repository again.
                "damage": self.store.damage,
            },
            "queue": {
                "queued": sum(j.state == "queued" for j in jobs),
                "running": sum(j.state == "running" for j in jobs),
            },
        }

    async def repos(self, params: NoParams, notify: Notify) -> dict[str, Any]:
        return {
            "repos": [
                {
                    "name": r.name,
                    "path": r.path,
                    "ref": r.ref or None,
                    "include": list(r.include),
                    "exclude": list(r.exclude),
                    "error": self.state.repo_state(r.name).error,
                }
                for r in self.config.repositories
            ]
        }

    async def sync(self, params: SyncParams, notify: Notify) -> dict[str, Any]:
        # SyncParams holds either a repo or all=true, and paths only with a repo.
        self._check_repo(params.repo)
        names = [params.repo] if params.repo else [r.name for r in self.config.repositories]
        # A sync waited for follows its repository's running sync when that one does it all.
        jobs = [
            self.runner.submit(
                SyncRequest(name, full=params.full, paths=params.paths, priority=params.priority), join_running=params.wait
            )
            for name in names
        ]
        if params.wait:
            async with trio.open_nursery() as nursery:
                for job in jobs:
                    nursery.start_soon(self._follow, job, notify)
            jobs = [self._latest(job) for job in jobs]
        return {"jobs": [self.job_view(j) for j in jobs]}

    async def search(self, params: SearchParams, notify: Notify) -> SearchResult:
        self._check_repo(params.repo)
        query = parse_query(params.query, regex=params.mode == "regex")
        self._check_repo(query.repo)
        return await self.reading.search(query, params)  # pages by cursor, adds context lines

    async def jobs(self, params: NoParams, notify: Notify) -> dict[str, Any]:
        return {"jobs": [self.job_view(j) for j in self.runner.jobs()]}

    async def cancel(self, params: CancelParams, notify: Notify) -> dict[str, Any]:
        # CancelParams holds a job, a repo or both.
        self._check_repo(params.repo)
        cancelled = self.runner.cancel(job_id=params.job, repo=params.repo)
        if params.job is not None and not cancelled:
            raise RequestError(f"job: no queued or running job {params.job!r}")
        return {"cancelled": [self.job_view(j) for j in cancelled]}

    async def wait(self, params: WaitParams, notify: Notify) -> dict[str, Any]:
        """Until no sync of the repository (or any) is queued or running: the lexical index is
        complete; with `vectors`, also until every chunk and commit message has a vector."""
        self._check_repo(params.repo)
        names = {params.repo} if params.repo else self.state.configured()
        waited_for = ["index", "vectors"] if params.vectors else ["index"]

        def pending() -> list[Job]:
            return [j for j in self.runner.jobs() if j.request.repo in names and j.state in ("queued", "running")]

        with trio.move_on_after(params.timeout if params.timeout is not None else math.inf):
            while True:
                while jobs := pending():
                    for job in jobs:
                        await self.runner.wait(job.id)
                if not params.vectors:
                    return {"done": True, "waited_for": waited_for}
                await self.embedding.wait_idle()
                if not pending():  # else a sync started meanwhile: its chunks too
                    break
            return self._vectors_waited(sorted(names), waited_for)
        answer: dict[str, Any] = {"done": False, "waited_for": waited_for, "pending": [self.job_view(j) for j in pending()]}
        if params.vectors:
            answer["vectors"] = self._vectors_view(sorted(names))
        return answer

    def _vectors_waited(self, names: list[str], waited_for: list[str]) -> dict[str, Any]:
        answer: dict[str, Any] = {"done": True, "waited_for": waited_for, "vectors": self._vectors_view(names)}
        if self.embedding.state in ("disabled", "failed", "missing"):  # the wait ended: they never will
            answer.update(done=False, error=self.embedding.unavailable_reason())
        return answer

    def _vectors_view(self, names: list[str]) -> dict[str, int]:
        covered = self.embedding.coverage.total(names)
        return {"chunks": covered.chunks, "chunks_embedded": covered.chunks_embedded}

    async def reload(self, params: NoParams, notify: Notify) -> dict[str, Any]:
        return await self.reloader.reload()

    async def read(self, params: ReadParams, notify: Notify) -> dict[str, Any]:
        return await self.reading.read(params)

    async def refs(self, params: RefsParams, notify: Notify) -> dict[str, Any]:
        return await self.reading.refs(params)

    # -- helpers of the methods -----------------------------------------------------------------

    def _check_repo(self, name: str | None) -> None:
        if name is not None and self.config.repo(name) is None:
            known = ", ".join(r.name for r in self.config.repositories) or "none"
            raise RequestError(f"repo: no repository named {name!r} (configured: {known})")

    def _latest(self, job: Job) -> Job:
        return next((j for j in self.runner.jobs() if j.id == job.id), job)

    async def _follow(self, job: Job, notify: Notify) -> None:
        async with self.runner.subscribe(job.id) as events:
            async for event in events:
                await notify("progress", {"job": job.id, "repo": job.request.repo, **event})
        await self.runner.wait(job.id)

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

    async def _refs_status(self, repo: str, state: RepoState) -> list[dict[str, Any]]:
        refs = []
        for view in self.store.membership.views(repo):
            if view == MAIN:
                continue
            hashes = await trio.to_thread.run_sync(self.store.view_chunk_hashes, repo, view, limiter=self.stages.search_limiter)
            vectors = self.embedding.vectors
            refs.append(
                {
                    "name": view,
                    "commit": state.views.get(view),
                    "files": len(self.store.file_blobs(repo, view)),
                    # Counted from the chunks' hashes once the embed backlog has read them; null before.
                    "chunks": None if hashes is None else len(hashes),
                    "chunks_embedded": None if hashes is None or vectors is None else sum(h in vectors for h in hashes),
                }
            )
        return refs

    def _backoff_view(self, name: str) -> dict[str, Any] | None:
        """Why a repository keeps failing and when it is tried again (wall clock); None if healthy.
        `retry_in_s` is 0 while the retry is queued or runs, None when nothing will retry it."""
        state = self.runner.backoff.state(name)
        if state is None:
            return None
        retry_in = self.runner.retry_in(name)
        return {
            **state,
            "retry_at": self._wall(state["retry_at"]),
            "retry_in_s": None if retry_in is None else round(retry_in, 1),
        }
