import pytest
from hypothesis import given
from hypothesis import strategies as st

from codeweir.errors import Busy, RequestError
from codeweir.service.scheduler import Backoff, Scheduler, SyncRequest

priorities = st.sampled_from(["interactive", "normal"])
repos = st.sampled_from(["a", "b", "c"])
paths = st.frozensets(st.sampled_from(["x.py", "y.py", "z.py", "d/w.go"]), min_size=1)
requests = st.builds(SyncRequest, repo=repos, full=st.booleans(), paths=st.none() | paths, priority=priorities)


def drain(scheduler: Scheduler, now: float = 0.0) -> list[str]:
    """Run every queued job to completion, one at a time; the ids in the order they started."""
    order = []
    while (job := scheduler.next_job(now)) is not None:
        order.append(job.id)
        scheduler.finish(job.id, "completed", now)
    return order


@given(st.lists(priorities, max_size=30))
def test_interactive_jobs_run_first_and_fifo_holds_within_a_priority(job_priorities):
    scheduler = Scheduler(queue_size=100)
    jobs = [scheduler.submit(SyncRequest(f"r{i}", priority=p), now=i) for i, p in enumerate(job_priorities)]
    expected = [j.id for j in jobs if j.request.priority == "interactive"]
    expected += [j.id for j in jobs if j.request.priority == "normal"]
    assert drain(scheduler) == expected


def test_jobs_lists_queued_in_run_order_then_running_then_recent_newest_first():
    scheduler = Scheduler(queue_size=10)
    done1 = scheduler.submit(SyncRequest("a"), 0)
    done2 = scheduler.submit(SyncRequest("b"), 0)
    drain(scheduler)
    running = scheduler.submit(SyncRequest("c"), 1)
    assert scheduler.next_job(1) is running
    normal = scheduler.submit(SyncRequest("d"), 2)
    interactive = scheduler.submit(SyncRequest("e", priority="interactive"), 3)
    assert scheduler.jobs() == [interactive, normal, running, done2, done1]


@given(st.lists(requests, max_size=20))
def test_an_equal_request_coalesces_with_the_queued_one(reqs):
    scheduler = Scheduler(queue_size=100)
    for request in reqs:
        first = scheduler.submit(request, 0)
        assert scheduler.submit(request, 1) is first


def test_a_paths_request_is_covered_by_a_queued_sync_of_the_whole_repo():
    scheduler = Scheduler(queue_size=10)
    whole = scheduler.submit(SyncRequest("a", full=True), 0)
    assert scheduler.submit(SyncRequest("a", paths={"x.py"}), 1) is whole
    assert scheduler.submit(SyncRequest("a"), 2) is whole
    assert whole.request == SyncRequest("a", full=True)


def test_a_covered_interactive_request_promotes_the_queued_job():
    scheduler = Scheduler(queue_size=10)
    scheduler.submit(SyncRequest("b"), 0)
    whole = scheduler.submit(SyncRequest("a"), 1)
    assert scheduler.submit(SyncRequest("a", paths={"x.py"}, priority="interactive"), 2) is whole
    assert scheduler.next_job(3) is whole


def test_a_normal_sync_does_not_cover_a_full_one():
    scheduler = Scheduler(queue_size=10)
    normal = scheduler.submit(SyncRequest("a"), 0)
    assert scheduler.submit(SyncRequest("a", full=True), 1) is not normal


@given(st.lists(paths, min_size=1, max_size=10), st.lists(priorities, min_size=10, max_size=10))
def test_queued_paths_requests_of_one_repo_merge(path_sets, job_priorities):
    scheduler = Scheduler(queue_size=1)
    jobs = {scheduler.submit(SyncRequest("a", paths=p, priority=pr), 0).id for p, pr in zip(path_sets, job_priorities)}
    assert len(jobs) == 1
    (job,) = scheduler.jobs()
    assert job.request.paths == frozenset().union(*path_sets)
    merged_priorities = job_priorities[: len(path_sets)]
    assert job.request.priority == ("interactive" if "interactive" in merged_priorities else "normal")


def test_a_full_queue_answers_busy_but_still_coalesces():
    scheduler = Scheduler(queue_size=2)
    first = scheduler.submit(SyncRequest("a"), 0)
    scheduler.submit(SyncRequest("b"), 0)
    with pytest.raises(Busy, match="queue is full"):
        scheduler.submit(SyncRequest("c"), 0)
    assert scheduler.submit(SyncRequest("a"), 0) is first
    scheduler.next_job(1)
    scheduler.submit(SyncRequest("c"), 1)


def test_a_request_never_coalesces_with_a_running_job():
    scheduler = Scheduler(queue_size=10)
    running = scheduler.submit(SyncRequest("a"), 0)
    scheduler.next_job(0)
    assert scheduler.submit(SyncRequest("a"), 1) is not running


