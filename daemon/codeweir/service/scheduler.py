"""Sync jobs as pure state: the queue, coalescing, priorities, states, history and backoff.

No I/O and no trio: the caller passes the clock's `now` (float seconds) in, and jobs.py turns
these decisions into tasks.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable
from typing import Any

import attrs

from codeweir.errors import Busy, RequestError

PRIORITIES = ("interactive", "normal")  # run order: interactive first
QUEUED, RUNNING = "queued", "running"
ENDED_STATES = ("completed", "failed", "cancelled")


def _check_repo(instance: SyncRequest, attribute: attrs.Attribute[str], value: str) -> None:
    if not value:
        raise RequestError("sync: repo must not be empty")


def _frozen_paths(paths: Iterable[str] | None) -> frozenset[str] | None:
    return None if paths is None else frozenset(paths)


def _check_paths(instance: SyncRequest, attribute: attrs.Attribute[frozenset[str] | None], value: frozenset[str] | None) -> None:
    if value is not None and not value:
        raise RequestError("sync: paths must not be empty; leave it out to sync the whole repository")


def _check_priority(instance: SyncRequest, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in PRIORITIES:
        raise RequestError(f"sync: priority must be one of {', '.join(PRIORITIES)}, got {value!r}")


@attrs.frozen
class SyncRequest:
    """What to sync: a whole repository (`paths` None) or just some paths of it.

    `full` re-reads files whatever their blob id. `paths` may name directories: a moved
    directory shows up as one change.
    """

    repo: str = attrs.field(validator=_check_repo)
    full: bool = False
    paths: frozenset[str] | None = attrs.field(default=None, converter=_frozen_paths, validator=_check_paths)
    priority: str = attrs.field(default="normal", validator=_check_priority)


@attrs.define
class Job:
    id: str
    request: SyncRequest
    state: str
    created: float
    started: float | None = None
    ended: float | None = None
    counts: dict[str, int] = attrs.Factory(dict)
    error: str | None = None


def _covers(queued: SyncRequest, new: SyncRequest) -> bool:
    """Whether running `queued` does everything `new` asks for."""
    if queued.repo != new.repo or (new.full and not queued.full):
        return False
    return queued.paths is None or (new.paths is not None and new.paths <= queued.paths)


def _merge(queued: SyncRequest, new: SyncRequest) -> SyncRequest:
    """Two paths-requests of one repository as one."""
    assert queued.paths is not None and new.paths is not None
    return attrs.evolve(
        queued,
        full=queued.full or new.full,
        paths=queued.paths | new.paths,
        priority=_higher(queued.priority, new.priority),
    )


def _higher(a: str, b: str) -> str:
    return min(a, b, key=PRIORITIES.index)


class Scheduler:
    """Queued, running and recent sync jobs. Never two jobs of one repository run at once."""

    def __init__(self, *, queue_size: int, history: int = 100) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size}")
        self._queue_size = queue_size
        self._ids = itertools.count(1)
        # Insertion order is submission order: FIFO within a priority.
        self._queued: dict[str, Job] = {}
        self._running: dict[str, Job] = {}
        self._recent: deque[Job] = deque(maxlen=history)

    def submit(self, request: SyncRequest, now: float) -> Job:
        """Queue `request`, or return the queued job that already does it. Busy when the queue is full."""
        for job in self._queued.values():
            if _covers(job.request, request):
                # An interactive request never waits longer because a normal job covers it.
                job.request = attrs.evolve(job.request, priority=_higher(job.request.priority, request.priority))
                return job
        for job in self._queued.values():
            if job.request.repo == request.repo and job.request.paths is not None and request.paths is not None:
                job.request = _merge(job.request, request)
                return job
        if len(self._queued) >= self._queue_size:
            raise Busy(f"the sync queue is full ({self._queue_size} jobs queued); try again when some have run")
        job = Job(id=f"j{next(self._ids)}", request=request, state=QUEUED, created=now)
        self._queued[job.id] = job
        return job

    def next_job(self, now: float, blocked_repos: Iterable[str] = ()) -> Job | None:
        """Start the next job: interactive first, FIFO within a priority.

        Jobs of a repository that is running, or in `blocked_repos` (backing off), wait.
        """
        unavailable = set(blocked_repos) | {job.request.repo for job in self._running.values()}
        ready = [job for job in self._queued.values() if job.request.repo not in unavailable]
        if not ready:
            return None
        job = min(ready, key=lambda j: PRIORITIES.index(j.request.priority))  # min is stable: FIFO
        del self._queued[job.id]
        job.state, job.started = RUNNING, now
        self._running[job.id] = job
        return job

    def finish(
        self, job_id: str, state: str, now: float, *, counts: dict[str, int] | None = None, error: str | None = None
    ) -> Job:
        """Record how a running job ended."""
        if state not in ENDED_STATES:
            raise ValueError(f"a job ends {', '.join(ENDED_STATES)}, not {state!r}")
        job = self._running.pop(job_id)
        job.state, job.ended, job.error = state, now, error
        if counts is not None:
            job.counts = dict(counts)
        self._recent.append(job)
        return job

    def cancel(self, job_id: str, now: float) -> Job | None:
        """A queued job is removed and ends cancelled; a running one is returned for the caller to
        cancel (and `finish` later). None when the job is not queued or running."""
        if job_id in self._queued:
            job = self._queued.pop(job_id)
            job.state, job.ended = "cancelled", now
            self._recent.append(job)
            return job
        return self._running.get(job_id)

    def get(self, job_id: str) -> Job | None:
        for jobs in (self._queued, self._running):
            if job_id in jobs:
                return jobs[job_id]
        return next((job for job in self._recent if job.id == job_id), None)

    def jobs(self) -> list[Job]:
        """Queued jobs in the order they will run, then running ones, then recent ones, newest first."""
        queued = sorted(self._queued.values(), key=lambda j: PRIORITIES.index(j.request.priority))
        return [*queued, *self._running.values(), *reversed(self._recent)]


@attrs.define
class _Failures:
    count: int
    reason: str
    retry_at: float


class Backoff:
    """Per-repository exponential backoff after failed syncs: base, 2×base, 4×base ... up to cap."""

    def __init__(self, *, base: float = 10.0, cap: float = 1800.0) -> None:
        if not 0 < base <= cap:
            raise ValueError(f"backoff needs 0 < base <= cap, got base={base}, cap={cap}")
        self._base, self._cap = base, cap
        self._failures: dict[str, _Failures] = {}

    def failed(self, repo: str, reason: str, now: float) -> float:
        """Record a failure; returns the time from which the repository may sync again."""
        count = self._failures[repo].count + 1 if repo in self._failures else 1
        # The exponent is bounded so that a long outage overflows to inf (then cap), never raises.
        delay = min(self._cap, self._base * 2.0 ** min(count - 1, 1000))
        self._failures[repo] = _Failures(count, reason, now + delay)
        return now + delay

    def succeeded(self, repo: str) -> None:
        self._failures.pop(repo, None)

    def allowed(self, repo: str, now: float) -> bool:
        failures = self._failures.get(repo)
        return failures is None or now >= failures.retry_at

    def deferred(self, now: float) -> dict[str, float]:
        """Repositories that may not sync yet, with the time each may."""
        return {repo: f.retry_at for repo, f in self._failures.items() if now < f.retry_at}

    def state(self, repo: str) -> dict[str, Any] | None:
        """For status: consecutive failures, the last reason, when it may sync again; None if healthy."""
        failures = self._failures.get(repo)
        if failures is None:
            return None
        return {"failures": failures.count, "reason": failures.reason, "retry_at": failures.retry_at}
