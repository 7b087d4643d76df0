"""Exact substring and regex search: a trigram prefilter in Tantivy, then linear-time matching.

Every file version's text is indexed as its distinct lowercased trigrams (index/trigram_terms.py).
A pattern is analysed (with `re`'s own parser) into a boolean query of trigrams that any text it
matches must contain — the approach of Russ Cox's codesearch: `Parse(Duration|Time)` needs
("par" AND "ars" AND ... AND ("dur" AND ...) OR ("tim" AND ...)). Tantivy returns the files
that have them, a page at a time; each file's text is matched, and its chunks holding a match
are verified in turn to find each matching line and column: a regex by RE2 (Python's syntax, written out in RE2's:
linear time, and the GIL released while it runs), a quoted literal by byte search. Matching runs
in bounded steps and stops the search with an error once it has taken its budget
(`MATCH_SECONDS`). A pattern with no usable trigram (`\\w+`) scans a bounded number of chunks.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import attrs
import tantivy

from codeweir.facets import rank_weight
from codeweir.index.chunk_tables import decode_table
from codeweir.index.membership import Placement
from codeweir.index.schema import SCHEMA, first, stored_chunk
from codeweir.index.trigram_terms import query_terms
from codeweir.protocol_results import SearchHit
from codeweir.records import StoredChunk
from codeweir.search.filters import FACET_WEIGHT, MAX_LIMIT, Filters, filter_clauses, placements, visible
from codeweir.search.hits import chunk_hit
from codeweir.search.patterns import MATCH_SECONDS, Budget, Pattern, Text, compile_pattern, line_matches, line_snippet
from codeweir.search.trigrams import ALL, NONE, TrigramQuery

if TYPE_CHECKING:
    from codeweir.index.store import Store

MAX_SCAN_CHUNKS = 10_000  # chunks a pattern without trigrams may scan


# -- search (blocking) ---------------------------------------------------------------------------


@attrs.frozen
class RegexResult:
    hits: list[SearchHit]
    notes: list[str]


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def search_regex(
    store: Store,
    patterns: Sequence[str | Pattern],
    filters: Filters,
    limit: int,
    *,
    case_sensitive: bool,
    words: Sequence[tantivy.Query] = (),
    explain: bool = False,
    seconds: float | None = None,
) -> RegexResult:
    """Lines of chunks where `patterns` match (each chunk must match all of them, and `words`);
    a string is a regex. RequestError once matching has taken `seconds` (MATCH_SECONDS).

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
    required = [(must, q) for q in words] + filter_clauses(filters, "chunk")
    names = sorted({p.text.lower() for p in compiled if _IDENTIFIER.fullmatch(p.text)})
    definition = tantivy.Query.term_set_query(SCHEMA, "symbol_exact", names) if names else None
    limit = min(limit, MAX_LIMIT)
    searcher, page, placed = store.searcher(), max(64, 2 * limit), placements(filters)
    candidates: _Candidates | _FileCandidates
    if prefilter == ALL:
        query = tantivy.Query.boolean_query(
            [(must, _constant(required))] + ([(should, _constant([(must, definition)]))] if definition is not None else [])
        )
        candidates = _Candidates(searcher, query, page, MAX_SCAN_CHUNKS, placed)
    else:
        # The kind and the words a file's chunks must have say nothing of the file.
        of_files = attrs.evolve(filters, kind=None, not_kinds=(), not_words=())
        files = _constant(filter_clauses(of_files, "file") + [(must, _tantivy_query(prefilter))])
        candidates = _FileCandidates(
            searcher, files, required, definition, max(8, limit // 4), page, placed, lambda text: _spans(text, compiled, budget)
        )
    hits: list[SearchHit] = []
    seen: set[tuple[str, str, str, int]] = set()
    for score, chunk in candidates:
        budget.check()
        text = Text(chunk.content)
        for match in line_matches(text, chunk.start_line, compiled, budget):
            key = (chunk.repo, chunk.path, chunk.blob, match.line)
            if key in seen:  # overlapping windows of one file hold some lines twice
                continue
            seen.add(key)
            explained = _explain(score, chunk.facets) if explain else None
            snippet, marked = line_snippet(text, match, compiled)
            hits.append(chunk_hit(chunk, score, snippet, marked, line=match.line, column=match.column, explain=explained))
            if len(hits) >= limit:
                break
        if len(hits) >= limit:
            break
    notes = []
    if len(hits) >= limit:
        notes.append(f"stopped at {limit} matching lines; raise the limit to see more")
    elif isinstance(candidates, _Candidates) and candidates.cut_short:
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
                yield score, stored_chunk(self.searcher.doc(address), self.placed)
            page *= 2

    @property
    def cut_short(self) -> bool:
        return self.bound is not None and self.total is not None and self.scanned < self.total


@attrs.define
class _FileCandidates:
    """The chunks of the files matching `files` (their trigrams) that meet `required`, best
    first: the chunks defining the searched identifier (`definition`), then the files by facet
    weight (fetched a page at a time, each twice the last), each one's chunks in index order.
    Of a file's chunks only those holding lines its text matches on (`spans`) are read: most
    files a pattern's trigrams find hold no match, and most chunks of the rest hold none."""

    searcher: tantivy.Searcher
    files: tantivy.Query
    required: list[tuple[tantivy.Occur, tantivy.Query]]  # what a chunk must meet: filters and words
    definition: tantivy.Query | None
    file_page: int
    page: int  # chunks fetched at a time, as _Candidates's
    placed: Mapping[str, Placement]
    spans: Callable[[str], list[tuple[int, int]]]  # a text's matches: the first and last line of each

    def __iter__(self) -> Iterator[tuple[float, StoredChunk]]:
        must = tantivy.Occur.Must
        rest = list(self.required)
        if self.definition is not None:
            defining = tantivy.Query.boolean_query(
                [(must, _constant(self.required)), (must, _constant([(must, self.definition)]))]
            )
            yield from _Candidates(self.searcher, defining, self.page, None, self.placed)
            rest.append((tantivy.Occur.MustNot, self.definition))  # found above
        found, page = 0, self.file_page
        while True:
            result = self.searcher.search(self.files, limit=page, offset=found, weight_by_field=FACET_WEIGHT)
            found += len(result.hits)
            for _, file_address in result.hits:  # a file at a time: the order never depends on the page's size
                if not (keys := self._matching_chunks(self.searcher.doc(file_address))):
                    continue
                chunks = _constant([*rest, (must, tantivy.Query.term_set_query(SCHEMA, "chunk_key", keys))])
                for score, address in self.searcher.search(chunks, limit=len(keys), weight_by_field=FACET_WEIGHT).hits:
                    yield score, stored_chunk(self.searcher.doc(address), self.placed)
            if len(result.hits) < page:
                return
            page *= 2

    def _matching_chunks(self, file_doc: tantivy.Document) -> list[str]:
        """The keys of a file version's chunks that hold a line its text matches on."""
        matched: set[int] = set()
        for start, end in self.spans(first(file_doc, "text", b"").decode()):
            matched.update(range(start, end + 1))
        if not matched:
            return []
        repo, path, blob = first(file_doc, "repo"), first(file_doc, "path"), first(file_doc, "blob")
        table = decode_table(repo, path, blob, first(file_doc, "chunks", b""))
        return [key for key, p in table.items() if not matched.isdisjoint(range(p.start_line, p.end_line + 1))]


def _spans(text: str, patterns: Sequence[Pattern], budget: Budget) -> list[tuple[int, int]]:
    """The lines each match of `patterns` in `text` spans, first and last (none unless each
    matches somewhere in it): a chunk holding none of them holds no match of its own."""
    return [(m.line, m.line + text.count("\n", m.start, m.end)) for m in line_matches(text, 1, patterns, budget)]


def _constant(clauses: list[tuple[tantivy.Occur, tantivy.Query]]) -> tantivy.Query:
    return tantivy.Query.const_score_query(tantivy.Query.boolean_query(clauses), 1.0)


def _explain(score: float, facets: Sequence[str]) -> dict[str, float]:
    weight = rank_weight(facets)
    return {"match": 1.0, "definition": round(score / weight - 1.0, 4), "facet": weight}


def _tantivy_query(query: TrigramQuery) -> tantivy.Query:
    must = tantivy.Occur.Must
    occur = must if query.op == "and" else tantivy.Occur.Should
    clauses = []
    for trigram in sorted(query.trigrams):
        terms = [tantivy.Query.term_query(SCHEMA, "trigrams", term) for term in query_terms(trigram)]
        clauses.append((occur, terms[0] if len(terms) == 1 else tantivy.Query.boolean_query([(must, t) for t in terms])))
    clauses += [(occur, _tantivy_query(sub)) for sub in query.subs]
    return tantivy.Query.boolean_query(clauses)
