"""Exact substring and regex search: a trigram prefilter in Tantivy, then linear-time matching.

Every chunk's content is indexed as its lowercased character trigrams; a draft (a version
not chunked yet, on a large sync: ingest/drafts.py), searched as one chunk, as its text's
distinct byte trigrams (index/trigram_terms.py). A pattern is analysed
(with `re`'s own parser) into a boolean query of trigrams that any text it matches must
contain — the approach of Russ Cox's codesearch: `Parse(Duration|Time)` needs
("par" AND "ars" AND ... AND ("dur" AND ...) OR ("tim" AND ...)). Tantivy returns the chunks
that have them, and each candidate is verified to find each matching line and column: a regex
by RE2 (Python's syntax, written out in RE2's: linear time, and the GIL released while it
runs), a quoted literal by byte search. Matching runs in bounded steps and stops the search
with an error once it has taken its budget (`MATCH_SECONDS`). A pattern with no usable trigram
(`\\w+`) scans a bounded number of chunks.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Literal

import attrs
import tantivy

from codeweir.facets import rank_weight
from codeweir.index.membership import Placement
from codeweir.index.schema import SCHEMA, first, stored_chunk
from codeweir.index.trigram_terms import query_terms
from codeweir.protocol_results import SearchHit
from codeweir.records import StoredChunk
from codeweir.search.filters import FACET_WEIGHT, MAX_LIMIT, Filters, IndexReader, filter_clauses, placements, visible
from codeweir.search.hits import chunk_hit
from codeweir.search.patterns import MATCH_SECONDS, Budget, Pattern, Text, compile_pattern, line_matches, line_snippet
from codeweir.search.trigrams import ALL, NONE, TrigramQuery

MAX_SCAN_CHUNKS = 10_000  # chunks a pattern without trigrams may scan
# A draft's file as it is now, by repository and path: its text, or None where it cannot be read.
ReadDraft = Callable[[str, str], str | None]


# -- search (blocking) ---------------------------------------------------------------------------


@attrs.frozen
class RegexResult:
    hits: list[SearchHit]
    notes: list[str]


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def search_regex(
    store: IndexReader,
    patterns: Sequence[str | Pattern],
    filters: Filters,
    limit: int,
    *,
    case_sensitive: bool,
    words: Sequence[tantivy.Query] = (),
    explain: bool = False,
    seconds: float | None = None,
    read_draft: ReadDraft | None = None,
    drafts: Literal["also", "only"] = "also",
    lines_per_chunk: int | None = None,
) -> RegexResult:
    """Lines of chunks where `patterns` match (each chunk must match all of them, and `words`),
    up to `lines_per_chunk` a chunk; a string is a regex. Given `read_draft`, a search of the
    main view reads the drafts there are (ingest/drafts.py) `also`, or `only` them, each the
    file's text as `read_draft` finds it now. RequestError once matching has taken `seconds`
    (MATCH_SECONDS).

    Candidates come in rank order: a chunk defining the searched identifier first, then by
    facet weight (source first), then in index order. Blocking: run in a thread.
    """
    budget = Budget(MATCH_SECONDS if seconds is None else seconds)
    compiled = [p if isinstance(p, Pattern) else compile_pattern(p, case_sensitive=case_sensitive) for p in patterns]
    prefilter = ALL
    for pattern in compiled:
        prefilter &= pattern.trigrams
    if prefilter == NONE:
        return RegexResult([], [])
    must, should = tantivy.Occur.Must, tantivy.Occur.Should
    filters = visible(store, filters)
    sides = [] if drafts == "only" else [filter_clauses(filters, "chunk") + _trigram_clauses(prefilter, "trigrams")]
    if read_draft is not None and store.drafting and not filters.refs:
        sides.append(filter_clauses(filters, "draft") + _trigram_clauses(prefilter, "draft_trigrams"))
    if not sides:
        return RegexResult([], [])
    either = [(should, tantivy.Query.boolean_query(side)) for side in sides]
    kinds = sides[0] if len(sides) == 1 else [(must, tantivy.Query.boolean_query(either))]
    required = [(must, q) for q in words] + kinds
    names = sorted({p.text.lower() for p in compiled if _IDENTIFIER.fullmatch(p.text)})
    definition = tantivy.Query.term_set_query(SCHEMA, "symbol_exact", names) if names else None
    query = tantivy.Query.boolean_query(
        [(must, tantivy.Query.const_score_query(tantivy.Query.boolean_query(required), 1.0))]
        + ([(should, tantivy.Query.const_score_query(definition, 1.0))] if definition is not None else [])
    )
    limit = min(limit, MAX_LIMIT)
    bound = MAX_SCAN_CHUNKS if prefilter == ALL else None
    candidates = _Candidates(store.searcher(), query, max(64, 2 * limit), bound, placements(filters), read_draft)
    hits: list[SearchHit] = []
    seen: set[tuple[str, str, str, int]] = set()
    for score, chunk in candidates:
        budget.check()
        text = Text(chunk.content)
        taken = 0
        for match in line_matches(text, chunk.start_line, compiled, budget):
            key = (chunk.repo, chunk.path, chunk.blob, match.line)
            if key in seen:  # overlapping windows of one file hold some lines twice
                continue
            seen.add(key)
            explained = _explain(score, chunk.facets) if explain else None
            snippet, marked = line_snippet(text, match, compiled)
            hits.append(chunk_hit(chunk, score, snippet, marked, line=match.line, column=match.column, explain=explained))
            taken += 1
            if len(hits) >= limit or taken == lines_per_chunk:
                break
        if len(hits) >= limit:
            break
    notes = []
    if len(hits) >= limit:
        notes.append(f"stopped at {limit} matching lines; raise the limit to see more")
    elif candidates.bound is not None and candidates.cut_short:
        notes.append(
            f"the pattern has no three literal characters in a row to narrow the search: scanned the first"
            f" {candidates.scanned:,} of {candidates.total:,} chunks; add a literal or a filter to search them all"
        )
    return RegexResult(hits, notes)


@attrs.define
class _Candidates:
    """The chunks matching `query`, best first, fetched a page at a time (each twice the last)
    as they are consumed, and at most `bound` of them."""

    searcher: tantivy.Searcher
    query: tantivy.Query
    page: int
    bound: int | None
    placed: Mapping[str, Placement]  # where chunks seen through another version than their home sit
    read_draft: ReadDraft | None
    scanned: int = 0
    total: int | None = None

    def __iter__(self) -> Iterator[tuple[float, StoredChunk]]:
        page = self.page
        while (self.total is None or self.scanned < self.total) and (self.bound is None or self.scanned < self.bound):
            size = page if self.bound is None else min(page, self.bound - self.scanned)
            result = self.searcher.search(
                self.query, limit=size, offset=self.scanned, count=self.total is None, weight_by_field=FACET_WEIGHT
            )
            if self.total is None:
                self.total = result.count
            if not result.hits:
                return
            for score, address in result.hits:
                self.scanned += 1
                doc = self.searcher.doc(address)
                chunk = stored_chunk(doc, self.placed)
                if self.read_draft is None or first(doc, "doc_kind") != "draft":
                    yield score, chunk
                elif (text := self.read_draft(chunk.repo, chunk.path)) is not None:  # else gone since
                    yield score, attrs.evolve(chunk, content=text, start_line=1, end_line=text.count("\n") + 1)
            page *= 2

    @property
    def cut_short(self) -> bool:
        return self.total is not None and self.scanned < self.total


def _explain(score: float, facets: Sequence[str]) -> dict[str, float]:
    weight = rank_weight(facets)
    return {"match": 1.0, "definition": round(score / weight - 1.0, 4), "facet": weight}


def _trigram_clauses(query: TrigramQuery, field: str) -> list[tuple[tantivy.Occur, tantivy.Query]]:
    return [] if query == ALL else [(tantivy.Occur.Must, _tantivy_query(query, field))]


def _tantivy_query(query: TrigramQuery, field: str) -> tantivy.Query:
    """`query` over the chunks' `trigrams`, or the drafts' `draft_trigrams` (each character
    trigram as all its byte trigrams' terms: index/trigram_terms.py)."""
    occur = tantivy.Occur.Must if query.op == "and" else tantivy.Occur.Should
    clauses = [(occur, _trigram(t, field)) for t in sorted(query.trigrams)]
    clauses += [(occur, _tantivy_query(sub, field)) for sub in query.subs]
    return tantivy.Query.boolean_query(clauses)


def _trigram(trigram: str, field: str) -> tantivy.Query:
    if field == "trigrams":
        return tantivy.Query.term_query(SCHEMA, field, trigram)
    terms = query_terms(trigram)
    if len(terms) == 1:
        return tantivy.Query.term_query(SCHEMA, field, terms[0])
    return tantivy.Query.boolean_query([(tantivy.Occur.Must, tantivy.Query.term_query(SCHEMA, field, t)) for t in terms])
