"""Answering `search` requests: which search a request asks for, and running it.

Lexical, exact (quoted literals and regex) and symbol searches run on the index alone;
semantic and hybrid ones embed the query first and fuse the two rankings; commit searches
likewise. Every blocking call runs in a thread under the search limiter, and hits whose file
has changed since it was indexed are marked stale. The answer is a
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
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import attrs
import trio

from codeweir.errors import CodeweirError, RequestError
from codeweir.git.freshness import stale_paths
from codeweir.git.reading import read_whole_text
from codeweir.index.membership import MAIN
from codeweir.protocol_params import SearchParams
from codeweir.protocol_results import CommitHit, SearchHit, SearchResult
from codeweir.search.commits import CommitFilters, commit_visibility, search_commits, search_commits_by_meaning
from codeweir.search.filters import Filters, visible
from codeweir.search.lexical import required_words, search_lexical, search_symbols
from codeweir.search.patterns import Pattern, Regex, Substring
from codeweir.search.ranking import fuse_hybrid, reciprocal_rank_fusion
from codeweir.search.regex import ReadDraft, search_regex
from codeweir.search.semantic import search_definitions, search_semantic

if TYPE_CHECKING:
    from codeweir.config import RepoConfig
    from codeweir.embed.backlog import EmbeddingService
    from codeweir.index.store import Store
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
    ) -> None:
        self.store = store
        self.embedding = embedding
        self.limiter = limiter
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
            filters = await trio.to_thread.run_sync(self._visible_filters, query, params, limiter=self.limiter)
            notes += self._missing_refs(filters.repo, filters.refs)
            hits, more_notes = await self._search_by_meaning(mode, query, params, filters)
            results = tuple(await trio.to_thread.run_sync(self._finished, hits, filters.refs, limiter=self.limiter))
        else:
            # One thread call for the whole search, not three: while a sync keeps the cores and
            # the GIL busy, each hand-off between the event loop and a thread waits for both.
            filters, found, more_notes = await trio.to_thread.run_sync(
                self._search_index, mode, query, params, limiter=self.limiter
            )
            notes += self._missing_refs(filters.repo, filters.refs)
            results = tuple(found)
        return SearchResult(
            results=results,
            took_ms=round((trio.current_time() - started) * 1000, 2),
            mode=mode,
            notes=tuple(notes + more_notes),
        )

    def _visible_filters(self, query: Query, params: SearchParams) -> Filters:
        """The request's filters, with what its views leave out. Blocking: run in a thread."""
        return visible(self.store, request_filters(query, params))

    def _search_index(self, mode: str, query: Query, params: SearchParams) -> tuple[Filters, list[SearchHit], list[str]]:
        """A search the index answers alone (lexical, exact, regex, symbol), from the request's
        filters to its finished hits, with its notes. Blocking: run in a thread."""
        filters = self._visible_filters(query, params)
        hits, notes = plan_search(self.store, mode, query, params, filters=filters, read_draft=self.read_draft)()
        return filters, self._finished(hits, filters.refs), notes

    def _finished(self, hits: list[SearchHit], refs: tuple[str, ...]) -> list[SearchHit]:
        """The hits as answered: each naming the refs that hold its version, stale where its file
        changed since it was indexed. Blocking: run in a thread."""
        return self._mark_stale(self._with_refs(hits), refs)

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
            lexical = plan_search(self.store, "lexical", query, params, filters=filters, read_draft=self.read_draft)
            hits, notes = await trio.to_thread.run_sync(lexical, limiter=self.limiter)
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
        lexical_hits, lexical_notes = await trio.to_thread.run_sync(
            plan_search(self.store, "lexical", query, params, limit=wide, filters=filters, read_draft=self.read_draft),
            limiter=self.limiter,
        )
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

    def read_draft(self, name: str, path: str) -> str | None:
        """A draft's file as it is now (ingest/drafts.py): its text, or None where it cannot be
        read (gone since, or its repository no longer configured). Blocking: run in a thread."""
        repo = self.repo(name)
        if repo is None:
            return None
        try:
            return read_whole_text(repo, path)
        except CodeweirError:
            return None

    def _mark_stale(self, hits: list[SearchHit], refs: tuple[str, ...] = ()) -> list[SearchHit]:
        """Flag hits whose file has changed since it was indexed where the search saw it: in the
        repository (its worktree or ref) without refs; else on a wanted ref holding it, which
        now holds another version (or none) at its path. Blocking: run in a thread."""
        indexed: dict[tuple[str, str], dict[str, str]] = {}  # (repo, view) -> path -> blob
        for hit in hits:
            for view in [ref for ref in hit.refs if ref in refs] if refs else [MAIN]:
                indexed.setdefault((hit.repo, view), {})[hit.path] = hit.blob
        stale: set[tuple[str, str, str]] = set()
        for (name, view), blobs in indexed.items():
            repo = self.repo(name)
            if repo is None:
                continue
            try:
                paths = stale_paths(repo, blobs, view)
            except CodeweirError as exc:  # the repository is unreadable now: its hits stay unflagged
                log.warning("checking freshness: %s", exc)
                continue
            stale.update((name, path, blobs[path]) for path in paths)
        return [attrs.evolve(h, stale=True) if (h.repo, h.path, h.blob) in stale else h for h in hits]


