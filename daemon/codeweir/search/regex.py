"""Exact substring and regex search: a trigram prefilter in Tantivy, then Python's `re`.

Every chunk's content is indexed as its lowercased character trigrams. A pattern is analysed
(with `re`'s own parser) into a boolean query of trigrams that any text it matches must
contain — the approach of Russ Cox's codesearch: `Parse(Duration|Time)` needs
("par" AND "ars" AND ... AND ("dur" AND ...) OR ("tim" AND ...)). Tantivy returns the chunks
that have them, and the compiled pattern is run over each candidate to find each matching
line and column. A pattern with no usable trigram (`\\w+`) scans a bounded number of chunks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from itertools import product
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Literal

import attrs
import tantivy

from codeweir.errors import RequestError
from codeweir.facets import rank_weight
from codeweir.index.store import SCHEMA, Store, stored_chunk
from codeweir.protocol import SearchHit
from codeweir.records import StoredChunk
from codeweir.search.filters import FACET_WEIGHT, MAX_LIMIT, Filters, filter_clauses
from codeweir.search.hits import Matches, chunk_hit, merged

MAX_EXACT = 8  # strings in an exact set before it is turned into trigrams
MAX_SET = 20  # strings in a prefix or suffix set before they are shortened
MAX_CLASS = 32  # characters in a class (lowercased) before it counts as "any character"
MAX_SCAN_CHUNKS = 10_000  # chunks a pattern without trigrams may scan
SNIPPET_CHARS = 240

# -- the trigram query (pure) -------------------------------------------------------------------


@attrs.frozen
class TrigramQuery:
    """ALL (no constraint), NONE (nothing matches), or an AND / OR of trigrams and sub-queries."""

    op: Literal["all", "none", "and", "or"]
    trigrams: frozenset[str] = frozenset()
    subs: frozenset[TrigramQuery] = frozenset()

    def __and__(self, other: TrigramQuery) -> TrigramQuery:
        return _combine("and", self, other)

    def __or__(self, other: TrigramQuery) -> TrigramQuery:
        return _combine("or", self, other)


ALL = TrigramQuery("all")
NONE = TrigramQuery("none")


def _combine(op: Literal["and", "or"], a: TrigramQuery, b: TrigramQuery) -> TrigramQuery:
    absorbing, identity = (NONE, ALL) if op == "and" else (ALL, NONE)
    if absorbing in (a, b):
        return absorbing
    if a == identity:
        return b
    if b == identity:
        return a
    trigrams: set[str] = set()
    subs: set[TrigramQuery] = set()
    for q in (a, b):
        if q.op == op or (len(q.trigrams) == 1 and not q.subs):
            trigrams |= q.trigrams
            subs |= q.subs
        else:
            subs.add(q)
    # A sub-query sharing a trigram with this level is implied by it (AND) or implies it (OR).
    subs = {s for s in subs if not s.trigrams & trigrams}
    if len(trigrams) + len(subs) == 1 and subs:
        return subs.pop()
    return TrigramQuery(op, frozenset(trigrams), frozenset(subs))


def any_of_strings(strings: Iterable[str]) -> TrigramQuery:
    """Text containing one of `strings` (each as all its trigrams); ALL if one is too short."""
    out = NONE
    for s in strings:
        if len(s) < 3:
            return ALL
        out |= TrigramQuery("and", frozenset(s[i : i + 3] for i in range(len(s) - 2)))
    return out


# -- regex analysis (pure) ----------------------------------------------------------------------


@attrs.frozen
class _Info:
    """What is known about the strings a regex (or a part of one) matches, lowercased.

    `exact`, when known, is every string it matches; otherwise `prefix` and `suffix` hold
    every string a match may start and end with. `match` must hold for any text it matches.
    """

    can_empty: bool
    exact: frozenset[str] | None
    prefix: frozenset[str] = frozenset({""})
    suffix: frozenset[str] = frozenset({""})
    match: TrigramQuery = ALL


EMPTY = _Info(True, frozenset({""}))
ANY_CHAR = _Info(False, None)
ANY_STRING = _Info(True, None)
NO_MATCH = _Info(False, frozenset(), frozenset(), frozenset(), NONE)


def trigram_query(pattern: str, flags: int = 0) -> TrigramQuery:
    """What a (lowercased) text must contain for `pattern` to match it somewhere."""
    try:
        parsed = sre_parse.parse(pattern, flags)
    except re.error as exc:
        raise RequestError(_regex_error(pattern, exc)) from None
    except RecursionError:
        raise RequestError("regex: the pattern is nested too deeply") from None
    info = _simplify(_sequence(list(parsed)), force=True)
    return info.match & any_of_strings(info.exact) if info.exact is not None else info.match


def _sequence(items: Sequence) -> _Info:
    info = EMPTY
    for op, av in items:
        info = _concat(info, _item(op, av))
    return info


def _item(op, av) -> _Info:
    if op is sre.LITERAL:
        return _chars([av])
    if op is sre.IN:
        return _class(av)
    if op is sre.SUBPATTERN:
        return _sequence(list(av[-1]))
    if op is sre.ATOMIC_GROUP:
        return _sequence(list(av))
    if op is sre.BRANCH:
        out = NO_MATCH
        for branch in av[1]:
            out = _alternate(out, _sequence(list(branch)))
        return out
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
        low, _high, sub = av
        return _at_least_once(_sequence(list(sub))) if low >= 1 else ANY_STRING
    if op is sre.GROUPREF_EXISTS:
        _group, yes, no = av
        return _alternate(_sequence(list(yes)), _sequence(list(no)) if no is not None else EMPTY)
    if op in (sre.AT, sre.ASSERT, sre.ASSERT_NOT):
        return EMPTY  # zero width: what a lookaround needs is not consumed here
    if op in (sre.ANY, sre.NOT_LITERAL, sre.CATEGORY):
        return ANY_CHAR
    return ANY_STRING  # group references and anything else: assume nothing


def _chars(codes: Iterable[int]) -> _Info:
    """One character out of `codes`, lowercased as the trigram index lowercases."""
    chars = set()
    for code in codes:
        lower = chr(code).lower()
        if len(lower) != 1:  # lowercases to several characters: trigrams would not line up
            return ANY_CHAR
        chars.add(lower)
    return _Info(False, frozenset(chars))


def _class(items) -> _Info:
    codes: list[int] = []
    for op, av in items:
        if op is sre.LITERAL:
            codes.append(av)
        elif op is sre.RANGE and av[1] - av[0] < MAX_CLASS:
            codes.extend(range(av[0], av[1] + 1))
        else:  # NEGATE, CATEGORY, a wide range
            return ANY_CHAR
    chars = _chars(codes)
    return chars if chars.exact is None or len(chars.exact) <= MAX_CLASS else ANY_CHAR


def _at_least_once(x: _Info) -> _Info:
    """x+: starts and ends as x does, but is no longer exact."""
    if x.exact is None:
        return x
    return _simplify(_Info(x.can_empty, None, x.exact, x.exact, x.match))


def _cross(a: Iterable[str], b: Iterable[str]) -> frozenset[str]:
    return frozenset(x + y for x, y in product(a, b))


def _concat(x: _Info, y: _Info) -> _Info:
    match = x.match & y.match
    if x.exact is not None and y.exact is not None:
        return _simplify(_Info(x.can_empty and y.can_empty, _cross(x.exact, y.exact), match=match))
    if x.exact is not None:
        prefix = _cross(x.exact, y.prefix)
    else:
        prefix = x.prefix | y.prefix if x.can_empty else x.prefix
    if y.exact is not None:
        suffix = _cross(x.suffix, y.exact)
    else:
        suffix = y.suffix | x.suffix if y.can_empty else y.suffix
    if x.exact is None and y.exact is None and len(x.suffix) <= MAX_SET and len(y.prefix) <= MAX_SET:
        # Text spanning the boundary: x's end joined to y's start.
        match &= any_of_strings(_cross(x.suffix, y.prefix))
    return _simplify(_Info(x.can_empty and y.can_empty, None, prefix, suffix, match))


def _alternate(x: _Info, y: _Info) -> _Info:
    can_empty = x.can_empty or y.can_empty
    if x.exact is not None and y.exact is not None:
        return _simplify(_Info(can_empty, x.exact | y.exact, match=x.match | y.match))
    x, y = _inexact(x), _inexact(y)
    return _simplify(_Info(can_empty, None, x.prefix | y.prefix, x.suffix | y.suffix, x.match | y.match))


def _inexact(x: _Info) -> _Info:
    if x.exact is None:
        return x
    return _Info(x.can_empty, None, x.exact, x.exact, x.match & any_of_strings(x.exact))


def _simplify(info: _Info, *, force: bool = False) -> _Info:
    """Keep the sets small: move what they say into `match` and keep only their ends."""
    exact = info.exact
    if exact is not None:
        shortest = min(map(len, exact), default=0)
        if not (len(exact) > MAX_EXACT or shortest >= 4 or (force and shortest >= 3)):
            return info
        info = _Info(
            info.can_empty,
            None,
            frozenset(s[:2] for s in exact),
            frozenset(s[-2:] for s in exact),
            info.match & any_of_strings(exact),
        )
    match = info.match & any_of_strings(info.prefix) & any_of_strings(info.suffix)
    return _Info(info.can_empty, None, _shorten(info.prefix, False), _shorten(info.suffix, True), match)


def _shorten(strings: frozenset[str], from_end: bool) -> frozenset[str]:
    """Cut to at most 2 characters (their trigrams are in `match` now), then shorter until few."""
    for keep in (2, 1, 0):
        strings = frozenset(s[-keep:] if from_end and keep else s[:keep] for s in strings)
        if len(strings) <= MAX_SET:
            break
    return strings


# -- verification (pure) ------------------------------------------------------------------------


@attrs.frozen
class LineMatch:
    line: int  # in the file, 1-based
    column: int  # 1-based, in characters
    start: int  # the match, as offsets into the chunk's content
    end: int


def compile_pattern(pattern: str, *, case_sensitive: bool) -> re.Pattern[str]:
    """`^` and `$` match at line ends, as in grep; RequestError for an invalid pattern."""
    flags = re.MULTILINE | (0 if case_sensitive else re.IGNORECASE)
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        raise RequestError(_regex_error(pattern, exc)) from None
    except RecursionError:
        raise RequestError("regex: the pattern is nested too deeply") from None


def line_matches(content: str, first_line: int, patterns: Sequence[re.Pattern[str]]) -> list[LineMatch]:
    """The first match on each line where any pattern matches, in line order; none unless
    every pattern matches somewhere in `content`. A match spanning lines counts for its first."""
    by_line: dict[int, LineMatch] = {}
    for pattern in patterns:
        line, line_start, scanned = first_line, 0, 0
        found = False
        for m in pattern.finditer(content):
            found = True
            newlines = content.count("\n", scanned, m.start())
            if newlines:
                line += newlines
                line_start = content.rindex("\n", scanned, m.start()) + 1
            scanned = m.start()
            known = by_line.get(line)
            if known is None or m.start() < known.start:
                by_line[line] = LineMatch(line, m.start() - line_start + 1, m.start(), m.end())
        if not found:
            return []
    return [by_line[line] for line in sorted(by_line)]


def line_snippet(content: str, match: LineMatch, patterns: Sequence[re.Pattern[str]] = ()) -> tuple[str, Matches]:
    """The matching line, raw, long lines cut around the match, with the offsets of the match and
    of every other match of `patterns` on it (clipped to the line)."""
    start = content.rfind("\n", 0, match.start) + 1
    end = content.find("\n", match.start)
    end = len(content) if end < 0 else end
    if end - start > SNIPPET_CHARS:
        start = max(start, match.start - SNIPPET_CHARS // 3)
        end = min(end, start + SNIPPET_CHARS)
    spans = [(match.start, match.end)]
    spans += [(m.start(), m.end()) for pattern in patterns for m in pattern.finditer(content, start, end)]
    return content[start:end], merged((max(s, start) - start, min(e, end) - start) for s, e in spans)


# -- search (blocking) ---------------------------------------------------------------------------


@attrs.frozen
class RegexResult:
    hits: list[SearchHit]
    notes: list[str]


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def search_regex(
    store: Store,
    patterns: Sequence[str],
    filters: Filters,
    limit: int,
    *,
    case_sensitive: bool,
    words: Sequence[tantivy.Query] = (),
    explain: bool = False,
) -> RegexResult:
    """Lines of chunks where `patterns` match (each chunk must match all of them, and `words`).

    Candidates come in rank order: a chunk defining the searched identifier first, then by
    facet weight (source first), then in index order. Blocking: run in a thread.
    """
    compiled = [compile_pattern(p, case_sensitive=case_sensitive) for p in patterns]
    prefilter = ALL
    for pattern in compiled:
        prefilter &= trigram_query(pattern.pattern, pattern.flags)
    if prefilter == NONE:
        return RegexResult([], [])
    must, should = tantivy.Occur.Must, tantivy.Occur.Should
    required = [(must, q) for q in words] + filter_clauses(filters, "chunk")
    if prefilter != ALL:
        required.append((must, _tantivy_query(prefilter)))
    names = sorted({p.lower() for p in patterns if _IDENTIFIER.fullmatch(p)})
    definition = tantivy.Query.term_set_query(SCHEMA, "symbol_exact", names) if names else None
    query = tantivy.Query.boolean_query(
        [(must, tantivy.Query.const_score_query(tantivy.Query.boolean_query(required), 1.0))]
        + ([(should, tantivy.Query.const_score_query(definition, 1.0))] if definition is not None else [])
    )
    limit = min(limit, MAX_LIMIT)
    candidates = _Candidates(store.searcher(), query, max(64, 2 * limit), MAX_SCAN_CHUNKS if prefilter == ALL else None)
    hits: list[SearchHit] = []
    seen: set[tuple[str, str, int]] = set()
    for score, chunk in candidates:
        for match in line_matches(chunk.content, chunk.start_line, compiled):
            key = (chunk.repo, chunk.path, match.line)
            if key in seen:  # overlapping windows of one file hold some lines twice
                continue
            seen.add(key)
            explained = _explain(score, chunk.facets) if explain else None
            snippet, marked = line_snippet(chunk.content, match, compiled)
            hits.append(chunk_hit(chunk, score, snippet, marked, line=match.line, column=match.column, explain=explained))
            if len(hits) >= limit:
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
                yield score, stored_chunk(self.searcher.doc(address))
            page *= 2

    @property
    def cut_short(self) -> bool:
        return self.total is not None and self.scanned < self.total


def _explain(score: float, facets: Sequence[str]) -> dict[str, float]:
    weight = rank_weight(facets)
    return {"match": 1.0, "definition": round(score / weight - 1.0, 4), "facet": weight}


def _tantivy_query(query: TrigramQuery) -> tantivy.Query:
    occur = tantivy.Occur.Must if query.op == "and" else tantivy.Occur.Should
    clauses = [(occur, tantivy.Query.term_query(SCHEMA, "trigrams", t)) for t in sorted(query.trigrams)]
    clauses += [(occur, _tantivy_query(sub)) for sub in query.subs]
    return tantivy.Query.boolean_query(clauses)


def _regex_error(pattern: str, exc: re.error) -> str:
    where = "" if exc.pos is None else f" (column {exc.pos + 1})\n  {pattern}\n  {' ' * exc.pos}^"
    return f"regex: {exc.msg}{where}"
