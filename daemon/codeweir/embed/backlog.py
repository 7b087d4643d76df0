"""The embed backlog: keeps the vector of every indexed chunk and commit message in the store, in
the background, what people search first first, and says truthfully how far it has come.

Lexical search covers a file as soon as its commit lands; this service follows. The writer
offers the chunks and commit messages it applies (`written_texts`) on a bounded
channel, never blocking. A task drains the channel at once, whatever the model is doing, into
a priority queue (`queue.EmbedQueue`: a watcher's or a hook's changes first, then source before
tests and the rest), which the embedder takes from a call's worth at a time.

No offer is lost. One that cannot reach the queue (the channel full; the model missing, failed
or disabled) is found again by a reconciliation, which reads the committed index for chunks and
commits without a vector (`index_scan.py`), run after the commit holding the offer has landed;
one the queue has no room for (it keeps 65,536 hashes without their text: a full sync of the
kernel offers 1.7 M), by one run once the queue has nothing to give. One also runs once the
model has loaded; it sees every hash the index still refers to, and when enough of the store is
dead (edited or deleted content) the store forgets the rest.

Semantic search answers from the vectors there are as soon as the model has loaded
(`loaded_model.LoadedModel`), and says how much of the index they cover (`Coverage`); a
previous model whose vectors are on disk serves instead until the configured one covers the
index, and once it does, the vectors of every other model are deleted. Vectors are saved
atomically every few seconds and on shutdown; `stop()` ends the work between two runs of the
model (tens of milliseconds).

The built-in model may not be installed yet: the service says so (naming `codeweir model
install`), and tries again when told (`model_installed()`, on reload) or every 30 s.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import trio

from codeweir.embed.coverage import Coverage, RepoCoverage
from codeweir.embed.index_scan import scan_index, texts_of
from codeweir.embed.loaded_model import (
    LoadedModel,
    delete_other_models,
    open_model,
    read_serving_spec,
    write_serving_spec,
)
from codeweir.embed.model_build import default_model_installed, find_or_build_model, missing_model_message
from codeweir.embed.progress import PROGRESS_LOG_S, EmbedRate, progress_line
from codeweir.embed.queue import COMMIT_RANK, EmbedItem, EmbedQueue, QueueEntry, embed_rank
from codeweir.embed.session import EmbedStopped
from codeweir.embedded_text import commit_text, document_text
from codeweir.errors import CodeweirError, ModelError, StoreError
from codeweir.index.vectors import VectorStore
from codeweir.index.writes import Write, WriteCommits, WriteFile

if TYPE_CHECKING:
    from codeweir.config import ModelConfig
    from codeweir.index.store import Store

log = logging.getLogger(__name__)

# Texts per call into the model (a stop ends a call between two runs of the model, see `stop`).
EMBED_CALL_TEXTS = 64
# While the built-in model is not installed, look again this often (and on every reload).
MISSING_MODEL_RETRY_S = 30.0
# A stop saves the vectors within this deadline (a save takes well under a second).
SAVE_DEADLINE_S = 5.0

# Forget dead vectors once they are this share of the store: forgetting rewrites the whole
# store, so each rewrite frees at least a tenth of it, and the dead never pass a tenth for long.
RETAIN_DEAD_SHARE = 0.1
# The writer offers a batch before it commits it (within Limits.commit_every_seconds, 2 s by
# default), so a vector may belong to a chunk not yet visible to the scan. Vectors added since
# the previous reconciliation are kept, and the store is not trimmed again sooner than this.
RETAIN_MIN_INTERVAL = 60.0


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
        self.model: LoadedModel | None = None  # the configured model, once loaded
        # What semantic search uses: the configured model, from the moment it loads, unless a
        # previous model's vectors are on disk: that one serves until the new one covers the index.
        self.serving: LoadedModel | None = None
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
    def vectors(self) -> VectorStore | None:
        """The configured model's vectors, once it has loaded."""
        return self.model.vectors if self.model is not None else None

    def release_pages(self) -> None:
        """Drop from the daemon's RSS the pages of vector segments that searches and merges
        have read (they stay in the page cache): a blocking call, for a thread."""
        for model in {id(m): m for m in (self.model, self.serving) if m is not None}.values():
            model.vectors.release_pages()

    @property
    def serving_vectors(self) -> VectorStore:
        """The vectors semantic search reads: ask once `ready`."""
        if self.serving is None:
            raise ModelError(self.unavailable_reason())
        return self.serving.vectors

    def describe(self) -> dict:
        now = trio.current_time()
        rate = self.rate.per_second(now) if self.state == "filling" else None
        model = self.model
        waiting = max(len(self.queue), self.coverage.texts_missing()) if model is not None else None
        return {
            "state": self.state,
            "error": self.error,
            "model": model.embedder.model_id if model else None,
            "provider": model.embedder.provider if model else None,
            "threads": model.embedder.threads if model else None,
            "vectors": len(model.vectors) if model is not None else 0,
            "serving": self.serving.embedder.model_id if self.serving else None,
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
        serving, model = self.serving, self.model
        if serving is None or model is None:  # the configured model loads before anything serves
            return None
        covered = self.coverage.total(repos)
        if serving is not model:
            return (
                f"semantic results come from the previous model {serving.embedder.model_id} until "
                f"{model.embedder.model_id} covers the index ({covered.percent}% so far)"
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
        if self.serving is None:  # not ready
            raise ModelError(self.unavailable_reason())
        return await trio.to_thread.run_sync(self.serving.embedder.embed_query, text, limiter=self._query_limiter)

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
                    if (model := await self._load_when_installed()) is not None:
                        await self._consume(model)
            except ModelError as exc:  # inference failed: lexical search goes on
                self.state, self.error = "failed", str(exc)
                log.error("embedding model: %s", exc)
            finally:
                self._idle.set()
                with trio.CancelScope(shield=True) as scope:
                    scope.deadline = trio.current_time() + SAVE_DEADLINE_S
                    await self._save()
                if self.model is not None:
                    log.info("embedding stopped: %s vectors saved", f"{len(self.model.vectors):,}")

    async def _drain(self) -> None:
        """The channel into the queue, as fast as the writer offers."""
        async for items in self.backlog:
            if self.state in ("disabled", "failed", "missing"):
                self._lost(max(item.after_commit for item in items))
                continue
            vectors = self.vectors
            queued = False
            for item in items:
                if vectors is None or item.content_hash not in vectors:
                    queued = True
                    self.queue.push(
                        item.content_hash,
                        item.kind,
                        item.text,
                        rank=item.rank,
                        interactive=item.interactive,
                        after_commit=item.after_commit,
                    )
            if queued and self.state == "ready":
                # Ready no longer: the status says so at once, not when the consumer next turns
                # (it may be saving the vectors first).
                self.state = "filling"
            self._wake.set()
        self.stop()  # the writer is done: the daemon is stopping

    async def _load_when_installed(self) -> LoadedModel | None:
        """Load the model; while the built-in one is not installed, wait for it. None: it cannot load."""
        while True:
            try:
                return await self._load()
            except CodeweirError as exc:
                builtin = not self.cfg.path and self.cfg.name == "default"
                if not builtin or await trio.to_thread.run_sync(default_model_installed, self.state_dir):
                    self.state, self.error = "failed", str(exc)
                    log.error("embedding model: %s", exc)
                    return None
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

    async def _load(self) -> LoadedModel:
        spec = await find_or_build_model(self.cfg, self.state_dir)
        self.model = model = await trio.to_thread.run_sync(open_model, self.cfg, self.state_dir, spec)
        self._reconciled_rows = len(model.vectors)  # saved by an earlier run: nothing in flight
        # From here on every commit's changes to the chunks' hashes are counted as it lands.
        counts = await trio.to_thread.run_sync(partial(self.store.chunk_hash_counts, stop=self._stopping.is_set))
        if counts is None:  # stopped meanwhile
            await trio.lowlevel.checkpoint()
        self.coverage.reset(counts or {}, model.vectors)
        self.coverage.changed(self.store.take_chunk_hash_changes())
        self.serving = model
        previous = await trio.to_thread.run_sync(read_serving_spec, self.state_dir)
        if previous is not None and previous.model_id != spec.model_id:
            try:
                self.serving = await trio.to_thread.run_sync(open_model, self.cfg, self.state_dir, previous)
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
        return model

    async def _covered(self, model: LoadedModel) -> None:
        """The configured model has a vector for every chunk and commit: it serves from now on."""
        self.state = "ready"
        if self._active_written and self.serving is model:
            return
        await self._save()
        await trio.to_thread.run_sync(write_serving_spec, self.state_dir, model.embedder.spec)
        self._active_written = True
        if self.serving is not model:
            self.serving = model
            log.info("semantic search now uses %s", model.embedder.model_id)
        await trio.to_thread.run_sync(delete_other_models, model.vectors)

    def _caught_up(self) -> bool:
        return (
            not self.reconcile_needed
            and not self._reconcile_at
            and not self.queue
            and self.queue.left_out_until is None
            and not self.backlog.statistics().current_buffer_used
        )

    async def _consume(self, model: LoadedModel) -> None:
        """Embed the queue, best first, a call at a time, until stopped."""
        next_save = trio.current_time() + self.save_every
        while True:
            self._wake = trio.Event()
            if self.reconcile_needed:
                self.reconcile_needed = False
                await self._reconcile(model)
            taken = self.queue.take(EMBED_CALL_TEXTS, commits=self.commits, done=model.vectors.__contains__)
            left_out = self.queue.left_out_until
            if not taken and left_out is not None and self.commits >= left_out and not self.queue.full:
                self.queue.left_out_until = None  # nothing to take now: find what the queue left out
                self._request_reconcile()
            if taken:
                await self._embed_taken(model, taken)
            elif self._caught_up():
                await self._caught_up_now(model)
            if not taken:
                with trio.move_on_at(next_save):
                    await self._wake.wait()
            if trio.current_time() >= next_save:
                await self._save()
                next_save = trio.current_time() + self.save_every

    async def _caught_up_now(self, model: LoadedModel) -> None:
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
        await self._covered(model)
        # A good moment to bring the ANN index up to date (nothing happens below its threshold).
        # The rows embedded since join it at the daemon's priority: each batch added holds
        # searches off for a few ms, longer if niced behind other work. An index built from nothing
        # (there is none, or `retain` renumbered the rows: a minute of CPU at a million vectors) is
        # niced like the embedding; searches use the old one, or score exactly, meanwhile.
        grow = partial(model.vectors.refresh_index, build=False, stop=self._stopping.is_set)
        await trio.to_thread.run_sync(grow, limiter=self.model_limiter)
        refresh = partial(model.vectors.refresh_index, stop=self._stopping.is_set)
        await trio.to_thread.run_sync(model.embedder.background.call, refresh, limiter=self.model_limiter)
        if self._caught_up():
            self._idle.set()

    async def _embed_taken(self, model: LoadedModel, taken: list[tuple[str, QueueEntry]]) -> None:
        if self._busy is None:
            self._busy = (trio.current_time(), self.embedded_total)
            self.rate = EmbedRate()
            self.rate.note(trio.current_time(), self.embedded_total)
            self._next_progress_log = trio.current_time() + PROGRESS_LOG_S
            waiting = max(len(self.queue) + len(taken), self.coverage.texts_missing(), 1)
            log.info("embedding: %s chunk and commit texts to embed", f"{waiting:,}")
        self.state = "filling"
        texts = {h: todo.text for h, todo in taken if todo.text is not None}
        if unread := [h for h, todo in taken if todo.text is None]:
            try:
                texts.update(await trio.to_thread.run_sync(texts_of, self.store, unread))  # gone since: nothing to embed
            except Exception as exc:  # a damaged index is rebuilt, its chunks offered again as they are written
                if (damage := self.store.damage_error(exc, "reading texts to embed")) is None:
                    raise
                log.error("%s", damage)
        await self._embed(model, texts)
        now = trio.current_time()
        self.rate.note(now, self.embedded_total)
        if now >= self._next_progress_log:
            self._next_progress_log = now + PROGRESS_LOG_S
            log.info("embedding: %s", self._progress())

    def _progress(self) -> str:
        described = self.describe()
        return progress_line(
            self.coverage.total(),
            waiting=described["waiting"] or 0,
            rate_per_s=described["rate_per_s"],
            eta_s=described["eta_s"],
        )

    async def _embed(self, model: LoadedModel, texts: dict[str, str]) -> None:
        """One call into the model per EMBED_CALL_TEXTS texts: a stop waits for one call at most."""
        hashes = list(texts)
        for start in range(0, len(hashes), EMBED_CALL_TEXTS):
            part = hashes[start : start + EMBED_CALL_TEXTS]
            call = partial(model.embedder.embed_documents, [texts[h] for h in part], stop=self._stopping.is_set)
            try:
                vectors = await trio.to_thread.run_sync(call, limiter=self.model_limiter)
            except EmbedStopped:
                await trio.lowlevel.checkpoint()  # raises the stop's cancellation
                return
            fresh = [h for h in dict.fromkeys(part) if h not in model.vectors]
            model.vectors.add(part, vectors)
            self.coverage.added(fresh)
            self._dirty = True
            self.embedded_total += len(fresh)

    async def _reconcile(self, model: LoadedModel) -> None:
        """Queue every indexed chunk and commit without a vector; first forget the vectors
        nothing refers to, when that is worth it."""
        # During a rebuild the scan reads the rebuild, which holds only what has been synced into it.
        rebuilding = self.store.rebuilding
        try:
            scan = partial(scan_index, self.store, model.vectors, self._stopping.is_set, limit=self.queue.max_hashes)
            found = await trio.to_thread.run_sync(scan)
        except EmbedStopped:
            await trio.lowlevel.checkpoint()  # raises the stop's cancellation
            raise
        except Exception as exc:  # a damaged index is rebuilt, its chunks offered again as they are written
            if (damage := self.store.damage_error(exc, "the embedding backlog's scan")) is None:
                raise
            log.error("%s", damage)
            return
        if not rebuilding and trio.current_time() >= self._last_retain + RETAIN_MIN_INTERVAL:
            await self._retain(model.vectors, found.live)
        self._reconciled_rows = len(model.vectors)
        for h, (kind, rank) in found.missing.items():
            self.queue.push(h, kind, None, rank=rank)
        if found.more:
            self.queue.left_out()
        if found.missing:
            log.info(
                "embedding backlog: %s chunk and commit texts in the index have no vector%s",
                f"{self.coverage.texts_missing() if found.more else len(found.missing):,}",
                f" ({len(found.missing):,} queued, the best first)" if found.more else "",
            )

    async def _retain(self, vectors: VectorStore, live: np.ndarray) -> None:
        """Forget the vectors whose hash is not in `live` (the index's, as sorted digests), but
        those added since the previous reconciliation, once they pass RETAIN_DEAD_SHARE."""
        at_least = int(RETAIN_DEAD_SHARE * len(vectors)) + 1
        retain = partial(vectors.retain, live, keep_from=self._reconciled_rows, at_least=at_least)
        try:
            if not await trio.to_thread.run_sync(retain, limiter=self.model_limiter):
                return
        except StoreError as exc:  # the store is unchanged: it stays larger, that is all
            log.error("%s", exc)
        self._last_retain = trio.current_time()
        self.coverage.recount()

    async def _save(self) -> None:
        if not self._dirty or self.model is None:
            return
        self._dirty = False
        try:
            await trio.to_thread.run_sync(self.model.vectors.save)
        except StoreError as exc:
            self._dirty = True
            log.error("%s", exc)
