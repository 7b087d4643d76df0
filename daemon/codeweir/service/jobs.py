"""The trio side of sync jobs: starts what the scheduler says, each job in its own CancelScope.

The scheduler decides (pure state); this module runs jobs under the concurrency limiter,
wakes on submissions through a bounded memory channel, fans progress out to subscribers and
records outcomes and backoff. A job that has to wait reports a `queued` event naming what it
waits behind, again whenever that changes, until its first stage starts.

A failed sync is retried by itself once its repository's backoff ends (10 s, 20 s, ... up to
30 min after consecutive failures): the runner wakes then and queues it again. Only a request
that cannot succeed as asked (RequestError: a repository no longer configured) is not retried,
nor a repository whose syncs were cancelled.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from functools import partial

import attrs
import trio

from codeweir.errors import Busy, CodeweirError, RequestError
from codeweir.service.scheduler import ENDED_STATES, QUEUED, RUNNING, Backoff, Job, Scheduler, SyncRequest
from codeweir.service.scheduler import _covers as covers

log = logging.getLogger(__name__)

RunSync = Callable[[Job, Callable[[dict], None]], Awaitable[dict[str, int]]]


@attrs.define
class _Running:
    job: Job
    scope: trio.CancelScope


def _describe(exc: Exception) -> str:
    if isinstance(exc, CodeweirError):
        return f"{type(exc).__name__}: {exc}"
    # Not one of ours: a bug or an untranslated error; keep the type, it is the best clue.
    return f"unexpected {type(exc).__module__}.{type(exc).__qualname__}: {exc}"


def end_event(job: Job) -> dict:
    """The last event of every job's progress stream."""
    return {"stage": "end", "state": job.state, "counts": dict(job.counts), "error": job.error}


def jobs_ahead(job: Job, jobs: list[Job], slots: int) -> list[Job]:
    """The jobs a queued `job` waits behind, running ones first: with every one of `slots`
    taken, all running jobs and the queued ones before it; with a slot free, only those of
    its own repository (never two syncs of one repository run at once).

    `jobs` is the scheduler's list: queued jobs in run order, then running ones in start order.
    """
    running = [j for j in jobs if j.state == RUNNING]
    queued = [j for j in jobs if j.state == QUEUED]
    ahead = running + queued[: queued.index(job)]
    if len(running) >= slots:
        return ahead
    return [j for j in ahead if j.request.repo == job.request.repo]


def queued_event(job: Job, jobs: list[Job], slots: int, retry_at: float | None, now: float) -> dict | None:
    """What a queued job waits for, as its `queued` progress event; None when it waits for nothing
    (it starts now). `retry_at`: when its repository's backoff ends, if it is backing off."""
    behind = [{"job": j.id, "repo": j.request.repo, "state": j.state} for j in jobs_ahead(job, jobs, slots)]
    if not behind and retry_at is None:
        return None
    event: dict = {"stage": "queued", "behind": behind}
    if retry_at is not None:
        event["retry_in_s"] = round(max(0.0, retry_at - now), 1)
    return event


def _broader(retry: SyncRequest | None, failed: SyncRequest) -> SyncRequest:
    """One retry that does what both failed syncs of a repository asked for, at normal priority."""
    if retry is None:
        return attrs.evolve(failed, priority="normal")
    paths = None if retry.paths is None or failed.paths is None else retry.paths | failed.paths
    return SyncRequest(failed.repo, full=retry.full or failed.full, paths=paths)


