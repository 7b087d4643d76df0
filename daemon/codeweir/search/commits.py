"""Commit search: commits by the words of their message, author and paths, and by meaning
(each commit's message is embedded under its content hash, like a chunk). Blocking: callers
run these in a thread.

A repository's history is indexed from every view's commit (its main view and its refs, as the
repository's meta has them under "views"). A search sees the commits reachable from the main
view's commit, or with `ref:` from a wanted ref's: what only the other views reach is left out
by clauses (MustNot the repository's commits among those), found by a walk from the other
views' commits that hides the wanted ones (git/history.py, cached per set of commits). A
repository with only its main view needs no walk.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from operator import itemgetter
from typing import TYPE_CHECKING

import attrs
import numpy as np
import tantivy

from codeweir.chunk import terms
from codeweir.errors import CodeweirError
from codeweir.git.history import reachable_only_from
from codeweir.index.membership import MAIN, VIEWS_KEY
from codeweir.index.schema import SCHEMA, vector_keys
from codeweir.index.vectors import VectorStore
from codeweir.protocol_results import CommitHit
from codeweir.search.filters import (
    EXACT_CANDIDATES,
    MAX_LIMIT,
    Filters,
    filter_clauses,
    merged,
    merged_refs,
    parts_query,
    term,
    word_query,
)
from codeweir.search.hits import Matches, tantivy_snippet
from codeweir.search.query import Query

if TYPE_CHECKING:
    from codeweir.config import RepoConfig
    from codeweir.index.store import Store

log = logging.getLogger(__name__)


@attrs.frozen
class CommitVisibility:
    """What a commit search leaves out to see only some views' history: per repository, the
    commits only the other views reach; and the repositories that have none of the views."""

    hidden: tuple[tuple[str, frozenset[str]], ...] = ()
    repos_without: tuple[str, ...] = ()


@attrs.frozen
class CommitFilters:
    repo: str | None = None
    not_repos: tuple[str, ...] = ()
    path: str | None = None  # commits that changed a path matching this glob
    not_paths: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()  # every one must match the author's name or email
    not_authors: tuple[str, ...] = ()
    after: int | None = None  # epoch seconds, inclusive
    before: int | None = None  # epoch seconds, exclusive
    refs: tuple[str, ...] = ()  # commits reachable from these refs' views (any); empty: the main view's
    visibility: CommitVisibility | None = None  # what the views leave out (`commit_visibility`)

    @classmethod
    def of(cls, query: Query, *, repo: str | None, path: str | None, refs: tuple[str, ...] = ()) -> CommitFilters:
        """The commit filters of a parsed query, with those given as request params."""
        return cls(
            repo=merged("repo", repo, query.repo),
            refs=merged_refs(refs, query.refs),
            not_repos=query.not_repos,
            path=merged("path", path, query.path),
            not_paths=query.not_paths,
            authors=query.authors,
            not_authors=query.not_authors,
            after=query.after,
            before=query.before,
        )


def commit_visibility(store: Store, filters: CommitFilters, repo_config: Callable[[str], RepoConfig | None]) -> CommitFilters:
    """`filters` with what their views leave out of each repository's history (`repo_config`:
    a repository's config by name, to walk it). Blocking: run in a thread."""
    if filters.visibility is not None:
        return filters
    wanted = filters.refs or (MAIN,)
    hidden: list[tuple[str, frozenset[str]]] = []
    without: list[str] = []
    for repo in [filters.repo] if filters.repo else store.repos():
        views: dict[str, str] = store.repo_meta(repo).get(VIEWS_KEY) or {}
        if not filters.refs and set(views) <= {MAIN}:
            continue  # the main view's history is all there is
        tips = [views[view] for view in wanted if view in views]
        if not tips:
            without.append(repo)
            continue
        others = [commit for view, commit in views.items() if view not in wanted]
        config = repo_config(repo)
        if not others or config is None:
            continue
        try:
            only_others = reachable_only_from(config, others, tips)
        except CodeweirError as exc:  # the repository is unreadable now: its history stays whole
            log.warning("commit search by ref: %s", exc)
            continue
        if only_others:
            hidden.append((repo, only_others))
    return attrs.evolve(filters, visibility=CommitVisibility(tuple(hidden), tuple(without)))


