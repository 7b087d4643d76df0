"""The control API's reading methods: `read` (lines of a file) and `refs` (references to an
identifier), and what `search` does around the search itself: paging by cursor
(search/paging.py) and context lines (search/context.py).

Only configured repositories are reached, and only the files the index holds for them: `read`
refuses a path the index does not know (an ignored or excluded file, `.git/config`, a path with
`..` or an absolute one) before anything is opened, and a worktree file is opened beneath the
root with no symlink followed (git/reading.py). Nothing here makes the daemon index anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
import trio

from codeweir.errors import CodeweirError, RequestError
from codeweir.git.freshness import stale_paths
from codeweir.git.reading import path_problem, read_text
from codeweir.protocol_params import ReadParams, RefsParams, SearchParams
from codeweir.protocol_results import SearchHit, SearchResult
from codeweir.search.context import cut_line, with_context
from codeweir.search.filters import Filters
from codeweir.search.paging import checked_int, decode_cursor, encode_cursor, fingerprint, page

if TYPE_CHECKING:
    from collections.abc import Callable

    from codeweir.config import RepoConfig
    from codeweir.index.store import Store
    from codeweir.search.planner import SearchRequests
    from codeweir.search.query import Query
    from codeweir.search.references import Occurrence, References
    from codeweir.service.state import DaemonState

MAX_READ_LINES = 5000  # lines in one `read` answer; `more` says when the file goes on
MAX_READ_CHARS = 1 << 20


class Reading:
    """`read`, `refs`, and `search` with its cursor and context, over the daemon's state."""

    def __init__(
        self,
        state: DaemonState,
        store: Store,
        searches: SearchRequests,
        limiter: trio.CapacityLimiter,
        find_references: Callable[..., References],
    ) -> None:
        # find_references (search/references.py) is handed in, which keeps the chain of imports
        # from the commands down short (tests/test_architecture.py).
        self.find_references = find_references
        self.state = state
        self.store = store
        self.searches = searches
        self.limiter = limiter

    def _repo(self, name: str) -> RepoConfig:
        repo = self.state.repo(name)
        if repo is None:
            known = ", ".join(r.name for r in self.state.config.repositories) or "none"
            raise RequestError(f"repo: no repository named {name!r} (configured: {known})")
        return repo

    # -- search ---------------------------------------------------------------------------------

    async def search(self, query: Query, params: SearchParams) -> SearchResult:
        async def run(depth: int) -> SearchResult:
            return await self.searches.answer(query, attrs.evolve(params, limit=depth, cursor=None, context=0))

        result = await page(params, run)
        if not params.context or result.mode == "commits" or not result.results:
            return result
        hits, notes = await with_context(
            [h for h in result.results if isinstance(h, SearchHit)],
            params.context,
            self.state.repo,
            self.limiter,
            main_blob=lambda repo, path: self.store.file_blobs(repo).get(path),
        )
        return attrs.evolve(result, results=tuple(hits), notes=result.notes + tuple(notes))

    # -- read -----------------------------------------------------------------------------------

    async def read(self, params: ReadParams) -> dict[str, Any]:
        repo = self._repo(params.repo)
        problem = path_problem(params.path)
        if problem is not None:
            raise RequestError(f"path: {params.path!r} {problem}")
        indexed = self.store.file_blobs(repo.name).get(params.path)
        if indexed is None:
            raise RequestError(
                f"path: {params.path} is not a file codeweir indexes in repo {repo.name!r} "
                "(only indexed files are read: tracked or unignored, within the repository's include and exclude)"
            )
        text = await trio.to_thread.run_sync(read_text, repo, params.path, limiter=self.limiter)
        total = len(text.lines)
        if params.start > max(total, 1):
            raise RequestError(
                f"start: {params.path} has {total} line{'s' if total != 1 else ''}, so it cannot start at {params.start}"
            )
        wanted = total if params.end is None else min(params.end, total)
        lines: list[str] = []
        size = 0
        for number in range(params.start, min(wanted, params.start + MAX_READ_LINES - 1) + 1):
            line = text.lines[number - 1]
            size += len(line) + 1
            if lines and size > MAX_READ_CHARS:
                break
            lines.append(cut_line(line, MAX_READ_CHARS))
        end = params.start + len(lines) - 1
        return {
            "repo": repo.name,
            "path": params.path,
            "start_line": params.start,
            "end_line": end,
            "total_lines": total,
            "text": "\n".join(lines),
            "more": end < wanted,  # the range goes on past this answer's limits: read from end_line + 1
            "blob": text.blob,  # of the file as read now
            "indexed_blob": indexed,
            "stale": indexed != text.blob,  # the index holds another version (search hits' lines may differ)
        }

    # -- refs -----------------------------------------------------------------------------------

    async def refs(self, params: RefsParams) -> dict[str, Any]:
        if params.repo is not None:
            self._repo(params.repo)
        fp = fingerprint(
            "refs", params.symbol, params.repo, params.path, params.lang, params.case_sensitive, sorted(set(params.refs))
        )
        offset = 0
        if params.cursor is not None:
            offset = checked_int(decode_cursor(params.cursor, "refs", fp).get("o"), 1, 10 * MAX_READ_LINES)
        filters = Filters(repo=params.repo, path=params.path, lang=params.lang, refs=params.refs)
        started = trio.current_time()
        found = await trio.to_thread.run_sync(
            lambda: self.find_references(self.store, params.symbol, filters, case_sensitive=params.case_sensitive),
            limiter=self.limiter,
        )
        shown = found.occurrences[offset : offset + params.limit]
        end = offset + len(shown)
        stale = await self._stale(shown)
        files: list[dict[str, Any]] = []
        for occurrence in shown:
            if not files or (files[-1]["repo"], files[-1]["path"]) != (occurrence.repo, occurrence.path):
                files.append(
                    {
                        "repo": occurrence.repo,
                        "path": occurrence.path,
                        "language": occurrence.language,
                        "stale": (occurrence.repo, occurrence.path) in stale,
                        "refs": [],
                    }
                )
            files[-1]["refs"].append({"line": occurrence.line, "column": occurrence.column, "text": occurrence.text})
        notes = list(found.notes)
        if offset > len(found.occurrences):
            notes.append("the index changed since the previous page: fewer references are found now")
        return {
            "symbol": found.name,
            "method": found.method,
            "definitions": [attrs.asdict(d) for d in found.definitions],
            "files": files,
            "shown": len(shown),
            "offset": offset,
            "total": len(found.occurrences),
            "complete": found.complete,  # false: the search stopped at its cap (see notes)
            "next_cursor": encode_cursor("refs", fp, {"o": end}) if end < len(found.occurrences) else None,
            "notes": notes,
            "took_ms": round((trio.current_time() - started) * 1000, 2),
        }

    async def _stale(self, occurrences: tuple[Occurrence, ...]) -> set[tuple[str, str]]:
        indexed: dict[str, dict[str, str]] = {}
        for o in occurrences:
            indexed.setdefault(o.repo, {})[o.path] = o.blob
        stale: set[tuple[str, str]] = set()
        for name, blobs in indexed.items():
            repo = self.state.repo(name)
            if repo is None:
                continue
            try:
                paths = await trio.to_thread.run_sync(stale_paths, repo, blobs, limiter=self.limiter)
            except CodeweirError:  # the repository is unreadable now: its files stay unflagged
                continue
            stale.update((name, path) for path in paths)
        return stale
