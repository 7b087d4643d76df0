"""Answering `search` requests: which search a request asks for, and running it.

Lexical, exact (quoted literals and regex) and symbol searches run on the index alone, in a
search worker process (search/index_search.py); semantic and hybrid ones embed the query first
and fuse the two rankings; commit searches likewise. The daemon's other blocking calls run in a
thread under the search limiter, and hits whose file has changed since it was indexed are
marked stale. The answer is a
`protocol_results.SearchResult` of the protocol's own hits, which the server's converter turns
into what the socket sends.

A request sees one view of each repository: the main view, or those of the refs it names
(`ref:`, the `ref` param). What they leave out is computed once per request (filters.visible)
and every search of the request leaves it out; each hit then names the refs holding its version
(`SearchHit.refs`), and its freshness is checked where it was seen: the worktree (or the
repository's ref) for the main view, the ref itself for a ref's view.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs
import trio

from codeweir.errors import RequestError
from codeweir.index.membership import MAIN
from codeweir.protocol_params import SearchParams
from codeweir.protocol_results import CommitHit, SearchHit, SearchResult
from codeweir.search.commits import CommitFilters, commit_visibility, search_commits, search_commits_by_meaning
from codeweir.search.filters import Filters, request_filters, visible
from codeweir.search.freshness import mark_stale
from codeweir.search.ranking import fuse_hybrid, reciprocal_rank_fusion
from codeweir.search.semantic import search_definitions, search_semantic

if TYPE_CHECKING:
    from codeweir.config import RepoConfig
    from codeweir.embed.backlog import EmbeddingService
    from codeweir.index.store import Store
    from codeweir.search.index_search import SearchWorkers
    from codeweir.search.query import Query

log = logging.getLogger(__name__)
MAX_NAMED_REFS = 20  # refs a note about a missing one names


class SearchRequests:
    def __init__(
        self,
        store: Store,
        embedding: EmbeddingService,
        limiter: trio.CapacityLimiter,
        repo: Callable[[str], RepoConfig | None],
        workers: SearchWorkers,
    ) -> None:
        self.store = store
        self.embedding = embedding
        self.limiter = limiter
        self.workers = workers
        self.repo = repo  # the configured repository of a name, as of now (reloads change it)

    async def answer(self, query: Query, params) -> SearchResult:
        mode = "symbol" if query.symbol is not None else params.mode
        notes: list[str] = []
        started = trio.current_time()
        results: tuple[SearchHit, ...] | tuple[CommitHit, ...]
        if mode == "commits":
            commits, more_notes = await self._search_commits(query, params)
            results = tuple(commits)
            notes += self._missing_refs(params.repo or query.repo, params.refs or query.refs)
        elif mode in ("hybrid", "semantic"):
            filters = await self._visible_filters(query, params)
            notes += self._missing_refs(filters.repo, filters.refs)
            hits, more_notes = await self._search_by_meaning(mode, query, params, filters)
            results = tuple(await trio.to_thread.run_sync(self._finished, hits, filters.refs, limiter=self.limiter))
        else:
            # No thread hands the search on where the daemon knows its visibility and the worker
            # checks its hits' freshness (the main view's): while a sync runs, each hand-off waits
            # for the GIL the sync's Python holds.
            filters = await self._visible_filters(query, params)
            found, more_notes = await self._search_index(mode, query, params, filters)
            notes += self._missing_refs(filters.repo, filters.refs)
            if filters.refs:
                found = await trio.to_thread.run_sync(self._finished, found, filters.refs, limiter=self.limiter)
            else:
                found = self._with_refs(found)
            results = tuple(found)
        return SearchResult(
            results=results,
            took_ms=round((trio.current_time() - started) * 1000, 2),
            mode=mode,
            notes=tuple(notes + more_notes),
        )

    async def _visible_filters(self, query: Query, params: SearchParams) -> Filters:
        """The request's filters, with what its views leave out: known since the last commit, or
        worked out in a thread (it may read versions' chunk tables from the index)."""
        filters = request_filters(query, params)
        if (seen := self.store.known_visibility(filters.repo, filters.refs)) is not None:
            return attrs.evolve(filters, visibility=seen)
        return await trio.to_thread.run_sync(visible, self.store, filters, limiter=self.limiter)

    async def _search_index(
        self, mode: str, query: Query, params: SearchParams, filters: Filters, limit: int | None = None
    ) -> tuple[list[SearchHit], list[str]]:
        """A search the index answers alone (lexical, exact, regex, symbol), in a search worker:
        its hits, unfinished, and its notes."""
        # Where the worker reads a draft's file and checks a hit's freshness.
        repos = {name: repo for name in self.store.membership.repos() if (repo := self.repo(name)) is not None}
        return await self.workers.search(self.store, repos, mode, query, params, filters, limit)

    def _finished(self, hits: list[SearchHit], refs: tuple[str, ...]) -> list[SearchHit]:
        """The hits as answered: each naming the refs that hold its version, stale where its file
        changed since it was indexed. Blocking: run in a thread."""
        return mark_stale(self._with_refs(hits), refs, self.repo)

    def _missing_refs(self, repo: str | None, refs: tuple[str, ...]) -> list[str]:
        """A note naming the wanted refs that no repository searched has indexed."""
        if not refs:
            return []
        membership = self.store.membership
        indexed = sorted({view for name in ([repo] if repo else membership.repos()) for view in membership.views(name)} - {MAIN})
        missing = ", ".join(repr(ref) for ref in refs if ref not in indexed)
        if not missing:
            return []
        who = f"repository {repo!r} has no" if repo else "no repository has"
        known = ", ".join(indexed[:MAX_NAMED_REFS]) + (", …" if len(indexed) > MAX_NAMED_REFS else "")
        return [f"{who} ref {missing} indexed (refs indexed: {known or 'none'}; a repository's refs are set in its config)"]

    def _with_refs(self, hits: list[SearchHit]) -> list[SearchHit]:
        """Each hit with the refs whose views hold its version."""
        membership = self.store.membership
        out = []
        for hit in hits:
            refs = tuple(view for view in membership.holders(hit.repo, hit.path, hit.blob) if view != MAIN)
            out.append(attrs.evolve(hit, refs=refs) if refs != hit.refs else hit)
        return out

    async def _search_by_meaning(self, mode: str, query, params, filters: Filters) -> tuple[list[SearchHit], list[str]]:
        """Semantic, or hybrid: lexical, semantic and definitions named by the query fused by reciprocal rank."""
        if not self.embedding.ready:
            if mode == "semantic":
                raise RequestError(self.embedding.unavailable_reason(), code=-32000)
            hits, notes = await self._search_index("lexical", query, params, filters)
            return hits, [*notes, self.embedding.unavailable_reason() + "; showing lexical results"]
        text = " ".join(query.words + query.literals) or params.query
        vector = await self.embedding.embed_query(text)
        wide = max(params.limit * 3, 30)
        semantic = await trio.to_thread.run_sync(
            search_semantic,
            self.store,
            self.embedding.serving_vectors,
            vector,
            filters,
            wide if mode == "hybrid" else params.limit,
            limiter=self.limiter,
        )
        # What the vectors there are cover, when not every chunk: the answer never waits for them.
        covered = self.embedding.coverage_note([filters.repo] if filters.repo else None)
        notes = [covered] if covered else []
        if mode == "semantic":
            return semantic, notes
        # The lexical half ranks `wide` hits: more than a request may ask for (`params.limit` is
        # checked against the protocol's bound, and evolving params would check `wide` again).
        lexical_hits, lexical_notes = await self._search_index("lexical", query, params, filters, wide)
        definitions = await trio.to_thread.run_sync(search_definitions, self.store, text, filters, wide, limiter=self.limiter)
        if query.literals:  # a quoted literal binds every half: only chunks that hold it, which the exact half found
            exact = {_chunk_of(hit) for hit in lexical_hits}
            semantic = [hit for hit in semantic if _chunk_of(hit) in exact]
            definitions = [hit for hit in definitions if _chunk_of(hit) in exact]
        return fuse_hybrid(lexical_hits, semantic, definitions, params.limit), notes + lexical_notes

    async def _search_commits(self, query, params) -> tuple[list[CommitHit], list[str]]:
        """Commits by words, fused by reciprocal rank with commits by meaning once the model is
        ready (the filters apply to both); newest first when the query has no words. Only the
        commits of the views searched: reachable from the main view's commit, or a wanted ref's."""
        filters = CommitFilters.of(query, repo=params.repo, path=params.path, refs=params.refs)
        filters = await trio.to_thread.run_sync(commit_visibility, self.store, filters, self.repo, limiter=self.limiter)
        text = " ".join((*query.words, *query.literals))
        by_meaning = bool(text) and self.embedding.ready
        wide = max(params.limit * 3, 30) if by_meaning else params.limit
        lexical = await trio.to_thread.run_sync(search_commits, self.store, text, filters, wide, limiter=self.limiter)
        if not text:
            return lexical, []
        if not by_meaning:
            return lexical, [self.embedding.unavailable_reason() + "; showing lexical results"]
        vector = await self.embedding.embed_query(text)
        vectors, limiter = self.embedding.serving_vectors, self.limiter
        semantic = await trio.to_thread.run_sync(
            search_commits_by_meaning, self.store, vectors, vector, filters, wide, limiter=limiter
        )
        notes = []
        if waiting := self.embedding.waiting("commit"):
            notes.append(f"{waiting} commit messages are not embedded yet; semantic results cover the rest")
        fused = reciprocal_rank_fusion([lexical, semantic], params.limit, identity=lambda hit: (hit.repo, hit.sha))
        return fused, notes


def _chunk_of(hit: SearchHit) -> tuple[str, str, str, int]:
    return hit.repo, hit.path, hit.blob, hit.start_line