def search_commits(store: Store, text: str, filters: CommitFilters, limit: int) -> list[CommitHit]:
    """Commits whose message, author or changed paths have every word of `text` (a hex word
    also matches a sha prefix); newest first when `text` is empty. Blocking: run in a thread."""
    must = tantivy.Occur.Must
    words = [q for word in text.split() if (q := _word_query(word)) is not None]
    query = tantivy.Query.boolean_query([(must, q) for q in words] + _filter_clauses(filters))
    searcher = store.searcher()
    if words:
        result = searcher.search(query, limit=min(limit, MAX_LIMIT))
    else:
        result = searcher.search(query, limit=min(limit, MAX_LIMIT), order_by_field="date")
    snippets = tantivy.SnippetGenerator.create(searcher, query, SCHEMA, "message")
    snippets.set_max_num_chars(240)
    hits = []
    for score, address in result.hits:
        doc = searcher.doc(address)
        snippet, matches = tantivy_snippet(snippets.snippet_from_doc(doc)) if words else ("", ())
        hits.append(_hit(doc, score if words else 0.0, snippet, matches))
    return hits


def search_commits_by_meaning(
    store: Store, vectors: VectorStore, query: np.ndarray, filters: CommitFilters, limit: int
) -> list[CommitHit]:
    """Commits the filters allow, ranked by the similarity of their message to `query`: exact
    scoring over the allowed commits' vectors, a page at a time so that a long history never
    copies all its vectors at once. Blocking: run in a thread."""
    limit = min(limit, MAX_LIMIT)
    searcher = store.searcher()
    allowed = _filter_clauses(filters)
    total = searcher.search(tantivy.Query.boolean_query(allowed), limit=1, count=True).count
    if not total:
        return []
    addresses = [a for _, a in searcher.search(tantivy.Query.boolean_query(allowed), limit=total, count=False).hits]
    best: dict[str, float] = {}
    for start in range(0, total, EXACT_CANDIDATES):
        page = vector_keys(searcher, addresses[start : start + EXACT_CANDIDATES])
        best.update(vectors.search(query, limit, candidates=page))
        best = dict(heapq.nlargest(limit, best.items(), key=itemgetter(1)))
    hits: list[CommitHit] = []
    # Commits with the same message share a vector: each of them is a hit.
    for key, score in sorted(best.items(), key=itemgetter(1), reverse=True):
        same = [(tantivy.Occur.Must, tantivy.Query.term_query(SCHEMA, "content_hash", key)), *allowed]
        found = searcher.search(tantivy.Query.boolean_query(same), limit=limit - len(hits), count=False)
        hits.extend(_hit(searcher.doc(address), score, "") for _, address in found.hits)
        if len(hits) >= limit:
            break
    return hits


def _hit(doc: tantivy.Document, score: float, snippet: str, matches: Matches = ()) -> CommitHit:
    message = doc.get_first("message") or ""
    return CommitHit(
        repo=doc.get_first("repo") or "",
        sha=doc.get_first("sha") or "",
        author=doc.get_first("author") or "",
        date=datetime.fromtimestamp(doc.get_first("date") or 0, UTC).isoformat(),
        summary=message.split("\n", 1)[0],
        paths=tuple(doc.get_all("path")),
        score=round(float(score), 4),
        snippet=snippet or message[:240],
        matches=matches if snippet else (),
    )


def _word_query(word: str) -> tantivy.Query | None:
    query = word_query(word, ("message", "author", "path_parts"))
    if len(word) >= 4 and all(c in "0123456789abcdefABCDEF" for c in word):
        sha = tantivy.Query.regex_query(SCHEMA, "sha", word.lower() + "[0-9a-f]*")
        return sha if query is None else tantivy.Query.boolean_query([(tantivy.Occur.Should, q) for q in (query, sha)])
    return query


def _filter_clauses(filters: CommitFilters) -> list[tuple[tantivy.Occur, tantivy.Query]]:
    must, must_not = tantivy.Occur.Must, tantivy.Occur.MustNot
    clauses = filter_clauses(
        Filters(repo=filters.repo, path=filters.path, not_repos=filters.not_repos, not_paths=filters.not_paths),
        "commit",
    )
    for authors, occur in ((filters.authors, must), (filters.not_authors, must_not)):
        clauses.extend((occur, parts_query("author", parts)) for author in authors if (parts := terms.parts(author)))
    if filters.after is not None or filters.before is not None:
        clauses.append(
            (
                must,
                tantivy.Query.range_query(
                    SCHEMA,
                    "date",
                    tantivy.FieldType.Integer,
                    filters.after,
                    filters.before,
                    include_upper=filters.before is None,
                ),
            )
        )
    if filters.visibility is not None:
        clauses.extend((must_not, term("repo", repo)) for repo in filters.visibility.repos_without)
        for repo, shas in filters.visibility.hidden:
            only = [(must, term("repo", repo)), (must, tantivy.Query.term_set_query(SCHEMA, "sha", sorted(shas)))]
            clauses.append((must_not, tantivy.Query.boolean_query(only)))
    return clauses
