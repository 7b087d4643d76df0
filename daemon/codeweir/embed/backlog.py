"""The embed backlog consumer: keeps the vector of every indexed chunk and commit message in
the store, in the background.

Lexical search covers a file as soon as its commit lands; this service follows: the writer
offers the chunks and commit messages it writes on a bounded channel (never blocking: when
the channel is full it asks for a reconciliation instead), and the consumer embeds what has
no vector for the active model. At start, and after an overflow, a reconciliation pass walks
the index for chunks and commits without a vector; it also sees every hash the index still
refers to, and when enough of the store is dead (edited or deleted content) the store forgets
the rest. Vectors are saved atomically every few seconds and on shutdown. Once the configured
model covers the index, the vectors of every other model are deleted.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import cattrs
import numpy as np
import tantivy
import trio

from codeweir.embed.model_build import ModelSpec, ensure_model
from codeweir.embed.session import Embedder
from codeweir.embedded_text import commit_text, document_text
from codeweir.errors import CodeweirError, ModelError, StoreError
from codeweir.host.durable import write_atomic
from codeweir.index.store import SCHEMA, Store, stored_chunk
from codeweir.index.vectors import VectorStore
from codeweir.index.writes import Write, WriteCommits, WriteFile

if TYPE_CHECKING:
    from codeweir.config import ModelConfig

log = logging.getLogger(__name__)

_spec_converter = cattrs.Converter(forbid_extra_keys=True)
_spec_converter.register_structure_hook(Path, lambda value, _: Path(value))
_spec_converter.register_unstructure_hook(Path, str)

ACTIVE_MODEL_FILE = "serving-model.json"
# Texts per call into the model: small enough that a query waits little behind a batch.
EMBED_CALL_TEXTS = 64


EMBEDDED_KINDS = ("chunk", "commit")  # the document kinds that have a vector

# Forget dead vectors once they are this share of the store: forgetting rewrites the whole
# store, so each rewrite frees at least a tenth of it, and the dead never pass a tenth for long.
RETAIN_DEAD_SHARE = 0.1
# The writer offers a batch before it commits it (within Limits.commit_every_seconds, 2 s by
# default), so a vector may belong to a chunk not yet visible to the scan. Vectors added since
# the previous reconciliation are kept, and the store is not trimmed again sooner than this.
RETAIN_MIN_INTERVAL = 60.0
_DELETED_SUFFIX = ".deleted"  # a model directory being removed; a leading dot: no model id


@attrs.frozen
class EmbedItem:
    repo: str
    kind: str  # one of EMBEDDED_KINDS
    content_hash: str
    text: str


def written_texts(write: Write) -> list[EmbedItem]:
    """What the writer offers for one applied write: a file's chunks, or a batch's commit messages."""
    if isinstance(write, WriteFile):
        record = write.record
        return [
            EmbedItem(
                record.repo,
                "chunk",
                h,
                document_text(language=record.language, symbol_path=c.symbol_path, kind=c.kind, content=c.content),
            )
            for c, h in zip(record.chunks, record.content_hashes, strict=True)
        ]
    if isinstance(write, WriteCommits):
        return [EmbedItem(write.repo, "commit", c.content_hash, commit_text(c.message)) for c in write.commits]
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
        self.state = "disabled" if not cfg.enabled else "loading"
        self.error: str | None = None
        self.embedder: Embedder | None = None
        self.vectors: VectorStore | None = None
        # What semantic search uses: the configured model once it covers the index; until
        # then the previous model, if its vectors are on disk (a model switch without downtime).
        self.serving: tuple[Embedder, VectorStore] | None = None
        # content hash -> documents (per repository and kind) still waiting for a vector
        self.pending: dict[str, Counter[tuple[str, str]]] = {}
        self.reconcile_needed = True
        # Rows of the store added since the previous reconciliation start here (see RETAIN_MIN_INTERVAL).
        self._reconciled_rows = 0
        self._last_retain = -float("inf")
        self._dirty = False
        self._model_limiter = model_limiter
        self._query_limiter = query_limiter
        self.embedded_total = 0
        self._idle = trio.Event()

    # -- for other tasks ------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Semantic search can be answered (maybe by the previous model, while this one fills)."""
        return self.serving is not None

    @property
    def serving_vectors(self) -> VectorStore:
        return self.serving[1]

    def describe(self) -> dict:
        return {
            "state": self.state,
            "error": self.error,
            "model": self.embedder.model_id if self.embedder else None,
            "provider": self.embedder.provider if self.embedder else None,
            "vectors": len(self.vectors) if self.vectors is not None else 0,
            "serving": self.serving[0].model_id if self.serving else None,
        }

    def pending_for(self, repo: str, kind: str = "chunk") -> int:
        return sum(c.get((repo, kind), 0) for c in self.pending.values())

    def waiting(self, kind: str) -> int:
        """Documents of this kind, in every repository, still waiting for a vector."""
        return sum(n for c in self.pending.values() for (_, k), n in c.items() if k == kind)

    def offer(self, backlog: trio.MemorySendChannel[list[EmbedItem]], written: Sequence[Write]) -> None:
        """The writer's side, after it applies writes: never blocks; on overflow, reconcile later."""
        if self.state in ("disabled", "failed"):
            return
        items = [item for write in written for item in written_texts(write)]
        if not items:
            return
        if self._idle.is_set():
            self._idle = trio.Event()
        try:
            backlog.send_nowait(items)
        except trio.WouldBlock:
            self.reconcile_needed = True

    async def wait_idle(self) -> None:
        """Until every chunk and commit offered so far has a vector (or the model failed to load)."""
        await self._idle.wait()

    async def embed_query(self, text: str) -> np.ndarray:
        if not self.ready:
            raise ModelError(self.unavailable_reason())
        return await trio.to_thread.run_sync(self.serving[0].embed_query, text, limiter=self._query_limiter)

    def unavailable_reason(self) -> str:
        if self.state == "failed":
            return f"semantic search is unavailable: {self.error}"
        if self.state == "disabled":
            return "semantic search is disabled in the config ([model] enabled = false)"
        return "semantic search is not ready yet: the embedding model is loading"

    # -- the service ----------------------------------------------------------------------------

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        # Started at once: the model may take a while to build, and lexical search needs none of it.
        task_status.started()
        async with self.backlog:
            if not self.cfg.enabled:
                self._idle.set()
                async for _ in self.backlog:  # keep the writer's offers flowing nowhere
                    pass
                return
            try:
                await self._load()
            except CodeweirError as exc:
                self.state, self.error = "failed", str(exc)
                log.error("embedding model: %s", exc)
                self._idle.set()
                async for _ in self.backlog:
                    pass
                return
            try:
                await self._consume()
            finally:
                with trio.CancelScope(shield=True) as scope:
                    scope.deadline = trio.current_time() + 10
                    await self._save()

    async def _load(self) -> None:
        spec = await trio.to_thread.run_sync(ensure_model, self.cfg, self.state_dir)
        self.embedder, self.vectors = await trio.to_thread.run_sync(self._open, spec)
        self._reconciled_rows = len(self.vectors)  # saved by an earlier run: nothing in flight
        self.state = "filling"
        previous = await trio.to_thread.run_sync(self._read_active)
        if previous is not None and previous.model_id != spec.model_id:
            try:
                self.serving = await trio.to_thread.run_sync(self._open, previous)
                log.info("semantic search stays on %s until %s covers the index", previous.model_id, spec.model_id)
            except CodeweirError as exc:
                log.warning("previous model %s cannot serve meanwhile: %s", previous.model_id, exc)

    def _open(self, spec: ModelSpec) -> tuple[Embedder, VectorStore]:
        embedder = Embedder(spec, provider=self.cfg.provider, threads=self.cfg.threads)
        return embedder, VectorStore(self.state_dir / "vectors", spec.model_id, spec.dim)

    def _active_file(self) -> Path:
        return self.state_dir / "vectors" / ACTIVE_MODEL_FILE

    def _read_active(self) -> ModelSpec | None:
        try:
            return _spec_converter.structure(json.loads(self._active_file().read_text()), ModelSpec)
        except (OSError, ValueError, cattrs.BaseValidationError):
            return None

    async def _covered(self) -> None:
        """The configured model has a vector for every chunk: it serves from now on."""
        if self.serving is not None and self.serving[0] is self.embedder:
            return
        await self._save()
        data = json.dumps(_spec_converter.unstructure(self.embedder.spec)).encode()
        await trio.to_thread.run_sync(write_atomic, self._active_file(), data)
        self.serving = (self.embedder, self.vectors)
        self.state = "ready"
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

    async def _consume(self) -> None:
        next_save = trio.current_time() + self.save_every
        while True:
            if self.reconcile_needed:
                self.reconcile_needed = False
                await self._reconcile()
            if not self.pending and not self.backlog.statistics().current_buffer_used:
                await self._covered()
                # The backlog is drained: a good moment to bring the ANN index up to date (it
                # does nothing below its threshold or while the index is fresh enough), niced
                # like the embedding: it takes seconds of CPU on a large store.
                await trio.to_thread.run_sync(
                    self.embedder.background.call, self.vectors.refresh_index, limiter=self._model_limiter
                )
                self._idle.set()
            with trio.move_on_at(next_save):
                try:
                    items = await self.backlog.receive()
                except trio.EndOfChannel:
                    return
                await self._embed_items(items)
            if trio.current_time() >= next_save:
                await self._save()
                next_save = trio.current_time() + self.save_every

    async def _embed_items(self, items: Sequence[EmbedItem]) -> None:
        todo: dict[str, str] = {}
        for item in items:
            if item.content_hash not in self.vectors:
                self.pending.setdefault(item.content_hash, Counter())[item.repo, item.kind] += 1
                todo.setdefault(item.content_hash, item.text)
        await self._embed(todo)

    async def _embed(self, todo: dict[str, str]) -> None:
        hashes = list(todo)
        for start in range(0, len(hashes), EMBED_CALL_TEXTS):
            part = hashes[start : start + EMBED_CALL_TEXTS]
            vectors = await trio.to_thread.run_sync(
                self.embedder.embed_documents, [todo[h] for h in part], limiter=self._model_limiter
            )
            self.vectors.add(part, vectors)
            self._dirty = True
            self.embedded_total += len(part)
            for h in part:
                self.pending.pop(h, None)

    async def _reconcile(self) -> None:
        """Find every indexed chunk and commit without a vector, then embed them page by page;
        first forget the vectors nothing refers to, when that is worth it."""
        # During a rebuild the scan reads the old index, and the rebuild's new hashes are not in it.
        rebuilding = self.store.rebuilding
        missing, live = await trio.to_thread.run_sync(self._scan_index)
        if not rebuilding and trio.current_time() >= self._last_retain + RETAIN_MIN_INTERVAL:
            await self._retain(live | set(self.vectors.added_since(self._reconciled_rows)))
        self._reconciled_rows = len(self.vectors)
        self.pending = missing
        hashes = list(missing)
        log.info("embedding backlog: %d chunk and commit texts without a vector", len(hashes))
        for start in range(0, len(hashes), EMBED_CALL_TEXTS * 8):
            part = [h for h in hashes[start : start + EMBED_CALL_TEXTS * 8] if h not in self.vectors]
            texts = await trio.to_thread.run_sync(self._texts_of, part)
            await self._embed(texts)

    async def _retain(self, keep: set[str]) -> None:
        dead = len(self.vectors) - sum(h in self.vectors for h in keep)
        if dead <= RETAIN_DEAD_SHARE * len(self.vectors):
            return
        self._last_retain = trio.current_time()
        try:
            await trio.to_thread.run_sync(self.vectors.retain, keep, limiter=self._model_limiter)
        except StoreError as exc:  # the store is unchanged: it stays larger, that is all
            log.error("%s", exc)

    def _scan_index(self) -> tuple[dict[str, Counter[tuple[str, str]]], set[str]]:
        """The hashes without a vector, and every hash the index refers to. Hashes only: the
        texts are read back a page at a time, so a long history costs little."""
        missing: dict[str, Counter[tuple[str, str]]] = {}
        live: set[str] = set()
        searcher = self.store.searcher()
        query = _embedded_kinds()
        total = searcher.search(query, limit=1, count=True).count
        if total:
            for _, address in searcher.search(query, limit=total, count=False).hits:
                doc = searcher.doc(address)
                h = doc.get_first("content_hash")
                # A commit of an index from before schema 3 has none; its rebuild will.
                if h is None:
                    continue
                live.add(h)
                if h not in self.vectors:
                    missing.setdefault(h, Counter())[doc.get_first("repo"), doc.get_first("doc_kind")] += 1
        return missing, live

    def _texts_of(self, hashes: Sequence[str]) -> dict[str, str]:
        searcher = self.store.searcher()
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


def _embedded_kinds() -> tantivy.Query:
    return tantivy.Query.term_set_query(SCHEMA, "doc_kind", list(EMBEDDED_KINDS))


def _embedded_text(doc: tantivy.Document) -> str:
    """What the model sees for a stored chunk or commit: as `written_texts` gives it."""
    if doc.get_first("doc_kind") == "commit":
        return commit_text(doc.get_first("message") or "")
    c = stored_chunk(doc)
    return document_text(language=c.language, symbol_path=c.symbol_path, kind=c.kind, content=c.content)
