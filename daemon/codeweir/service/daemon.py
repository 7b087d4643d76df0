"""`run_daemon()`: the top nursery. It makes every channel and limiter and passes them in.

Shutdown order (SIGTERM/SIGINT): stop accepting and cancel running syncs, then close the
files and writes channels so the parse stages drain and the writer makes its final,
shielded commit; STOPPING=1 goes out first. A second signal exits at once. SIGHUP reloads.
"""

from __future__ import annotations

import fcntl
import gc
import logging
import os
import signal
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import trio
import trio_parallel

from codeweir.config import Config, load_config
from codeweir.embed.backlog import EmbeddingService
from codeweir.errors import CodeweirError, ConfigError, StoreError
from codeweir.host.memory import ReleaseCadence, mapped_resident_bytes, use_one_arena
from codeweir.index.store import Store
from codeweir.index.writes import writer_stage
from codeweir.ingest.pipeline import background_workers, parse_stage
from codeweir.search.index_search import SearchWorkers
from codeweir.service import server, systemd
from codeweir.service.handlers import Daemon
from codeweir.service.jobs import JobRunner
from codeweir.service.rebuild import Healer
from codeweir.service.scheduler import Backoff, Scheduler
from codeweir.service.state import Stages
from codeweir.service.syncs import Syncs

log = logging.getLogger("codeweir")

# How long a stop lets the stages drain before it cancels them: systemd's TimeoutStopSec is 30 s,
# and a stop should take a few seconds at most whatever the daemon was doing.
STOP_DRAIN_S = 5.0
SEARCH_WORKER_IDLE_S = 7 * 24 * 3600.0  # a search worker idle this long ends; the next search starts one
# A full collection of the cyclic garbage collector stops every thread, the event loop with them:
# during a go-std full sync each took 50-90 ms, walking the scan's listing and the chunks awaiting
# their commit, and found nothing. Python makes one every 10 collections of the middle generation;
# every 100, the loop's longest stall under a go-std sync fell from 31-112 ms to 7.5-36 ms (four
# runs each). Cycles are rare here (the daemon's records hold none), so they wait a little longer.
GC_THRESHOLDS = (700, 10, 100)