@given(st.lists(st.tuples(st.sampled_from(["submit", "start", "finish"]), requests), max_size=60))
def test_never_two_jobs_of_one_repo_run_at_once(ops):
    scheduler = Scheduler(queue_size=5)
    running = []
    for op, request in ops:
        if op == "submit":
            try:
                scheduler.submit(request, 0)
            except Busy:
                pass
        elif op == "start" and (job := scheduler.next_job(0)) is not None:
            running.append(job)
        elif op == "finish" and running:
            scheduler.finish(running.pop(0).id, "completed", 0)
        repos_running = [j.request.repo for j in scheduler.jobs() if j.state == "running"]
        assert len(repos_running) == len(set(repos_running))
        assert len([j for j in scheduler.jobs() if j.state == "queued"]) <= 5


def test_blocked_repos_wait_while_others_start():
    scheduler = Scheduler(queue_size=10)
    scheduler.submit(SyncRequest("a", priority="interactive"), 0)
    b = scheduler.submit(SyncRequest("b"), 0)
    assert scheduler.next_job(0, blocked_repos={"a"}) is b
    assert scheduler.next_job(0, blocked_repos={"a"}) is None


@given(st.integers(1, 5), st.integers(0, 30))
def test_history_keeps_only_the_most_recent_jobs(history, count):
    scheduler = Scheduler(queue_size=100, history=history)
    ids = [scheduler.submit(SyncRequest(f"r{i}"), i).id for i in range(count)]
    drain(scheduler)
    assert [j.id for j in scheduler.jobs()] == ids[::-1][:history]


def test_finish_records_state_times_counts_and_error():
    scheduler = Scheduler(queue_size=10)
    scheduler.submit(SyncRequest("a"), 1.0)
    job = scheduler.next_job(2.0)
    scheduler.finish(job.id, "failed", 3.5, counts={"files": 4}, error="RepoError: gone")
    assert (job.state, job.created, job.started, job.ended) == ("failed", 1.0, 2.0, 3.5)
    assert (job.counts, job.error) == ({"files": 4}, "RepoError: gone")
    with pytest.raises(ValueError, match="not 'running'"):
        scheduler.finish(job.id, "running", 4.0)


def test_cancel_removes_a_queued_job_and_returns_a_running_one():
    scheduler = Scheduler(queue_size=10)
    running = scheduler.submit(SyncRequest("a"), 0)
    scheduler.next_job(0)
    queued = scheduler.submit(SyncRequest("b"), 0)
    assert scheduler.cancel(queued.id, 1) is queued
    assert (queued.state, queued.ended) == ("cancelled", 1)
    assert scheduler.next_job(1) is None
    assert scheduler.cancel(running.id, 1) is running and running.state == "running"
    assert scheduler.cancel("j999", 1) is None
    assert scheduler.get(queued.id) is queued


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"repo": ""}, "repo must not be empty"),
        ({"repo": "a", "paths": set()}, "paths must not be empty"),
        ({"repo": "a", "priority": "urgent"}, "priority must be one of interactive, normal, got 'urgent'"),
    ],
)
def test_bad_requests_are_rejected_with_the_field_named(kwargs, message):
    with pytest.raises(RequestError, match=message):
        SyncRequest(**kwargs)


@given(st.integers(1, 40), st.floats(0.1, 100), st.floats(1, 10_000))
def test_backoff_doubles_after_each_failure_up_to_the_cap(failures, base, cap_factor):
    cap = base * cap_factor
    backoff = Backoff(base=base, cap=cap)
    for _ in range(failures):
        retry_at = backoff.failed("a", "path missing", now=1000.0)
    assert retry_at == pytest.approx(1000.0 + min(cap, base * 2 ** (failures - 1)))
    assert not backoff.allowed("a", retry_at - 0.01) and backoff.allowed("a", retry_at)
    assert backoff.allowed("b", 1000.0)


def test_backoff_keeps_the_reason_and_resets_on_success():
    backoff = Backoff(base=10, cap=60)
    backoff.failed("a", "RepoError: /src/a: no such directory", now=0)
    backoff.failed("a", "RepoError: /src/a: permission denied", now=10)
    assert backoff.state("a") == {"failures": 2, "reason": "RepoError: /src/a: permission denied", "retry_at": 30}
    assert backoff.deferred(now=29) == {"a": 30}
    assert backoff.deferred(now=30) == {}
    backoff.succeeded("a")
    assert backoff.state("a") is None and backoff.allowed("a", 0)


def test_a_long_outage_stays_at_the_cap():
    backoff = Backoff(base=1, cap=60)
    for _ in range(3000):
        retry_at = backoff.failed("a", "gone", now=0)
    assert retry_at == 60
