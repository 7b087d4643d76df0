"""The embed backlog: keeps the vector of every indexed chunk and commit message in the store, in
the background, what people search first first, and says truthfully how far it has come.

Lexical search covers a file as soon as its commit lands; this service follows. The writer
offers the chunks and commit messages it applies on a bounded channel, never blocking. A task
drains the channel at once, whatever the model is doing, into a priority queue (`EmbedQueue`),
which the embedder takes from in order: a watcher's or a hook's changes first, then source
before tests, generated, vendored and minified files (facets are stored per chunk), then
arrival. The queue holds the texts of a bounded number of offers; past that it keeps their
hashes and reads their texts back from the index once the commit holding them has landed.

No offer is lost. One that cannot reach the queue (the channel full; the model missing, failed
or disabled) is found again by a reconciliation, which walks the committed index for chunks and
commits without a vector, run after the commit holding the offer has landed. One also runs once
the model has loaded; it sees every hash the index still refers to, and when enough of the
store is dead (edited or deleted content) the store forgets the rest.

Semantic search answers from the vectors there are as soon as the model has loaded, and says
how much of the index they cover (`Coverage`); a previous model whose vectors are on disk
serves instead until the configured one covers the index, and once it does, the vectors of
every other model are deleted. Vectors are saved atomically every few seconds and on shutdown;
`stop()` ends the work between two runs of the model (tens of milliseconds).

The built-in model may not be installed yet: the service says so (naming `codeweir model
install`), and tries again when told (`model_installed()`, on reload) or every 30 s.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import json
import logging
import math
import shutil
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import cattrs
import numpy as np
import tantivy
import trio

from codeweir.embed.coverage import Coverage, RepoCoverage
from codeweir.embed.model_build import ModelSpec, default_model_installed, ensure_model, missing_model_message
from codeweir.embed.session import Embedder, EmbedStopped
from codeweir.embedded_text import commit_text, document_text
from codeweir.errors import CodeweirError, ModelError, StoreError
from codeweir.facets import RANK_WEIGHTS, rank_weight
from codeweir.host.durable import write_atomic
from codeweir.index.schema import SCHEMA, stored_chunk
from codeweir.index.store import Store
from codeweir.index.vectors import VectorStore
from codeweir.index.writes import Write, WriteCommits, WriteFile

if TYPE_CHECKING:
    from codeweir.config import ModelConfig

log = logging.getLogger(__name__)

_spec_converter = cattrs.Converter(forbid_extra_keys=True)
_spec_converter.register_structure_hook(Path, lambda value, _: Path(value))
_spec_converter.register_unstructure_hook(Path, str)

ACTIVE_MODEL_FILE = "serving-model.json"
# Texts per call into the model (a stop ends a call between two runs of the model, see `stop`).
EMBED_CALL_TEXTS = 64
# Offered texts the queue holds in memory; the hashes of more are kept and their texts read
# back from the index when their turn comes (a full sync of a large repository offers them all).
QUEUED_TEXTS = 4096
# While the built-in model is not installed, look again this often (and on every reload).
MISSING_MODEL_RETRY_S = 30.0
RATE_WINDOW_S = 60.0  # the embed rate is over this last span
PROGRESS_LOG_S = 30.0  # a progress line at most this often while embedding
# A stop saves the vectors within this deadline (a save takes well under a second).
SAVE_DEADLINE_S = 5.0

EMBEDDED_KINDS = ("chunk", "commit")  # the document kinds that have a vector

# Embedding order within a priority: source first (rank 0), then tests, then generated and
# vendored files, then minified ones (facets.RANK_WEIGHTS, best first); commit messages with tests.
_RANKS = {weight: rank for rank, weight in enumerate(sorted(set(RANK_WEIGHTS.values()), reverse=True))}
COMMIT_RANK = _RANKS[RANK_WEIGHTS["test"]]

# Forget dead vectors once they are this share of the store: forgetting rewrites the whole
# store, so each rewrite frees at least a tenth of it, and the dead never pass a tenth for long.
RETAIN_DEAD_SHARE = 0.1
# The writer offers a batch before it commits it (within Limits.commit_every_seconds, 2 s by
# default), so a vector may belong to a chunk not yet visible to the scan. Vectors added since
# the previous reconciliation are kept, and the store is not trimmed again sooner than this.
RETAIN_MIN_INTERVAL = 60.0
_DELETED_SUFFIX = ".deleted"  # a model directory being removed; a leading dot: no model id


def embed_rank(facets) -> int:
    """A chunk's place in the embedding order by its facets: 0 for source, higher later."""
    return _RANKS[rank_weight(facets)]