class JobRunner:
    """Runs sync jobs: at most `concurrency.total_tokens` at once, never two of one repository."""

    def __init__(
        self,
        scheduler: Scheduler,
        run_sync: RunSync,
        *,
        concurrency: trio.CapacityLimiter,
        backoff: Backoff,
        subscriber_buffer: int = 64,
    ) -> None:
        if subscriber_buffer < 2:
            raise ValueError("subscriber_buffer must be at least 2: one place is kept for the end event")
        self._scheduler = scheduler
        self._run_sync = run_sync
        self._concurrency = concurrency
        self.backoff = backoff
        self._subscriber_buffer = subscriber_buffer
        # Wake-ups for the run loop; one pending wake-up is as good as many.
        self._wake_send, self._wake_receive = trio.open_memory_channel[None](1)
        self._running: dict[str, _Running] = {}
        self._ended: dict[str, trio.Event] = {}
        self._subscribers: dict[str, list[trio.MemorySendChannel[dict]]] = {}
        # The latest event of each stage, replayed to a late subscriber so its bars start in place.
        self._latest: dict[str, dict[str, dict]] = {}
        # repo -> the sync to queue again once its backoff ends (after a failure).
        self._retries: dict[str, SyncRequest] = {}
        self._closed = False

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start jobs as they become ready; runs until cancelled."""
        async with trio.open_nursery() as nursery:
            task_status.started()
            while True:
                now = trio.current_time()
                self._queue_due_retries(now)
                deferred = self.backoff.deferred(now)
                self._start_ready(nursery, now, deferred)
                self._report_waiting(now, deferred)
                # Jobs of a backing-off repository wait in the queue until it may sync again, and
                # so do the retries of failed syncs.
                waiting = [
                    deferred[j.request.repo] for j in self._scheduler.jobs() if j.state == "queued" and j.request.repo in deferred
                ]
                waiting += [deferred[repo] for repo in self._retries if repo in deferred]
                with trio.move_on_at(min(waiting, default=math.inf)):
                    await self._wake_receive.receive()

    def _queue_due_retries(self, now: float) -> None:
        """Queue again the failed syncs whose repository's backoff has ended."""
        for repo, request in list(self._retries.items()):
            if self._closed or not self.backoff.allowed(repo, now):
                continue
            try:
                job = self._scheduler.submit(request, now)
            except Busy:  # the queue is full: tried again when a job ends
                continue
            del self._retries[repo]
            self._ended.setdefault(job.id, trio.Event())
            log.info("sync of %s retried after its backoff: job %s", repo, job.id)

    def retry_in(self, repo: str) -> float | None:
        """Seconds until a failed sync of `repo` is retried by itself (0 while the retry is queued
        or runs); None when none will be."""
        retrying = repo in self._retries or any(
            j.request.repo == repo and j.state in (QUEUED, RUNNING) for j in self._scheduler.jobs()
        )
        state = self.backoff.state(repo)
        if not retrying or state is None:
            return None
        return max(0.0, state["retry_at"] - trio.current_time())

    def _start_ready(self, nursery: trio.Nursery, now: float, deferred: dict[str, float]) -> None:
        while self._concurrency.available_tokens >= 1:
            job = self._scheduler.next_job(now, blocked_repos=deferred)
            if job is None:
                return
            self._concurrency.acquire_on_behalf_of_nowait(job.id)
            self._latest.pop(job.id, None)  # its queued event: a late subscriber sees it run
            running = self._running[job.id] = _Running(job, trio.CancelScope())
            nursery.start_soon(self._run_job, running, name=f"sync {job.id} ({job.request.repo})")

    def _report_waiting(self, now: float, deferred: dict[str, float]) -> None:
        """Every queued job's `queued` event, sent when what it waits behind has changed.

        The run loop wakes on every submission, start, end and cancel, so this sees each change.
        """
        jobs = self._scheduler.jobs()
        for job in jobs:
            if job.state != QUEUED:
                continue
            event = queued_event(job, jobs, int(self._concurrency.total_tokens), deferred.get(job.request.repo), now)
            if event is not None and event != self._latest.get(job.id, {}).get("queued"):
                self._progress(job.id, event)

    async def _run_job(self, running: _Running) -> None:
        job = running.job
        state, counts, error = "cancelled", None, None
        retry = False
        try:
            with running.scope:
                counts = await self._run_sync(job, partial(self._progress, job.id))
                state = "completed"
        except Exception as exc:
            state, error = "failed", _describe(exc)
            retry = not isinstance(exc, RequestError)  # a request that cannot succeed as asked
            log.log(
                logging.WARNING if isinstance(exc, CodeweirError) else logging.ERROR,
                "sync %s of %s failed: %s",
                job.id,
                job.request.repo,
                error,
                exc_info=not isinstance(exc, CodeweirError),
            )
        finally:
            # Also reached when the whole runner is cancelled: the job still ends, cancelled.
            now = trio.current_time()
            self._concurrency.release_on_behalf_of(job.id)
            del self._running[job.id]
            self._scheduler.finish(job.id, state, now, counts=counts, error=error)
            repo = job.request.repo
            if state == "failed":
                self.backoff.failed(repo, error or "failed", now)
                if retry and not self._closed:
                    self._retries[repo] = _broader(self._retries.get(repo), job.request)
            elif state == "completed":
                self.backoff.succeeded(repo)
                if repo in self._retries and covers(job.request, self._retries[repo]):
                    del self._retries[repo]
            self._ended_now(job)

    def _ended_now(self, job: Job) -> None:
        self._latest.pop(job.id, None)
        for channel in self._subscribers.pop(job.id, []):
            self._deliver(channel, end_event(job), last=True)
        self._ended.pop(job.id).set()
        self._wake()

    def _progress(self, job_id: str, event: dict) -> None:
        event = dict(event)
        self._latest.setdefault(job_id, {})[event.get("stage", "")] = event
        for channel in self._subscribers.get(job_id, [])[:]:
            if not self._deliver(channel, event):
                self._subscribers[job_id].remove(channel)

    def _deliver(self, channel: trio.MemorySendChannel[dict], event: dict, *, last: bool = False) -> bool:
        """Send without blocking; a slow subscriber loses intermediate events, never the last
        (one place in its buffer is kept for it). False when the subscriber has gone."""
        try:
            if last or channel.statistics().current_buffer_used < self._subscriber_buffer - 1:
                channel.send_nowait(event)
            if last:
                channel.close()
            return True
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False

    def _wake(self) -> None:
        try:
            self._wake_send.send_nowait(None)
        except trio.WouldBlock:
            pass  # a wake-up is already pending

    def _job(self, job_id: str) -> Job:
        job = self._scheduler.get(job_id)
        if job is None:
            raise RequestError(f"no job {job_id!r}: it never existed or has left the history")
        return job

    def submit(self, request: SyncRequest, *, join_running: bool = False) -> Job:
        """Queue a sync (or return the queued job that covers it). Busy when the queue is full.

        `join_running`: for a caller that waits for the sync (`sync --wait`), a running job of
        the repository that does everything `request` asks for is as good, when none of it is
        queued: it is returned rather than a new job queued behind it.
        """
        if self._closed:
            raise Busy("the daemon is shutting down")
        if join_running and not any(j.state == QUEUED and j.request.repo == request.repo for j in self._scheduler.jobs()):
            for running in self._running.values():
                if covers(running.job.request, request):
                    return running.job
        job = self._scheduler.submit(request, trio.current_time())
        self._ended.setdefault(job.id, trio.Event())
        self._wake()
        return job

    def cancel(self, job_id: str | None = None, repo: str | None = None) -> list[Job]:
        """Cancel one job, or every queued and running job of a repository. Queued jobs end at
        once; running ones end cancelled when their scope has unwound (see `wait`)."""
        if (job_id is None) == (repo is None):
            raise RequestError("cancel: give either a job id or a repository, not both or neither")
        if job_id is not None:
            targets = [self._job(job_id)]
        else:
            targets = [j for j in self._scheduler.jobs() if j.request.repo == repo]
            self._retries.pop(repo or "", None)  # its syncs are not wanted now, retries included
        return [job for job in targets if self._cancel(job)]

    def _cancel(self, job: Job) -> bool:
        if job.state in ENDED_STATES:
            return False
        if job.state == "queued":
            self._scheduler.cancel(job.id, trio.current_time())
            self._ended_now(job)
        else:
            self._running[job.id].scope.cancel()
        return True

    def cancel_all(self) -> None:
        """Shutdown: refuse new jobs, drop the queue, cancel what runs."""
        self._closed = True
        self._retries.clear()
        for job in self._scheduler.jobs():
            self._cancel(job)

    async def wait(self, job_id: str) -> Job:
        """Until the job has ended; returns it."""
        job = self._job(job_id)
        if job.state not in ENDED_STATES:
            await self._ended[job_id].wait()
        return job

    def subscribe(self, job_id: str) -> trio.MemoryReceiveChannel[dict]:
        """The job's progress events in order, ending with its end event; then closed."""
        job = self._job(job_id)
        send, receive = trio.open_memory_channel[dict](self._subscriber_buffer)
        if job.state in ENDED_STATES:
            self._deliver(send, end_event(job), last=True)
            return receive
        for event in self._latest.get(job_id, {}).values():
            self._deliver(send, event)
        self._subscribers.setdefault(job_id, []).append(send)
        return receive

    def jobs(self) -> list[Job]:
        return self._scheduler.jobs()