def lock_state_dir(state_dir: Path) -> int:
    """Hold an exclusive lock on the state dir for the daemon's life: one writer only."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = state_dir / "daemon.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StoreError(f"another codeweir daemon (pid {holder}) is using the state dir {state_dir}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


async def run_daemon(
    config: Config,
    config_path: Path | None = None,
    *,
    started_in: Path | None = None,
    task_status=trio.TASK_STATUS_IGNORED,
) -> None:
    """The daemon: `config`, re-read on reload from `config_path` (or, with no config file, the
    embedded default over `started_in`, the repository it was started in)."""
    state_dir = Path(config.state_dir)
    lock_fd = lock_state_dir(state_dir)
    try:
        store = await trio.to_thread.run_sync(Store, state_dir / "index")
        # Search workers at the daemon's CPU priority, kept while it runs: a new one takes half a second.
        async with trio_parallel.open_worker_context(idle_timeout=SEARCH_WORKER_IDLE_S) as search_context:
            search_workers = SearchWorkers(search_context, trio.CapacityLimiter(config.limits.search_workers))
            await _serve(config, config_path, started_in, store, search_workers, task_status)
    finally:
        os.close(lock_fd)


async def _serve(
    config: Config, config_path: Path | None, started_in: Path | None, store: Store, search_workers: SearchWorkers, task_status
) -> None:
    limits = config.limits
    files_send, files_recv = trio.open_memory_channel(limits.files_channel)
    writes_send, writes_recv = trio.open_memory_channel(limits.writes_channel)
    in_flight = trio.CapacityLimiter(limits.files_in_flight)
    parse_workers = trio.CapacityLimiter(limits.parse_workers)
    # One at a time, not settings: there is one IndexWriter, and one model session (its
    # intra-op threads already spread each call over the cores).
    store_limiter = trio.CapacityLimiter(1)
    model_limiter = trio.CapacityLimiter(1)  # documents, the ANN index, trimming the vectors
    query_limiter = trio.CapacityLimiter(1)  # queries' embeddings: never behind documents
    stages = Stages(
        files=files_send,
        writes=writes_send,
        git_limiter=trio.CapacityLimiter(limits.git_threads),
        search_limiter=trio.CapacityLimiter(limits.search_threads),
        search_workers=search_workers,
    )

    async def run_sync(job, report):
        return await syncs.run(job, report)

    runner = JobRunner(
        Scheduler(queue_size=limits.queue_size),
        run_sync,
        concurrency=trio.CapacityLimiter(limits.concurrent_syncs),
        backoff=Backoff(),
    )
    backlog_send, backlog_recv = trio.open_memory_channel(limits.embed_channel)
    embedding = EmbeddingService(
        config.model,
        Path(config.state_dir),
        store,
        backlog_recv,
        model_limiter=model_limiter,
        query_limiter=query_limiter,
    )
    services_scope = trio.CancelScope()
    daemon = Daemon(
        config, config_path, store, stages, runner, stop=services_scope.cancel, embedding=embedding, started_in=started_in
    )
    syncs = Syncs(daemon.state, daemon.rebuild)  # what each job of the runner does
    healer = Healer(daemon.state, daemon.rebuild)  # rebuilds the index when it is found damaged

    async def write(task_status=trio.TASK_STATUS_IGNORED) -> None:
        # The writer feeds the embed backlog; it closes it when it is done.
        async with backlog_send:
            await writer_stage(
                writes_recv,
                store,
                store_limiter=store_limiter,
                limits=limits,
                on_written=partial(embedding.offer, backlog_send) if config.model.enabled else None,
                on_committed=embedding.committed if config.model.enabled else None,
                task_status=task_status,
            )

    async with trio.open_nursery() as outer:
        await outer.start(_handle_signals, daemon)
        async with background_workers(), trio.open_nursery() as stage_nursery:
            await stage_nursery.start(write)
            await stage_nursery.start(embedding.run)
            async with files_recv:
                for _ in range(limits.files_in_flight):
                    stage_nursery.start_soon(
                        partial(
                            parse_stage,
                            files_recv.clone(),
                            writes_send.clone(),
                            in_flight=in_flight,
                            workers=parse_workers,
                            max_bytes=limits.max_file_bytes,
                        )
                    )
            async with files_send, writes_send:
                with services_scope:
                    async with trio.open_nursery() as services:
                        await services.start(runner.run)
                        await services.start(healer.run)
                        await services.start(server.serve_unix, _listener(config), daemon.handlers(), config.server)
                        services.start_soon(_release_mapped_pages, store, embedding)
                        services.start_soon(search_workers.start)
                        interval = systemd.watchdog_interval()
                        if interval is not None:
                            services.start_soon(systemd.watchdog, interval)
                        await daemon.reloader.forget_unconfigured()
                        daemon.submit_all()
                        daemon.start(services)
                        systemd.notify("READY=1", f"STATUS=serving {len(config.repositories)} repositories")
                        log.info("codeweir ready: socket %s, state %s", config.socket, config.state_dir)
                        task_status.started(daemon)
            # The channels are closed: the parse stages drain, the writer commits and returns
            # (its last commit shielded), the embedder has stopped between two runs of the model.
            stage_nursery.cancel_scope.deadline = trio.current_time() + STOP_DRAIN_S
        outer.cancel_scope.cancel()
    await trio.to_thread.run_sync(store.close)
    log.info("codeweir stopped")


async def _release_mapped_pages(store: Store, embedding: EmbeddingService) -> None:
    """What merges and searches read of the index and the vectors through mmap leaves the
    daemon's RSS, soon after it is read (a release takes about 1 ms)."""
    cadence = ReleaseCadence()
    cadence.released(mapped_resident_bytes())
    while True:
        await trio.sleep(cadence.interval(store.commits, trio.current_time()))
        if cadence.due(mapped_resident_bytes()):
            await trio.to_thread.run_sync(store.release_pages)
            await trio.to_thread.run_sync(embedding.release_pages)
            cadence.released(mapped_resident_bytes())


def _listener(config: Config):
    """systemd's socket when activated; else the path, which the server binds and removes at exit."""
    activated = systemd.listen_fds()
    return activated[0] if activated else Path(config.socket)


async def _handle_signals(daemon: Daemon, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        task_status.started()
        stopping = False
        async for signum in signals:
            if signum == signal.SIGHUP:
                if not stopping:
                    daemon.reload_soon()
                continue
            if stopping:
                log.warning("second signal: exiting at once")
                os._exit(1)
            stopping = True
            log.info("signal %s: stopping", signal.Signals(signum).name)
            daemon.shutdown()


def main(config_path: Path | None = None, started_in: Path | None = None) -> int:
    """`codeweir daemon`: 0 after a clean stop, 2 for a bad config (file or environment), 1 for other errors."""
    try:
        config = load_config(config_path, started_in=started_in)
    except ConfigError as exc:
        print(f"codeweir: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("watchfiles").setLevel(logging.WARNING)  # it logs every change batch
    use_one_arena()  # before any thread starts
    gc.set_threshold(*GC_THRESHOLDS)
    if not config.repositories:
        log.warning("no repositories configured and not started inside a git repository: nothing to index")
    failures: list[BaseException] = []
    try:
        trio.run(partial(run_daemon, config, config_path, started_in=started_in))
    except* CodeweirError as group:  # the nurseries wrap what their tasks raise
        failures = list(_leaves(group))
    for failure in failures:
        log.error("%s", failure)
    if any(isinstance(failure, ConfigError) for failure in failures):  # $LISTEN_FDS, $NOTIFY_SOCKET
        return 2
    return 1 if failures else 0


def _leaves(group: BaseExceptionGroup) -> Iterator[BaseException]:
    for exc in group.exceptions:
        yield from _leaves(exc) if isinstance(exc, BaseExceptionGroup) else (exc,)