@attrs.frozen
class EmbedItem:
    repo: str
    kind: str  # one of EMBEDDED_KINDS
    content_hash: str
    text: str
    rank: int = 0  # see embed_rank
    interactive: bool = False  # a watcher's or hook's sync wrote it: embedded first
    # Its document is in the index once this many commits have landed (EmbeddingService.commits).
    after_commit: int = 0


def written_texts(write: Write, *, after_commit: int = 0) -> list[EmbedItem]:
    """What the writer offers for one applied write: a file's chunks, or a batch's commit messages."""
    if isinstance(write, WriteFile):
        record = write.record
        rank, interactive = embed_rank(record.facets), write.tracker.interactive
        return [
            EmbedItem(
                record.repo,
                "chunk",
                h,
                document_text(language=record.language, symbol_path=c.symbol_path, kind=c.kind, content=c.content),
                rank,
                interactive,
                after_commit,
            )
            for c, h in zip(record.chunks, record.content_hashes, strict=True)
        ]
    if isinstance(write, WriteCommits):
        return [
            EmbedItem(write.repo, "commit", c.content_hash, commit_text(c.message), COMMIT_RANK, False, after_commit)
            for c in write.commits
        ]
    return []


@attrs.define(slots=True)
class _Todo:
    key: tuple[int, int, int]  # (0 if interactive else 1, rank, arrival): smallest first
    kind: str
    text: str | None  # None: read it from the index when its turn comes
    after_commit: int  # ... which it can be once this many commits have landed


class EmbedQueue:
    """The content hashes waiting for a vector, best first (see the module's doc), each once."""

    def __init__(self, max_texts: int = QUEUED_TEXTS) -> None:
        self.max_texts = max_texts
        self._heap: list[tuple[tuple[int, int, int], str]] = []  # entries of a re-keyed hash go stale
        self._todo: dict[str, _Todo] = {}
        self._texts = 0  # todos holding their text
        self._kinds: Counter[str] = Counter()
        self._arrival = itertools.count()
        self._deferred: list[str] = []  # text-less, their commit not landed yet: out of the heap

    def __len__(self) -> int:
        return len(self._todo)

    def __contains__(self, content_hash: object) -> bool:
        return content_hash in self._todo

    def waiting(self, kind: str) -> int:
        return self._kinds[kind]

    def push(
        self, content_hash: str, kind: str, text: str | None, *, rank: int, interactive: bool = False, after_commit: int = 0
    ) -> None:
        key = (0 if interactive else 1, rank, next(self._arrival))
        keep = text is not None and self._texts < self.max_texts
        todo = self._todo.get(content_hash)
        if todo is None:
            todo = _Todo(key, kind, text if keep else None, 0 if keep else after_commit)
            self._todo[content_hash] = todo
            self._kinds[kind] += 1
            self._texts += keep
            heapq.heappush(self._heap, (key, content_hash))
            return
        if todo.text is None:
            if keep:
                todo.text, todo.after_commit = text, 0
                self._texts += 1
            else:  # the newest write of this text may be the only one the index will hold
                todo.after_commit = max(todo.after_commit, after_commit)
        if key[:2] < todo.key[:2]:
            todo.key = key
            heapq.heappush(self._heap, (key, content_hash))

    def take(self, n: int, *, commits: int, done: Callable[[str], bool]) -> list[tuple[str, _Todo]]:
        """Up to `n` hashes, best first, each with its text or None (read it from the index, whose
        commit has landed: `commits` have). Those `done` says have a vector are dropped."""
        taken: list[tuple[str, _Todo]] = []
        while self._heap and len(taken) < n:
            key, h = heapq.heappop(self._heap)
            todo = self._todo.get(h)
            if todo is None or todo.key != key:
                continue  # taken already, or re-keyed: a fresher entry is in the heap
            if done(h):
                self._remove(h, todo)
            elif todo.text is None and todo.after_commit > commits:
                self._deferred.append(h)
            else:
                self._remove(h, todo)
                taken.append((h, todo))
        return taken

    def committed(self) -> None:
        """A commit landed: the deferred hashes may be read now."""
        deferred, self._deferred = self._deferred, []
        for h in deferred:
            if (todo := self._todo.get(h)) is not None:
                heapq.heappush(self._heap, (todo.key, h))

    def _remove(self, h: str, todo: _Todo) -> None:
        del self._todo[h]
        self._kinds[todo.kind] -= 1
        self._texts -= todo.text is not None


