"""The searches the index answers alone (lexical, exact, regex, symbol): planned from a request,
and run in a search worker process.

A search worker is a process of the daemon's (trio-parallel's, `run_daemon` opens their
context) that opens the index itself, read-only, and runs these searches there. In the daemon
they shared its GIL with the sync's Python (the writer's, the event loop's) and waited for it
at each of their Tantivy calls: during a full sync of go-std their p99 rose to 2.3-2.9x its
idle value, against 1.2-1.5x from a worker (bench/README.md). The daemon still works out what
the request's views leave out (`filters.visible`, from the views in its memory) and finishes
the hits (the refs holding each, freshness); the worker gets the filters with it, reads the
index as of its last commit, and reads a draft's file itself (ingest/drafts.py).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import tantivy
import trio
import trio_parallel

from codeweir.errors import CodeweirError, RequestError
from codeweir.git.reading import read_whole_text
from codeweir.host.memory import ReleaseCadence, mapped_resident_bytes, release_mapped_pages
from codeweir.index.disk import failure_reason, tantivy_failure
from codeweir.index.schema import open_index_to_read
from codeweir.protocol_params import SearchParams
from codeweir.protocol_results import SearchHit
from codeweir.search.filters import Filters, IndexReader, request_filters
from codeweir.search.freshness import mark_stale
from codeweir.search.lexical import required_words, search_lexical, search_symbols
from codeweir.search.patterns import Pattern, Regex, Substring
from codeweir.search.regex import ReadDraft, search_regex

if TYPE_CHECKING:
    from codeweir.config import RepoConfig
    from codeweir.index.membership import Visibility
    from codeweir.index.store import Store
    from codeweir.search.query import Query

log = logging.getLogger(__name__)


@attrs.frozen
class IndexSearch:
    """One search for a worker: what the request asks, with the filters its views leave out, and
    where the index is (`opened`: `Store.index_opened`, which tells a new index in the same
    directory apart) as of which commit (`commits`: `Store.commits`). `repos`: where each
    repository is, to read a draft's file and check a hit's freshness."""

    directory: str
    opened: int
    commits: int
    mode: str
    query: Query
    params: SearchParams
    filters: Filters
    limit: int | None = None
    drafting: bool = False
    repos: Mapping[str, RepoConfig] = attrs.field(factory=dict)


@attrs.frozen
class SearchWorkers:
    """The daemon's search worker processes (their context, opened by `run_daemon`) and how many
    of them search at once."""

    context: trio_parallel.WorkerContext
    limiter: trio.CapacityLimiter

    async def search(
        self,
        store: Store,
        repos: Mapping[str, RepoConfig],
        mode: str,
        query: Query,
        params: SearchParams,
        filters: Filters,
        limit: int | None = None,
    ) -> tuple[list[SearchHit], list[str]]:
        """A search of the index `store` writes, in a worker: its hits, fresh or stale as the
        main view sees them (a ref's the caller checks), and its notes. `repos`: where each
        repository is (its drafts' files, its hits' freshness)."""
        where = (str(store.read_directory), store.index_opened, store.commits)
        return await self.run(IndexSearch(*where, mode, query, params, filters, limit, store.drafting, repos))

    async def run(self, search: IndexSearch) -> tuple[list[SearchHit], list[str]]:
        try:
            return await self.context.run_sync(search_in_worker, search, limiter=self.limiter)
        except trio_parallel.BrokenWorkerError:  # killed, or out of memory: once more, in a new one
            return await self.context.run_sync(search_in_worker, search, limiter=self.limiter)

    async def start(self) -> None:
        """Start a worker, so that the first search does not wait for one (about half a second).
        One that cannot start is logged: each search tries again, and answers why it failed."""
        try:
            await self.context.run_sync(_started, limiter=self.limiter)
        except (OSError, trio_parallel.BrokenWorkerError) as exc:
            log.warning("a search worker did not start: %s", exc)


def _started() -> None:
    """Run in a new worker: importing this module is its start."""


def search_in_worker(search: IndexSearch) -> tuple[list[SearchHit], list[str]]:
    """`search` run in this process, on its own opening of the index: (hits, notes). Blocking."""
    reader = _reader(search)
    read_draft = (lambda name, path: read_draft_text(search.repos, name, path)) if search.drafting else None
    try:
        planned = plan_search(
            reader, search.mode, search.query, search.params, search.limit, filters=search.filters, read_draft=read_draft
        )
        hits, notes = planned()
    except BaseException as exc:
        # Tantivy's panics do not pickle; the daemon tells damage from the error's text alike.
        if tantivy_failure(exc) and not isinstance(exc, Exception):
            raise ValueError(failure_reason(exc)) from None
        raise
    finally:
        _RELEASES.after(search)
    # A ref's view is checked where it is held, which the daemon's views say (SearchRequests).
    return (hits if search.filters.refs else mark_stale(hits, (), search.repos.get)), notes


def read_draft_text(repos: Mapping[str, RepoConfig], name: str, path: str) -> str | None:
    """A draft's file as it is now (ingest/drafts.py): its text, or None where it cannot be
    read (gone since, or its repository no longer configured). Blocking."""
    repo = repos.get(name)
    if repo is None:
        return None
    try:
        return read_whole_text(repo, path)
    except CodeweirError:
        return None


@attrs.define
class _OpenIndex:
    """A worker's reading of the index: `IndexReader` for the searches."""

    index: tantivy.Index
    opened: int
    commits: int = -1
    drafting: bool = False

    def searcher(self) -> tantivy.Searcher:
        return self.index.searcher()

    def visibility(self, repo: str | None, refs: tuple[str, ...] = ()) -> Visibility:
        raise RequestError("a search worker is handed its filters' visibility by the daemon", code=-32603)


_OPEN: dict[str, _OpenIndex] = {}  # this worker's index readings, by directory


def _reader(search: IndexSearch) -> _OpenIndex:
    reading = _OPEN.get(search.directory)
    if reading is None or reading.opened != search.opened:
        reading = _OPEN[search.directory] = _OpenIndex(open_index_to_read(Path(search.directory)), search.opened)
    if reading.commits != search.commits:
        # The last commit, as the daemon's visibility is. Not at every search: a reload opens
        # every segment's readers anew, and a search on new readers takes twice as long.
        reading.index.reload()
        reading.commits = search.commits
    reading.drafting = search.drafting
    return reading


@attrs.define
class _PageReleases:
    """The index pages this worker's searches read leave its RSS as the daemon's do, and as often
    (host/memory.ReleaseCadence: looked at after a search, at the cadence's intervals)."""

    cadence: ReleaseCadence = attrs.field(factory=ReleaseCadence)
    _next_look: float = float("-inf")

    def after(self, search: IndexSearch) -> None:
        now = time.monotonic()
        if now < self._next_look:
            return
        self._next_look = now + self.cadence.interval(search.commits, now)
        if self.cadence.due(mapped_resident_bytes()):
            release_mapped_pages(Path(search.directory))
            self.cadence.released(mapped_resident_bytes())


_RELEASES = _PageReleases()


def plan_search(
    store: IndexReader,
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
    store: IndexReader, query: Query, filters: Filters, limit: int, *, explain: bool, read_draft: ReadDraft | None
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