def request_filters(query: Query, params: SearchParams) -> Filters:
    """The filters of a request: its query's, with those given as params."""
    return Filters.of(query, repo=params.repo, path=params.path, lang=params.lang, kind=params.kind, refs=params.refs)


def plan_search(
    store: Store,
    mode: str,
    query: Query,
    params: SearchParams,
    limit: int | None = None,
    *,
    filters: Filters | None = None,
    read_draft: ReadDraft | None = None,
) -> Callable[[], tuple[list, list[str]]]:
    """The blocking search a request asks for, as a call returning (hits, notes); `limit`, when
    given, replaces the request's (hybrid search asks the lexical half for more), and `filters`
    the request's (with its visibility computed once for all its searches). Exact, regex and
    lexical search read drafts with `read_draft` (search/regex.py)."""
    limit = params.limit if limit is None else limit
    explain = params.explain
    if filters is None:
        filters = request_filters(query, params)
    if mode == "symbol":
        name = query.symbol or query.text
        return lambda: (search_symbols(store, name, filters, limit, explain=explain), [])
    if mode == "regex":
        if not query.pattern:
            raise RequestError("query: regex mode needs a pattern (filters go before or after it)")
        case_sensitive = _case_sensitive(query.case, params.case_sensitive, [re.sub(r"\\.", "", query.pattern)])
        regex = query.pattern

        def patterns() -> list[Pattern]:
            return [Regex(regex, case_sensitive=case_sensitive)]

    elif query.literals:
        case_sensitive = _case_sensitive(query.case, params.case_sensitive, query.literals)
        literals = query.literals

        def patterns() -> list[Pattern]:
            return [Substring(literal, case_sensitive=case_sensitive) for literal in literals]

    elif query.words:
        return lambda: _lexical(store, query, filters, limit, explain=explain, read_draft=read_draft)
    else:
        raise RequestError('query: nothing to search for; give words, a "quoted literal" or sym:Name')
    words = required_words(query.text)

    def exact() -> tuple[list, list[str]]:
        # Compiled in the thread: a long pattern's analysis is work too.
        result = search_regex(
            store, patterns(), filters, limit, case_sensitive=case_sensitive, words=words, explain=explain, read_draft=read_draft
        )
        return result.hits, result.notes

    return exact


DRAFTS_NOTE = "files a sync has not chunked yet follow, matched by their text: each word anywhere in the file, any case"


def _lexical(
    store: Store, query: Query, filters: Filters, limit: int, *, explain: bool, read_draft: ReadDraft | None
) -> tuple[list, list[str]]:
    """Lexical search; while a large sync's drafts stand (ingest/drafts.py), the drafts that
    hold every word follow the chunks' hits, a line of each."""
    hits = search_lexical(store, query.text, filters, limit, explain=explain)
    if len(hits) >= limit or read_draft is None or not store.drafting:
        return hits, []
    words = [Substring(word, case_sensitive=False) for word in query.words]
    drafted = search_regex(
        store, words, filters, limit - len(hits), case_sensitive=False, read_draft=read_draft, drafts="only", lines_per_chunk=1
    )
    return hits + drafted.hits, [DRAFTS_NOTE] if drafted.hits else []


def _case_sensitive(case: str | None, default: bool, texts: Sequence[str]) -> bool:
    """case:yes / case:no, or case:auto (sensitive when the text searched for has a capital), or the request's."""
    if case == "auto":
        return any(c.isupper() for text in texts for c in text)
    return default if case is None else case == "yes"


def _chunk_of(hit: SearchHit) -> tuple[str, str, str, int]:
    return hit.repo, hit.path, hit.blob, hit.start_line
