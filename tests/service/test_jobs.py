from contextlib import asynccontextmanager

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st
from trio.testing import wait_all_tasks_blocked

from codeweir.errors import Busy, RepoError, RequestError
from codeweir.service.jobs import JobRunner, jobs_ahead, queued_event
from codeweir.service.scheduler import Backoff, Job, Scheduler, SyncRequest


class Syncs:
    """A run_sync whose jobs run until the test opens their repository's gate."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.cancelled: list[str] = []
        self.gates: dict[str, trio.Event] = {}
        self.failures: dict[str, Exception] = {}
        self.progress: dict[str, list[dict]] = {}

    def gate(self, repo: str) -> trio.Event:
        return self.gates.setdefault(repo, trio.Event())

    async def __call__(self, job, report) -> dict[str, int]:
        repo = job.request.repo
        self.started.append(repo)
        for event in self.progress.get(repo, []):
            report(event)
            await trio.lowlevel.checkpoint()
        try:
            await self.gate(repo).wait()
        except trio.Cancelled:
            self.cancelled.append(repo)
            raise
        if repo in self.failures:
            raise self.failures[repo]
        return {"files": len(self.started)}


@asynccontextmanager
async def running(syncs: Syncs, *, concurrency: int = 1, queue_size: int = 10, backoff: Backoff | None = None, **kwargs):
    runner = JobRunner(
        Scheduler(queue_size=queue_size),
        syncs,
        concurrency=trio.CapacityLimiter(concurrency),
        backoff=backoff or Backoff(base=10, cap=100),
        **kwargs,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(runner.run)
        yield runner
        nursery.cancel_scope.cancel()


async def test_jobs_run_interactive_first_then_fifo_one_at_a_time():
    syncs = Syncs()
    async with running(syncs) as runner:
        first = runner.submit(SyncRequest("a"))
        await wait_all_tasks_blocked()
        jobs = [
            runner.submit(SyncRequest(r, priority=p))
            for r, p in [("b", "normal"), ("c", "normal"), ("d", "interactive"), ("e", "interactive")]
        ]
        await wait_all_tasks_blocked()
        assert syncs.started == ["a"]
        for repo in "abcde":
            syncs.gate(repo).set()
        for job in [first, *jobs]:
            assert (await runner.wait(job.id)).state == "completed"
    assert syncs.started == ["a", "d", "e", "b", "c"]


async def test_at_most_concurrency_jobs_run_at_once():
    syncs = Syncs()
    async with running(syncs, concurrency=2) as runner:
        jobs = [runner.submit(SyncRequest(r)) for r in "abcd"]
        await wait_all_tasks_blocked()
        assert sorted(syncs.started) == ["a", "b"]  # trio starts tasks in any order
        syncs.gate("b").set()
        await runner.wait(jobs[1].id)
        await wait_all_tasks_blocked()
        assert sorted(syncs.started) == ["a", "b", "c"]
        assert [j.state for j in jobs] == ["running", "completed", "running", "queued"]


async def test_a_second_job_of_a_running_repo_waits_for_the_first():
    syncs = Syncs()
    async with running(syncs, concurrency=4) as runner:
        first = runner.submit(SyncRequest("a"))
        await wait_all_tasks_blocked()
        second = runner.submit(SyncRequest("a", full=True))
        await wait_all_tasks_blocked()
        assert second.state == "queued"
        syncs.gate("a").set()
        await runner.wait(second.id)
        assert first.ended <= second.started


async def test_cancelling_a_queued_job_removes_it_from_the_queue():
    syncs = Syncs()
    async with running(syncs) as runner:
        first = runner.submit(SyncRequest("a"))
        queued = runner.submit(SyncRequest("b"))
        assert runner.cancel(job_id=queued.id) == [queued]
        assert (await runner.wait(queued.id)).state == "cancelled"
        syncs.gate("a").set()
        await runner.wait(first.id)
        await wait_all_tasks_blocked()
    assert syncs.started == ["a"]


async def test_cancelling_a_running_job_cancels_its_scope():
    syncs = Syncs()
    async with running(syncs) as runner:
        job = runner.submit(SyncRequest("a"))
        await wait_all_tasks_blocked()
        assert runner.cancel(repo="a") == [job]
        assert (await runner.wait(job.id)).state == "cancelled"
        assert syncs.cancelled == ["a"]
        assert runner.backoff.state("a") is None
        assert runner.cancel(job_id=job.id) == []  # ended: nothing to cancel


async def test_cancel_needs_one_target_and_names_an_unknown_job():
    async with running(Syncs()) as runner:
        with pytest.raises(RequestError, match="either a job id or a repository"):
            runner.cancel()
        with pytest.raises(RequestError, match="no job 'j42'"):
            runner.cancel(job_id="j42")
        with pytest.raises(RequestError, match="no job 'j42'"):
            await runner.wait("j42")


async def test_a_failed_job_records_its_error_and_its_repo_backs_off(autojump_clock):
    syncs = Syncs()
    syncs.failures["a"] = RepoError("/src/a: no such directory")
    for repo in "ab":
        syncs.gate(repo).set()
    async with running(syncs, concurrency=2) as runner:
        failed = await runner.wait(runner.submit(SyncRequest("a")).id)
        assert (failed.state, failed.error) == ("failed", "RepoError: /src/a: no such directory")
        backoff = runner.backoff.state("a")
        assert backoff["failures"] == 1 and backoff["reason"] == failed.error
        assert backoff["retry_at"] == pytest.approx(failed.ended + 10)

        del syncs.failures["a"]
        retry = runner.submit(SyncRequest("a"))
        other = runner.submit(SyncRequest("b"))
        await runner.wait(other.id)
        assert retry.state == "queued"  # the others carry on
        await runner.wait(retry.id)
        assert retry.started == pytest.approx(backoff["retry_at"])
        assert retry.state == "completed" and runner.backoff.state("a") is None


async def test_an_unexpected_exception_fails_the_job_and_the_runner_goes_on():
    syncs = Syncs()
    syncs.failures["a"] = KeyError("blob")
    syncs.gate("a").set()
    syncs.gate("b").set()
    async with running(syncs) as runner:
        failed = await runner.wait(runner.submit(SyncRequest("a")).id)
        assert failed.error == "unexpected builtins.KeyError: 'blob'"
        assert (await runner.wait(runner.submit(SyncRequest("b")).id)).state == "completed"


async def test_subscribers_see_progress_in_order_then_the_end_then_the_channel_closes():
    syncs = Syncs()
    syncs.progress["a"] = [{"stage": "scan", "done": 0, "total": 3}] + [
        {"stage": "index", "done": n, "total": 3} for n in (1, 2, 3)
    ]
    async with running(syncs) as runner:
        job = runner.submit(SyncRequest("a"))
        events = runner.subscribe(job.id)
        await wait_all_tasks_blocked()
        syncs.gate("a").set()
        received = [event async for event in events]
    assert received == [*syncs.progress["a"], {"stage": "end", "state": "completed", "counts": {"files": 1}, "error": None}]


async def test_a_slow_subscriber_loses_intermediate_events_but_never_the_last():
    syncs = Syncs()
    syncs.progress["a"] = [{"stage": "index", "done": n} for n in range(10)]
    async with running(syncs, subscriber_buffer=3) as runner:
        job = runner.subscribe(runner.submit(SyncRequest("a")).id)
        await wait_all_tasks_blocked()
        syncs.gate("a").set()
        await wait_all_tasks_blocked()
        received = [event async for event in job]
    assert received[:2] == [{"stage": "index", "done": 0}, {"stage": "index", "done": 1}]
    assert received[2]["stage"] == "end" and len(received) == 3


async def test_a_late_subscriber_starts_from_the_latest_event_of_each_stage():
    syncs = Syncs()
    syncs.progress["a"] = [{"stage": "scan", "done": 5}, {"stage": "index", "done": 1}, {"stage": "index", "done": 2}]
    async with running(syncs) as runner:
        job = runner.submit(SyncRequest("a"))
        await wait_all_tasks_blocked()
        events = runner.subscribe(job.id)
        syncs.gate("a").set()
        received = [event async for event in events]
        assert [event["stage"] for event in received] == ["scan", "index", "end"]
        assert received[1]["done"] == 2
        ended = [event async for event in runner.subscribe(job.id)]
        assert ended == [received[-1]]


async def test_a_full_queue_answers_busy_without_blocking():
    syncs = Syncs()
    async with running(syncs, queue_size=1) as runner:
        runner.submit(SyncRequest("a"))
        await wait_all_tasks_blocked()
        queued = runner.submit(SyncRequest("b"))
        with pytest.raises(Busy, match="queue is full"):
            runner.submit(SyncRequest("c"))
        assert runner.submit(SyncRequest("b")) is queued  # overlapping runs coalesce


async def test_cancel_all_ends_every_job_cancelled_and_refuses_new_ones():
    syncs = Syncs()
    async with running(syncs) as runner:
        jobs = [runner.submit(SyncRequest(r)) for r in "ab"]
        await wait_all_tasks_blocked()
        runner.cancel_all()
        for job in jobs:
            assert (await runner.wait(job.id)).state == "cancelled"
        with pytest.raises(Busy, match="shutting down"):
            runner.submit(SyncRequest("c"))
    assert syncs.cancelled == ["a"]


async def test_cancelling_the_runner_ends_running_jobs_cancelled():
    syncs = Syncs()
    async with running(syncs) as runner:
        job = runner.submit(SyncRequest("a"))
        await wait_all_tasks_blocked()
    assert job.state == "cancelled" and syncs.cancelled == ["a"]


def behind(*jobs) -> list[dict]:
    return [{"job": j.id, "repo": j.request.repo, "state": j.state} for j in jobs]


async def test_a_queued_job_says_what_it_waits_behind_whenever_that_changes_then_reports_its_stages():
    syncs = Syncs()
    syncs.progress["c"] = [{"stage": "scan", "done": 1}]
    async with running(syncs) as runner:
        a, b, c = (runner.submit(SyncRequest(r)) for r in "abc")
        events = runner.subscribe(c.id)
        await wait_all_tasks_blocked()
        first = {
            "stage": "queued",
            "behind": [{"job": a.id, "repo": "a", "state": "running"}, {"job": b.id, "repo": "b", "state": "queued"}],
        }
        syncs.gate("a").set()
        await runner.wait(a.id)
        await wait_all_tasks_blocked()
        second = {"stage": "queued", "behind": behind(b)}
        syncs.gate("b").set()
        syncs.gate("c").set()
        received = [event async for event in events]
    assert received == [
        first,
        second,
        {"stage": "scan", "done": 1},
        {"stage": "end", "state": "completed", "counts": {"files": 3}, "error": None},
    ]


async def test_a_late_subscriber_to_a_queued_job_hears_what_it_waits_behind_and_no_more_once_it_runs():
    syncs = Syncs()
    async with running(syncs) as runner:
        a = runner.submit(SyncRequest("a"))
        b = runner.submit(SyncRequest("b"))
        await wait_all_tasks_blocked()
        async with runner.subscribe(b.id) as events:
            assert await events.receive() == {"stage": "queued", "behind": behind(a)}
        syncs.gate("a").set()
        await runner.wait(a.id)
        await wait_all_tasks_blocked()
        assert b.state == "running"
        async with runner.subscribe(b.id) as events:
            with pytest.raises(trio.WouldBlock):
                events.receive_nowait()  # no stage has reported yet, and it is not queued


async def test_a_queued_job_cancelled_ends_after_its_queued_event():
    syncs = Syncs()
    async with running(syncs) as runner:
        a = runner.submit(SyncRequest("a"))
        b = runner.submit(SyncRequest("b"))
        events = runner.subscribe(b.id)
        await wait_all_tasks_blocked()
        runner.cancel(job_id=b.id)
        received = [event async for event in events]
        assert received[0] == {"stage": "queued", "behind": behind(a)}
    assert [e["stage"] for e in received] == ["queued", "end"] and received[-1]["state"] == "cancelled"


async def test_a_job_of_a_backing_off_repository_says_when_it_is_retried(autojump_clock):
    syncs = Syncs()
    syncs.failures["a"] = RepoError("/src/a: no such directory")
    syncs.gate("a").set()
    async with running(syncs) as runner:
        await runner.wait(runner.submit(SyncRequest("a")).id)
        del syncs.failures["a"]
        retry = runner.submit(SyncRequest("a"))
        received = [event async for event in runner.subscribe(retry.id)]
    assert received[0] == {"stage": "queued", "behind": [], "retry_in_s": 10.0}
    assert [e["stage"] for e in received[1:]] == ["end"] and retry.state == "completed"


def job(id: str, repo: str, state: str) -> Job:
    return Job(id=id, request=SyncRequest(repo), state=state, created=0.0)


def test_with_a_slot_free_a_queued_job_waits_only_for_its_own_repository():
    queued_a, queued_b, me = job("j3", "a", "queued"), job("j4", "b", "queued"), job("j5", "a", "queued")
    running_a, running_c = job("j1", "a", "running"), job("j2", "c", "running")
    jobs = [queued_a, queued_b, me, running_a, running_c]
    assert jobs_ahead(me, jobs, slots=3) == [running_a, queued_a]
    assert jobs_ahead(me, jobs, slots=2) == [running_a, running_c, queued_a, queued_b]


def test_a_queued_job_with_nothing_ahead_and_no_backoff_has_no_queued_event():
    me = job("j1", "a", "queued")
    assert queued_event(me, [me], slots=1, retry_at=None, now=0.0) is None
    assert queued_event(me, [me], slots=1, retry_at=12.34, now=2.0) == {"stage": "queued", "behind": [], "retry_in_s": 10.3}


@given(
    st.lists(st.tuples(st.sampled_from(["submit", "finish"]), st.sampled_from("abcd"), st.booleans()), max_size=40),
    st.integers(min_value=1, max_value=3),
)
def test_every_job_left_queued_by_the_runner_waits_behind_a_job_that_runs_or_comes_first(operations, slots):
    """After the runner has started all it may, each queued job names jobs ahead of it, and
    finishing all of those would let it start."""
    scheduler = Scheduler(queue_size=100)
    for operation, repo, interactive in operations:
        if operation == "submit":
            scheduler.submit(SyncRequest(repo, priority="interactive" if interactive else "normal"), 0.0)
        elif running := [j for j in scheduler.jobs() if j.state == "running"]:
            scheduler.finish(running[0].id, "completed", 0.0)
        while sum(j.state == "running" for j in scheduler.jobs()) < slots and scheduler.next_job(0.0):
            pass
        jobs = scheduler.jobs()
        order = [j.id for j in jobs]
        for queued in (j for j in jobs if j.state == "queued"):
            ahead = jobs_ahead(queued, jobs, slots)
            assert ahead and queued not in ahead
            assert all(j.state == "running" or order.index(j.id) < order.index(queued.id) for j in ahead)
            left = [j for j in jobs if j not in ahead and j is not queued and j.state in ("queued", "running")]
            blocking = [j for j in left if j.state == "running"]
            assert len(blocking) < slots and all(j.request.repo != queued.request.repo for j in blocking)


async def test_a_failed_sync_is_retried_by_itself_when_its_backoff_ends_until_it_succeeds(autojump_clock):
    syncs = Syncs()
    syncs.failures["a"] = RepoError("/src/a: no such directory")
    syncs.gate("a").set()
    async with running(syncs) as runner:
        first = await runner.wait(runner.submit(SyncRequest("a")).id)
        seen = [first]
        for delay, outcome in ((10, "failed"), (20, "failed"), (40, "completed")):
            if outcome == "completed":
                del syncs.failures["a"]
            assert runner.retry_in("a") == pytest.approx(seen[-1].ended + delay - trio.current_time())
            await trio.sleep(delay + 1)  # nothing but the backoff starts the next try
            [retry] = [j for j in runner.jobs() if j not in seen]
            await runner.wait(retry.id)
            assert retry.state == outcome and retry.started == pytest.approx(seen[-1].ended + delay)
            seen.append(retry)
        assert runner.backoff.state("a") is None and runner.retry_in("a") is None
        await trio.sleep(3600)
        assert syncs.started == ["a"] * 4  # no more tries once one succeeded


async def test_a_sync_that_cannot_succeed_as_asked_or_was_cancelled_is_not_retried(autojump_clock):
    syncs = Syncs()
    syncs.failures["gone"] = RequestError("repository 'gone' is not configured")
    syncs.failures["a"] = RepoError("/src/a: no such directory")
    for repo in ("gone", "a"):
        syncs.gate(repo).set()
    async with running(syncs) as runner:
        await runner.wait(runner.submit(SyncRequest("gone")).id)
        await runner.wait(runner.submit(SyncRequest("a")).id)
        assert runner.retry_in("gone") is None and runner.retry_in("a") == pytest.approx(10)
        runner.cancel(repo="a")
        assert runner.retry_in("a") is None
        await trio.sleep(3600)
        assert syncs.started == ["gone", "a"]


async def test_a_waited_request_follows_the_running_job_of_its_repository_when_that_job_does_it_all():
    syncs = Syncs()
    async with running(syncs) as runner:
        first = runner.submit(SyncRequest("a"))
        await wait_all_tasks_blocked()
        assert first.state == "running"
        assert runner.submit(SyncRequest("a", paths=["x.py"]), join_running=True) is first
        assert runner.submit(SyncRequest("a"), join_running=True) is first
        full = runner.submit(SyncRequest("a", full=True), join_running=True)  # the running job reads less
        assert full is not first and full.state == "queued"
        # With a job of the repository queued, that one is followed: it runs after what runs now.
        assert runner.submit(SyncRequest("a"), join_running=True) is full
        syncs.gate("a").set()
        await runner.wait(full.id)
    assert syncs.started == ["a", "a"]


async def test_a_request_not_waited_for_queues_behind_the_running_job_of_its_repository():
    syncs = Syncs()
    async with running(syncs) as runner:
        first = runner.submit(SyncRequest("a"))
        await wait_all_tasks_blocked()
        again = runner.submit(SyncRequest("a"))  # changes since the running sync scanned are not lost
        assert again is not first and again.state == "queued"
        syncs.gate("a").set()
        await runner.wait(again.id)
    assert syncs.started == ["a", "a"]
