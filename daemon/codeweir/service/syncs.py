"""The job runner's callback: one sync of one repository through the shared pipeline, and what it
leaves behind: the repository's state, systemd's STATUS= line, the rebuild's progress and the
log: a line when a sync starts, one now and then while it indexes, and one when it ends."""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING

import attrs
import trio

from codeweir.errors import RequestError
from codeweir.index.writes import IndexGivenUp, Report
from codeweir.ingest import pipeline
from codeweir.service import systemd
from codeweir.service.scheduler import Job
from codeweir.service.state import DaemonState, RepoState

if TYPE_CHECKING:
    from codeweir.service.rebuild import Rebuild

log = logging.getLogger(__name__)


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


@attrs.define
class ProgressLog:
    """Lets a progress line into the log every `interval` seconds, or when another tenth of the
    files is done (but not more than once a second: a small sync logs only its start and end)."""

    interval: float = 10.0
    _last: float = attrs.field(factory=time.monotonic)
    _tenth: int = 0

    def due(self, now: float, done: int, total: int | None) -> bool:
        tenth = done * 10 // total if total else 0
        if now - self._last >= self.interval or (tenth > self._tenth and now - self._last >= 1.0):
            self._last, self._tenth = now, tenth
            return True
        return False


def _what(job: Job) -> str:
    request = job.request
    if request.full:
        what = "full resync"
    elif request.paths is not None:
        what = f"{len(request.paths)} path{'s' * (len(request.paths) != 1)}"
    else:
        what = "changes"
    return f"{what}, interactive" if request.priority == "interactive" else what


class Syncs:
    def __init__(self, state: DaemonState, rebuild: Rebuild) -> None:
        self.state = state
        self.rebuild = rebuild

    async def run(self, job: Job, report: Report) -> dict[str, int]:
        """One sync of one repository; its counts become the job's."""
        state = self.state
        repo = state.repo(job.request.repo)
        if repo is None:
            raise RequestError(f"repository {job.request.repo!r} is not configured")
        repo_state = state.repo_states.setdefault(repo.name, RepoState())
        throttle = StatusThrottle()
        progress = ProgressLog()
        ended = False  # a cancelled sync's last files may still be committed: not logged as progress
        started = time.monotonic()
        log.info("sync of %s started (job %s, %s)", repo.name, job.id, _what(job))

        def report_progress(event: dict) -> None:
            report(event)
            if event.get("stage") == "index" and throttle.due(trio.current_time()):
                systemd.notify(f"STATUS=syncing {repo.name}: {event['done']}/{event['total']} files")
            if event.get("stage") == "index" and not ended and progress.due(time.monotonic(), event["done"], event["total"]):
                total = event["total"]
                share = f" ({event['done'] * 100 // total}%)" if total else ""
                log.info("sync of %s: %s of %s files indexed%s", repo.name, f"{event['done']:,}", f"{total:,}", share)

        outcome = "cancelled"
        try:
            for attempt in range(3):
                generation = state.store.generation  # a rebuild after damage voids what this sync plans
                try:
                    result = await pipeline.sync_repository(
                        repo,
                        store=state.store,
                        files=state.stages.files,
                        writes=state.stages.writes,
                        git_limiter=state.stages.git_limiter,
                        max_bytes=state.config.limits.max_file_bytes,
                        draft_min_files=state.config.limits.draft_min_files,
                        report=report_progress,
                        full=job.request.full,
                        paths=job.request.paths,
                        interactive=job.request.priority == "interactive",
                    )
                    break
                except IndexGivenUp as exc:  # the index was found damaged meanwhile: plan against the new one
                    if attempt == 2:
                        raise
                    log.info("sync of %s (job %s) starts over: %s", repo.name, job.id, exc)
            outcome = f"completed: {result.indexed} indexed, {result.deleted} deleted, {result.unchanged} unchanged"
            if result.shared:
                outcome += f", {result.shared} shared with another view"
            if result.commits:
                outcome += f", {result.commits} commits"
        except Exception as exc:
            repo_state.error = str(exc)
            outcome = f"failed: {exc}"
            raise
        finally:
            ended = True
            self._status_after(job, f"{repo.name} {outcome}")
            if not outcome.startswith("failed"):  # the job runner logs failures, with their reason
                log.info("sync of %s (job %s) %s in %.1f s", repo.name, job.id, outcome, time.monotonic() - started)
        if job.request.paths is None:
            repo_state.total = result.total
            repo_state.skipped = result.skipped
            repo_state.views, repo_state.unmatched = result.views, result.unmatched
            await self.rebuild.note_synced(repo.name, state.configured(), generation)
        repo_state.head = result.head
        repo_state.synced_at = time.time()
        repo_state.error = None
        return {
            "files": result.total,
            "indexed": result.indexed,
            "deleted": result.deleted,
            "unchanged": result.unchanged,
            "shared": result.shared,
            "commits": result.commits,
            **{f"status_{k}": v for k, v in result.statuses.items()},
        }

    def _status_after(self, job: Job, summary: str) -> None:
        others = any(j.state == "running" and j.id != job.id for j in self.state.runner.jobs())
        systemd.notify(f"STATUS={'syncing' if others else 'idle'}; last sync: {summary}")
