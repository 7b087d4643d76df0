"""The job runner's callback: one sync of one repository through the shared pipeline, and what it
leaves behind: the repository's state, systemd's STATUS= line and the rebuild's progress."""

from __future__ import annotations

import math
import time

import attrs
import trio

from codeweir.errors import RequestError
from codeweir.index.writes import Report
from codeweir.ingest import pipeline
from codeweir.service import systemd
from codeweir.service.rebuild import Rebuild
from codeweir.service.scheduler import Job
from codeweir.service.state import DaemonState, RepoState


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

        def report_progress(event: dict) -> None:
            report(event)
            if event.get("stage") == "index" and throttle.due(trio.current_time()):
                systemd.notify(f"STATUS=syncing {repo.name}: {event['done']}/{event['total']} files")

        outcome = "cancelled"
        try:
            result = await pipeline.sync_repository(
                repo,
                store=state.store,
                files=state.stages.files,
                writes=state.stages.writes,
                git_limiter=state.stages.git_limiter,
                max_bytes=state.config.limits.max_file_bytes,
                report=report_progress,
                full=job.request.full,
                paths=job.request.paths,
            )
            outcome = f"completed: {result.indexed} indexed, {result.deleted} deleted, {result.unchanged} unchanged"
        except Exception as exc:
            repo_state.error = str(exc)
            outcome = f"failed: {exc}"
            raise
        finally:
            self._status_after(job, f"{repo.name} {outcome}")
        if job.request.paths is None:
            repo_state.total = result.total
            repo_state.skipped = result.skipped
            await self.rebuild.note_synced(repo.name, state.configured())
        repo_state.head = result.head
        repo_state.synced_at = time.time()
        repo_state.error = None
        return {
            "files": result.total,
            "indexed": result.indexed,
            "deleted": result.deleted,
            "unchanged": result.unchanged,
            "commits": result.commits,
            **{f"status_{k}": v for k, v in result.statuses.items()},
        }

    def _status_after(self, job: Job, summary: str) -> None:
        others = any(j.state == "running" and j.id != job.id for j in self.state.runner.jobs())
        systemd.notify(f"STATUS={'syncing' if others else 'idle'}; last sync: {summary}")
