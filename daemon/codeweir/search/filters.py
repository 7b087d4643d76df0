"""What a search is narrowed to, and the Tantivy clauses that narrow it.

Filters (repo, path glob, language, kind, facets, and their negations) are clauses of the
Tantivy query itself, so a filter never returns fewer results than exist because it ran after
a top-k. Every chunk search (lexical, regex, semantic) and commit search builds on these.

Refs likewise: documents belong to file versions, and a search sees one view of each repository
(its main view, or the refs `ref:` names; index/membership.py). What the others hold and the
wanted views do not (`Visibility`, computed once per request by `visible`) is left out by
clauses too: MustNot the chunks only hidden versions hold (by chunk key), MustNot the
repositories that have none of the wanted views. A chunk several versions share is one
document, so it is one hit, placed at its lines in the version the search sees it through.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

import attrs
import tantivy

from codeweir.chunk import terms
from codeweir.errors import RequestError
from codeweir.globs import glob_regex
from codeweir.index.membership import Placement, Visibility
from codeweir.index.schema import SCHEMA

if TYPE_CHECKING:
    from codeweir.protocol_params import SearchParams
    from codeweir.search.query import Query


class IndexReader(Protocol):
    """What the index's searches read: the daemon's `index.store.Store`, or a search worker's
    own opening of the same index (search/index_search.py), whose requests come with their visibility."""

    @property
    def drafting(self) -> bool: ...

    def searcher(self) -> tantivy.Searcher: ...

    def visibility(self, repo: str | None, refs: tuple[str, ...] = ()) -> Visibility: ...


MAX_LIMIT = 1000
FACET_WEIGHT = "facet_weight"  # the fast field Tantivy multiplies scores by (see facets.stored_weight)
LEXICAL_WEIGHT = "lexical_weight"  # likewise for lexical search (see facets.stored_lexical_weight)


# Candidate sets up to this size are scored exactly against their vectors (semantic and commit
# search); larger ones go through the nearest-neighbour index.
EXACT_CANDIDATES = 20_000


@attrs.frozen
class Filters:
    repo: str | None = None
    path: str | None = None  # a glob: "*.go", "net/http/**", "src/*/main.py"
    lang: str | None = None
    kind: str | None = None
    facets: tuple[str, ...] = ()  # any of these: "test", "vendored", "generated", "minified", "source"
    not_repos: tuple[str, ...] = ()
    not_paths: tuple[str, ...] = ()
    not_langs: tuple[str, ...] = ()
    not_kinds: tuple[str, ...] = ()
    not_facets: tuple[str, ...] = ()
    not_words: tuple[str, ...] = ()  # chunks with one of these words are left out
    refs: tuple[str, ...] = ()  # the views of these refs (any of them); empty: the main view
    # What the wanted views leave out (`visible` sets it); None: not computed yet.
    visibility: Visibility | None = None

    @classmethod
    def of(
        cls,
        query: Query,
        *,
        repo: str | None,
        path: str | None,
        lang: str | None,
        kind: str | None,
        refs: tuple[str, ...] = (),
    ) -> Filters:
        """The filters of a parsed query, with those given as request params."""
        return cls(
            repo=merged("repo", repo, query.repo),
            refs=merged_refs(refs, query.refs),
            path=merged("path", path, query.path),
            lang=merged("lang", lang, query.lang),
            kind=merged("kind", kind, query.kind),
            facets=query.facets,
            not_repos=query.not_repos,
            not_paths=query.not_paths,
            not_langs=query.not_langs,
            not_kinds=query.not_kinds,
            not_facets=query.not_facets,
            not_words=query.excluded,
        )


def merged(name: str, param: str | None, queried: str | None) -> str | None:
    """A filter given as a request param, in the query, or both alike."""
    if param and queried and param != queried:
        raise RequestError(f"{name}: the request says {param!r} and the query says {name}:{queried}; give one")
    return queried or param


def merged_refs(param: Sequence[str], queried: Sequence[str]) -> tuple[str, ...]:
    """Refs given as a request param, in the query (`ref:`), or both alike; each once."""
    if param and queried and set(param) != set(queried):
        shown = " ".join(f"ref:{r}" for r in queried)
        raise RequestError(f"ref: the request says {sorted(set(param))!r} and the query says {shown}; give one")
    return tuple(dict.fromkeys(queried or param))


def visible(store: IndexReader, filters: Filters) -> Filters:
    """`filters` with what the views they want leave out (as of the last commit); computed
    once per request, and kept by every search of it. Blocking: run in a thread."""
    if filters.visibility is not None:
        return filters
    return attrs.evolve(filters, visibility=store.visibility(filters.repo, filters.refs))


def placements(filters: Filters) -> Mapping[str, Placement]:
    """Where the chunks a search sees through a version other than their home sit in it."""
    return filters.visibility.placed if filters.visibility is not None else {}


def narrows(filters: Filters) -> bool:
    """Whether `filters` may leave out any chunk (else semantic search ranks every vector as it is)."""
    seen = filters.visibility
    hides = seen is not None and bool(seen.hidden_chunks or seen.repos_without)
    return hides or attrs.evolve(filters, refs=(), visibility=None) != Filters()


def term(field: str, value: str) -> tantivy.Query:
    return tantivy.Query.term_query(SCHEMA, field, value)


def _path_query(glob: str) -> tantivy.Query:
    try:
        return tantivy.Query.regex_query(SCHEMA, "path", glob_regex(glob))
    except ValueError as exc:
        raise RequestError(f"path: {exc}") from None


def filter_clauses(filters: Filters, doc_kind: str) -> list[tuple[tantivy.Occur, tantivy.Query]]:
    must, must_not = tantivy.Occur.Must, tantivy.Occur.MustNot
    clauses = [(must, term("doc_kind", doc_kind)), *visibility_clauses(filters.visibility, doc_kind)]
    for field, value in (("repo", filters.repo), ("language", filters.lang), ("kind", filters.kind)):
        if value:
            clauses.append((must, term(field, value)))
    if filters.path:
        clauses.append((must, _path_query(filters.path)))
    if filters.facets:
        clauses.append((must, tantivy.Query.term_set_query(SCHEMA, "facet", list(filters.facets))))
    for field, values in (
        ("repo", filters.not_repos),
        ("language", filters.not_langs),
        ("kind", filters.not_kinds),
        ("facet", filters.not_facets),
    ):
        clauses.extend((must_not, term(field, value)) for value in values)
    clauses.extend((must_not, _path_query(glob)) for glob in filters.not_paths)
    clauses.extend((must_not, q) for word in filters.not_words if (q := word_query(word)) is not None)
    return clauses


def visibility_clauses(visibility: Visibility | None, doc_kind: str = "chunk") -> list[tuple[tantivy.Occur, tantivy.Query]]:
    """MustNot clauses leaving out the documents of `doc_kind` that `visibility` hides: chunks
    by chunk key, file documents by version key (nothing for None). Nothing hides a draft
    (ingest/drafts.py): no view holds its version yet, and only searches of the main view read
    drafts."""
    if visibility is None or doc_kind == "draft":
        return []
    must_not = tantivy.Occur.MustNot
    clauses = [(must_not, term("repo", repo)) for repo in visibility.repos_without]
    field, keys = ("chunk_key", visibility.hidden_chunks) if doc_kind == "chunk" else ("file_key", visibility.hidden)
    if keys:
        clauses.append((must_not, tantivy.Query.term_set_query(SCHEMA, field, list(keys))))
    return clauses


CHUNK_TEXT_FIELDS = ("words", "symbol", "path_parts")


def word_query(word: str, fields: Sequence[str] = CHUNK_TEXT_FIELDS) -> tantivy.Query | None:
    """A word is present if all its subwords are, adjacent, in one of `fields`."""
    parts = terms.parts(word)
    if not parts:
        return None
    return tantivy.Query.boolean_query([(tantivy.Occur.Should, parts_query(field, parts)) for field in fields])


def parts_query(field: str, parts: Sequence[str]) -> tantivy.Query:
    return term(field, parts[0]) if len(parts) == 1 else tantivy.Query.phrase_query(SCHEMA, field, list(parts))


def request_filters(query: Query, params: SearchParams) -> Filters:
    """The filters of a request: its query's, with those given as params."""
    return Filters.of(query, repo=params.repo, path=params.path, lang=params.lang, kind=params.kind, refs=params.refs)