class EmbedRate:
    """Vectors per second over the last RATE_WINDOW_S."""

    def __init__(self) -> None:
        self._samples: collections.deque[tuple[float, int]] = collections.deque()

    def note(self, now: float, total: int) -> None:
        self._samples.append((now, total))
        while len(self._samples) > 2 and self._samples[1][0] <= now - RATE_WINDOW_S:
            self._samples.popleft()

    def per_second(self, now: float) -> float | None:
        """None while too little is known, or after a minute without a vector."""
        if len(self._samples) < 2 or self._samples[-1][0] <= now - RATE_WINDOW_S:
            return None
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 - t0 >= 1.0 else None


class EmbeddingService:
    def __init__(
        self,
        cfg: ModelConfig,
        state_dir: Path,
        store: Store,
        backlog: trio.MemoryReceiveChannel[list[EmbedItem]],
        *,
        model_limiter: trio.CapacityLimiter,
        query_limiter: trio.CapacityLimiter,
        save_every: float = 5.0,
    ) -> None:
        """`model_limiter` bounds the background calls into the model and the vector store
        (documents, the ANN index, trimming); `query_limiter` the queries' embeddings."""
        self.cfg = cfg
        self.state_dir = state_dir
        self.store = store
        self.backlog = backlog
        self.save_every = save_every
        # disabled, loading, missing (the built-in model is not installed), failed, filling
        # (vectors are being added) or ready (every chunk and commit has one)
        self.state = "disabled" if not cfg.enabled else "loading"
        self.error: str | None = None
        self.embedder: Embedder | None = None
        self.vectors: VectorStore | None = None
        # What semantic search uses: the configured model, from the moment it loads, unless a
        # previous model's vectors are on disk: that one serves until the new one covers the index.
        self.serving: tuple[Embedder, VectorStore] | None = None
        self.queue = EmbedQueue()
        self.coverage = Coverage()  # of the configured model's vectors
        self.rate = EmbedRate()
        self.commits = 0  # the writer's commits so far
        self.reconcile_needed = True
        self._reconcile_at = 0  # > 0: reconcile once that many commits have landed
        # Rows of the store added since the previous reconciliation start here (see RETAIN_MIN_INTERVAL).
        self._reconciled_rows = 0
        self._last_retain = -float("inf")
        self._dirty = False
        self._active_written = False  # serving-model.json names the configured model
        self.model_limiter = model_limiter
        self._query_limiter = query_limiter
        self.embedded_total = 0
        self._idle = trio.Event()
        self._wake = trio.Event()  # work for the embedder: an offer, a commit, a reconciliation
        self._retry = trio.Event()  # the built-in model may have been installed
        self._work = trio.CancelScope()  # stop() cancels it
        self._stopping = threading.Event()  # ... and the call into the model in flight sees this
        self._busy: tuple[float, int] | None = None  # since when, and embedded_total then
        self._next_progress_log = 0.0

    # -- for other tasks ------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Semantic search can be answered, from the vectors there are (maybe by the previous
        model, while this one fills)."""
        return self.serving is not None

    @property
    def serving_vectors(self) -> VectorStore:
        return self.serving[1]

    def describe(self) -> dict:
        now = trio.current_time()
        rate = self.rate.per_second(now) if self.state == "filling" else None
        waiting = max(len(self.queue), self.coverage.texts_missing()) if self.vectors is not None else None
        return {
            "state": self.state,
            "error": self.error,
            "model": self.embedder.model_id if self.embedder else None,
            "provider": self.embedder.provider if self.embedder else None,
            "threads": self.embedder.threads if self.embedder else None,
            "vectors": len(self.vectors) if self.vectors is not None else 0,
            "serving": self.serving[0].model_id if self.serving else None,
            # Texts (chunks and commit messages) without a vector yet, the vectors added per
            # second over the last minute, and when at that rate the last would have one.
            "waiting": waiting,
            "rate_per_s": round(rate, 1) if rate is not None else None,
            "eta_s": round(waiting / rate) if rate and waiting else None,
        }

    def repo_coverage(self, repo: str) -> RepoCoverage:
        """How many of the repository's chunks have a vector of the configured model."""
        return self.coverage.of(repo)

    def coverage_note(self, repos: list[str] | None = None) -> str | None:
        """What semantic results cover, when not every chunk (of `repos`, else all): for a search's notes."""
        if self.serving is None:
            return None
        covered = self.coverage.total(repos)
        if self.serving[0] is not self.embedder:
            return (
                f"semantic results come from the previous model {self.serving[0].model_id} until "
                f"{self.embedder.model_id} covers the index ({covered.percent}% so far)"
            )
        if covered.chunks_embedded >= covered.chunks:
            return None
        return (
            f"semantic results cover {covered.chunks_embedded:,} of {covered.chunks:,} chunks "
            f"({covered.percent}%); the rest are being embedded"
        )

    def waiting(self, kind: str) -> int:
        """Documents of this kind, in every repository, waiting for a vector."""
        return self.queue.waiting(kind)

    def offer(self, backlog: trio.MemorySendChannel[list[EmbedItem]], written: Sequence[Write]) -> None:
        """The writer's side, after it applies writes (before it commits them): never blocks;
        what the channel cannot take is reconciled once the commit holding it has landed."""
        if self.state in ("disabled", "failed"):
            return
        after_commit = self.commits + 1
        items = [item for write in written for item in written_texts(write, after_commit=after_commit)]
        if not items:
            return
        if self.state != "missing":
            self._not_idle()
        try:
            backlog.send_nowait(items)
        except trio.WouldBlock:
            self._lost(after_commit)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # stopped: the next start reconciles

    def committed(self) -> None:
        """The writer's side, after each commit that landed."""
        self.commits += 1
        if self.coverage.loaded:
            self.coverage.changed(self.store.take_chunk_hash_changes())
        if self._reconcile_at and self.commits >= self._reconcile_at:
            self._reconcile_at = 0
            self._request_reconcile()
        self.queue.committed()
        self._wake.set()

    def model_installed(self) -> None:
        """`codeweir model install` may have put the built-in model in place (a reload says so):
        if it is missing, look again now. Until it has looked, a wait for the vectors waits too:
        the look may find the model, and then every chunk is to be embedded."""
        if self.state == "missing":
            self._not_idle()
        self._retry.set()

    def stop(self) -> None:
        """End the work between two runs of the model (tens of milliseconds); the vectors are saved."""
        self._stopping.set()
        self._work.cancel()

    async def wait_idle(self) -> None:
        """Until every chunk and commit offered so far has a vector (or the model cannot load)."""
        await self._idle.wait()

    async def embed_query(self, text: str) -> np.ndarray:
        if not self.ready:
            raise ModelError(self.unavailable_reason())
        return await trio.to_thread.run_sync(self.serving[0].embed_query, text, limiter=self._query_limiter)

    def unavailable_reason(self) -> str:
        if self.state in ("failed", "missing"):
            return f"semantic search is unavailable: {self.error}"
        if self.state == "disabled":
            return "semantic search is disabled in the config ([model] enabled = false)"
        return "semantic search is not ready yet: the embedding model is loading"

    def _not_idle(self) -> None:
        if self._idle.is_set():
            self._idle = trio.Event()

    def _request_reconcile(self) -> None:
        self.reconcile_needed = True
        if self.state not in ("disabled", "failed", "missing"):
            self._not_idle()
        self._wake.set()

    def _lost(self, after_commit: int) -> None:
        """Offers that reach no queue: reconcile once the commit holding them has landed."""
        if self.commits >= after_commit:
            self._request_reconcile()
        else:
            self._reconcile_at = max(self._reconcile_at, after_commit)
            if self.state not in ("disabled", "failed", "missing"):
                self._not_idle()

    # -- the service ----------------------------------------------------------------------------

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        # Started at once: the model may take a while to build, and lexical search needs none of it.
        task_status.started()
        async with self.backlog, trio.open_nursery() as nursery:
            # Until the writer closes the channel (the daemon stops), whatever the model does.
            nursery.start_soon(self._drain)
            if not self.cfg.enabled:
                self._idle.set()
                return
            try:
                with self._work:
                    if await self._load_when_installed():
                        await self._consume()
            except ModelError as exc:  # inference failed: lexical search goes on
                self.state, self.error = "failed", str(exc)
                log.error("embedding model: %s", exc)
            finally:
                self._idle.set()
                with trio.CancelScope(shield=True) as scope:
                    scope.deadline = trio.current_time() + SAVE_DEADLINE_S
                    await self._save()
                if self.vectors is not None:
                    log.info("embedding stopped: %s vectors saved", f"{len(self.vectors):,}")

    async def _drain(self) -> None:
        """The channel into the queue, as fast as the writer offers."""
        async for items in self.backlog:
            if self.state in ("disabled", "failed", "missing"):
                self._lost(max(item.after_commit for item in items))
                continue
            vectors = self.vectors
            for item in items:
                if vectors is None or item.content_hash not in vectors:
                    self.queue.push(
                        item.content_hash,
                        item.kind,
                        item.text,
                        rank=item.rank,
                        interactive=item.interactive,
                        after_commit=item.after_commit,
                    )
            self._wake.set()
        self.stop()  # the writer is done: the daemon is stopping

    async def _load_when_installed(self) -> bool:
        """Load the model; while the built-in one is not installed, wait for it. False: it cannot load."""
        while True:
            try:
                await self._load()
                return True
            except CodeweirError as exc:
                builtin = not self.cfg.path and self.cfg.name == "default"
                if not builtin or await trio.to_thread.run_sync(default_model_installed, self.state_dir):
                    self.state, self.error = "failed", str(exc)
                    log.error("embedding model: %s", exc)
                    return False
            if self.state != "missing":
                log.warning("semantic search waits for the embedding model: %s", missing_model_message(self.state_dir))
            self.state, self.error = "missing", missing_model_message(self.state_dir)
            self._idle.set()
            with trio.move_on_after(MISSING_MODEL_RETRY_S):
                await self._retry.wait()
            self._retry = trio.Event()
            if await trio.to_thread.run_sync(default_model_installed, self.state_dir):
                log.info("embedding model installed: loading it")
                self.state, self.error = "loading", None
                self._not_idle()

    async def _load(self) -> None:
        spec = await trio.to_thread.run_sync(ensure_model, self.cfg, self.state_dir)
        self.embedder, self.vectors = await trio.to_thread.run_sync(self._open, spec)
        self._reconciled_rows = len(self.vectors)  # saved by an earlier run: nothing in flight
        # From here on every commit's changes to the chunks' hashes are counted as it lands.
        counts = await trio.to_thread.run_sync(partial(self.store.chunk_hash_counts, stop=self._stopping.is_set))
        if counts is None:  # stopped meanwhile
            await trio.lowlevel.checkpoint()
        self.coverage.reset(counts or {}, self.vectors)
        self.coverage.changed(self.store.take_chunk_hash_changes())
        self.serving = (self.embedder, self.vectors)
        previous = await trio.to_thread.run_sync(self._read_active)
        if previous is not None and previous.model_id != spec.model_id:
            try:
                self.serving = await trio.to_thread.run_sync(self._open, previous)
                log.info("semantic search stays on %s until %s covers the index", previous.model_id, spec.model_id)
            except CodeweirError as exc:
                log.warning("previous model %s cannot serve meanwhile: %s", previous.model_id, exc)
        self._active_written = previous is not None and previous.model_id == spec.model_id
        self.state = "filling"
        covered = self.coverage.total()
        log.info(
            "semantic search on %s: %s of %s chunks have a vector (%d%%)",
            spec.model_id,
            f"{covered.chunks_embedded:,}",
            f"{covered.chunks:,}",
            covered.percent,
        )

    def _open(self, spec: ModelSpec) -> tuple[Embedder, VectorStore]:
        embedder = Embedder(spec, provider=self.cfg.provider, threads=self.cfg.threads)
        return embedder, VectorStore(self.state_dir / "vectors", spec.model_id, spec.dim, unit_norm=spec.normalize)

    def _active_file(self) -> Path:
        return self.state_dir / "vectors" / ACTIVE_MODEL_FILE

    def _read_active(self) -> ModelSpec | None:
        try:
            return _spec_converter.structure(json.loads(self._active_file().read_text()), ModelSpec)
        except (OSError, ValueError, cattrs.BaseValidationError):
            return None

    async def _covered(self) -> None:
        """The configured model has a vector for every chunk and commit: it serves from now on."""
        self.state = "ready"
        if self._active_written and self.serving[0] is self.embedder:
            return
        await self._save()
        data = json.dumps(_spec_converter.unstructure(self.embedder.spec)).encode()
        await trio.to_thread.run_sync(write_atomic, self._active_file(), data)
        self._active_written = True
        if self.serving[0] is not self.embedder:
            self.serving = (self.embedder, self.vectors)
            log.info("semantic search now uses %s", self.embedder.model_id)
        await trio.to_thread.run_sync(self._delete_other_models)

    def _delete_other_models(self) -> None:
        """Remove every model's vectors but the serving model's: nothing reads them any more. Each
        directory is first renamed to a name no model id can have, so a crash mid-delete never
        leaves a partial store that would load as a model's vectors."""
        for path in self.vectors.directory.parent.iterdir():
            if not path.is_dir() or path == self.vectors.directory:
                continue
            try:
                if not path.name.startswith("."):
                    path = path.rename(path.with_name(f".{path.name}{_DELETED_SUFFIX}"))
                    log.info("vectors of model %s deleted", path.name[1 : -len(_DELETED_SUFFIX)])
                if path.name.endswith(_DELETED_SUFFIX):
                    shutil.rmtree(path)
            except OSError as exc:
                log.warning("%s: cannot delete the vectors of an unused model: %s", path, exc)

    def _caught_up(self) -> bool:
        return (
            not self.reconcile_needed
            and not self._reconcile_at
            and not self.queue
            and not self.backlog.statistics().current_buffer_used
        )

    async def _consume(self) -> None:
        """Embed the queue, best first, a call at a time, until stopped."""
        next_save = trio.current_time() + self.save_every
        while True:
            self._wake = trio.Event()
            if self.reconcile_needed:
                self.reconcile_needed = False
                await self._reconcile()
            taken = self.queue.take(EMBED_CALL_TEXTS, commits=self.commits, done=self.vectors.__contains__)
            if taken:
                await self._embed_taken(taken)
            elif self._caught_up():
                await self._caught_up_now()
            if not taken:
                with trio.move_on_at(next_save):
                    await self._wake.wait()
            if trio.current_time() >= next_save:
                await self._save()
                next_save = trio.current_time() + self.save_every

    async def _caught_up_now(self) -> None:
        if self._busy is not None:
            since, total = self._busy
            seconds = trio.current_time() - since
            embedded = self.embedded_total - total
            log.info(
                "embedding caught up: %s vectors in %.1f s (%.1f/s); every chunk and commit message has one",
                f"{embedded:,}",
                seconds,
                embedded / max(seconds, 1e-9),
            )
            self._busy = None
        await self._covered()
        # A good moment to bring the ANN index up to date (nothing happens below its threshold).
        # The rows embedded since join its graph at the daemon's priority: each batch added holds
        # searches off for a few ms, longer if niced behind other work. A graph built from nothing
        # (there is none, or `retain` renumbered the rows: minutes of CPU at a million vectors) is
        # niced like the embedding; searches use the old one, or score exactly, meanwhile.
        grow = partial(self.vectors.refresh_index, build=False, stop=self._stopping.is_set)
        await trio.to_thread.run_sync(grow, limiter=self.model_limiter)
        refresh = partial(self.vectors.refresh_index, stop=self._stopping.is_set)
        await trio.to_thread.run_sync(self.embedder.background.call, refresh, limiter=self.model_limiter)
        if self._caught_up():
            self._idle.set()

    async def _embed_taken(self, taken: list[tuple[str, _Todo]]) -> None:
        if self._busy is None:
            self._busy = (trio.current_time(), self.embedded_total)
            self.rate = EmbedRate()
            self.rate.note(trio.current_time(), self.embedded_total)
            self._next_progress_log = trio.current_time() + PROGRESS_LOG_S
            log.info("embedding: %s chunk and commit texts to embed", f"{max(len(self.queue) + len(taken), 1):,}")
        self.state = "filling"
        texts = {h: todo.text for h, todo in taken if todo.text is not None}
        if unread := [h for h, todo in taken if todo.text is None]:
            try:
                texts.update(await trio.to_thread.run_sync(self._texts_of, unread))  # gone since: nothing to embed
            except Exception as exc:  # a damaged index is rebuilt, its chunks offered again as they are written
                if (damage := self.store.damage_error(exc, "reading texts to embed")) is None:
                    raise
                log.error("%s", damage)
        await self._embed(texts)
        now = trio.current_time()
        self.rate.note(now, self.embedded_total)
        if now >= self._next_progress_log:
            self._next_progress_log = now + PROGRESS_LOG_S
            log.info("embedding: %s", self._progress())

    def _progress(self) -> str:
        covered = self.coverage.total()
        described = self.describe()
        line = (
            f"{covered.chunks_embedded:,} of {covered.chunks:,} chunks have a vector ({covered.percent}%), "
            f"{described['waiting'] or 0:,} texts to go"
        )
        if described["rate_per_s"] is not None:
            line += f", {described['rate_per_s']:.1f} vectors/s"
        if described["eta_s"] is not None:
            line += f", about {_duration(described['eta_s'])} left"
        return line

    async def _embed(self, texts: dict[str, str]) -> None:
        """One call into the model per EMBED_CALL_TEXTS texts: a stop waits for one call at most."""
        hashes = list(texts)
        for start in range(0, len(hashes), EMBED_CALL_TEXTS):
            part = hashes[start : start + EMBED_CALL_TEXTS]
            call = partial(self.embedder.embed_documents, [texts[h] for h in part], stop=self._stopping.is_set)
            try:
                vectors = await trio.to_thread.run_sync(call, limiter=self.model_limiter)
            except EmbedStopped:
                await trio.lowlevel.checkpoint()  # raises the stop's cancellation
                return
            fresh = [h for h in dict.fromkeys(part) if h not in self.vectors]
            self.vectors.add(part, vectors)
            self.coverage.added(fresh)
            self._dirty = True
            self.embedded_total += len(fresh)

    async def _reconcile(self) -> None:
        """Queue every indexed chunk and commit without a vector; first forget the vectors
        nothing refers to, when that is worth it."""
        # During a rebuild the scan reads the rebuild, which holds only what has been synced into it.
        rebuilding = self.store.rebuilding
        try:
            missing, live = await trio.to_thread.run_sync(self._scan_index)
        except EmbedStopped:
            await trio.lowlevel.checkpoint()  # raises the stop's cancellation
            raise
        except Exception as exc:  # a damaged index is rebuilt, its chunks offered again as they are written
            if (damage := self.store.damage_error(exc, "the embedding backlog's scan")) is None:
                raise
            log.error("%s", damage)
            return
        if not rebuilding and trio.current_time() >= self._last_retain + RETAIN_MIN_INTERVAL:
            await self._retain(live | set(self.vectors.added_since(self._reconciled_rows)))
        self._reconciled_rows = len(self.vectors)
        for h, (kind, rank) in missing.items():
            self.queue.push(h, kind, None, rank=rank)
        if missing:
            log.info("embedding backlog: %s chunk and commit texts in the index have no vector", f"{len(missing):,}")

    async def _retain(self, keep: set[str]) -> None:
        dead = len(self.vectors) - sum(h in self.vectors for h in keep)
        if dead <= RETAIN_DEAD_SHARE * len(self.vectors):
            return
        self._last_retain = trio.current_time()
        try:
            await trio.to_thread.run_sync(self.vectors.retain, keep, limiter=self.model_limiter)
        except StoreError as exc:  # the store is unchanged: it stays larger, that is all
            log.error("%s", exc)
        self.coverage.recount()

    def _scan_index(self) -> tuple[dict[str, tuple[str, int]], set[str]]:
        """The hashes without a vector (with their kind and rank), and every hash the index
        refers to. Hashes only: the texts are read back a call's worth at a time."""
        missing: dict[str, tuple[str, int]] = {}
        live: set[str] = set()
        searcher = self.store.written_searcher()
        query = _embedded_kinds()
        total = searcher.search(query, limit=1, count=True).count
        if total:
            for i, (_, address) in enumerate(searcher.search(query, limit=total, count=False).hits):
                if i % 4096 == 0 and self._stopping.is_set():
                    raise EmbedStopped
                doc = searcher.doc(address)
                h = doc.get_first("content_hash")
                # A commit of an index from before schema 3 has none; its rebuild will.
                if h is None:
                    continue
                live.add(h)
                if h not in self.vectors:
                    kind = doc.get_first("doc_kind")
                    rank = COMMIT_RANK if kind == "commit" else embed_rank(doc.get_all("facet"))
                    if h not in missing or rank < missing[h][1]:
                        missing[h] = (kind, rank)
        return missing, live

    def _texts_of(self, hashes: Sequence[str]) -> dict[str, str]:
        searcher = self.store.written_searcher()
        texts = {}
        for h in hashes:
            query = tantivy.Query.boolean_query(
                [(tantivy.Occur.Must, q) for q in (_embedded_kinds(), tantivy.Query.term_query(SCHEMA, "content_hash", h))]
            )
            hits = searcher.search(query, limit=1).hits
            if hits:  # gone since the scan: nothing to embed
                texts[h] = _embedded_text(searcher.doc(hits[0][1]))
        return texts

    async def _save(self) -> None:
        if not self._dirty or self.vectors is None:
            return
        self._dirty = False
        try:
            await trio.to_thread.run_sync(self.vectors.save)
        except StoreError as exc:
            self._dirty = True
            log.error("%s", exc)


def _duration(seconds: float) -> str:
    seconds = max(0, math.ceil(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _embedded_kinds() -> tantivy.Query:
    return tantivy.Query.term_set_query(SCHEMA, "doc_kind", list(EMBEDDED_KINDS))


def _embedded_text(doc: tantivy.Document) -> str:
    """What the model sees for a stored chunk or commit: as `written_texts` gives it."""
    if doc.get_first("doc_kind") == "commit":
        return commit_text(doc.get_first("message") or "")
    c = stored_chunk(doc)
    return document_text(language=c.language, symbol_path=c.symbol_path, kind=c.kind, content=c.content)
