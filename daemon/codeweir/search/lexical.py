"""Lexical search with code-aware terms, and definitions by name (`sym:`).

Filters (repo, path glob, language, kind, facets, and their negations) are clauses of the
Tantivy query itself, so a filter never returns fewer results than exist because it ran after
a top-k.

Lexical ranking: a query is a sum of labelled parts (the words, their adjacency, a definition
of the name, the exact identifier), multiplied by the chunk's source weight squared (source
over tool code, tests, vendored, generated and minified code: see `facets.lexical_factor`).
Tantivy applies the facet weight once; each class of chunks is searched apart and multiplied
again, so the top-k is exact. With `explain`, each hit lists what each part and the factor gave.

Symbol ranking: the candidates whose name matches, best tier first (exact, prefix, fuzzy), are
ranked in Python by `ranking.rank_definitions`: exact case, definition over attribute, public
over private, source first, then the most referenced, then by repository, path and line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import attrs
import tantivy

from codeweir.chunk import terms
from codeweir.errors import RequestError, excerpt
from codeweir.facets import lexical_factor, source_weight
from codeweir.index.schema import SCHEMA, stored_chunk
from codeweir.protocol_results import SearchHit
from codeweir.records import StoredChunk
from codeweir.search.filters import (
    FACET_WEIGHT,
    LEXICAL_WEIGHT,
    MAX_LIMIT,
    Filters,
    IndexReader,
    filter_clauses,
    placements,
    term,
    visibility_clauses,
    visible,
    word_query,
)
from codeweir.search.hits import best_fragment, chunk_hit, definition_snippet
from codeweir.search.query import MAX_SYMBOL_CHARS
from codeweir.search.ranking import (
    TIERS,
    Definition,
    definition_score,
    is_attribute,
    publicity,
    rank_definitions,
)


@attrs.frozen
class Scored:
    """A query as labelled parts whose scores add up, so a hit's score can be explained."""

    parts: tuple[tuple[str, tantivy.Occur, tantivy.Query], ...]

    def query(self) -> tantivy.Query:
        return tantivy.Query.boolean_query([(occur, query) for _, occur, query in self.parts])

    def explain(self, searcher: tantivy.Searcher, address: tantivy.DocAddress) -> dict[str, float]:
        out: dict[str, float] = {}
        for label in dict.fromkeys(label for label, _, _ in self.parts):
            query = tantivy.Query.boolean_query([(o, q) for name, o, q in self.parts if name == label])
            try:
                value = json.loads(query.explain(searcher, address).to_json())["value"]
            except ValueError:  # this part does not match the document
                value = 0.0
            out[label] = round(float(value), 4)
        return out


# Subwords in a query's words (`parseDuration` is 2): each is a clause of the search, and costs
# its time; a query's words are at most MAX_TERMS, but one word may have many.
MAX_PARTS = 1024
SNIPPET_CHARS = 240


def required_words(text: str) -> list[tantivy.Query]:
    """One query per word of `text`, each of which a chunk must match."""
    parts = len(terms.parts(text))
    if parts > MAX_PARTS:
        raise RequestError(
            f"query: at most {MAX_PARTS:,} words and parts of words (parseDuration, parse_duration and"
            f" parse.duration are 2), this one {parts:,}: shorten it, or quote an exact string"
        )
    return [q for word in text.split() if (q := word_query(word)) is not None]


def lexical_query(text: str) -> Scored | None:
    """Every word must match (in content, symbol or path); definitions, identifiers and
    phrases rank higher.

    `parse duration` finds parseDuration, parse_duration and ParseDuration (subword terms,
    with a boost for adjacency); `parseDuration` ranks its definition, then its exact
    identifier, first.
    """
    required = required_words(text)
    if not required:
        return None
    must, should = tantivy.Occur.Must, tantivy.Occur.Should

    def boost(query: tantivy.Query, factor: float) -> tantivy.Query:
        return tantivy.Query.boost_query(query, factor)

    parts = [("words", must, q) for q in required]
    all_parts = terms.parts(text)
    if len(all_parts) > 1:
        parts.append(("phrase", should, boost(tantivy.Query.phrase_query(SCHEMA, "words", all_parts), 2.0)))
        parts.append(("definition", should, boost(tantivy.Query.phrase_query(SCHEMA, "symbol", all_parts), 4.0)))
    for ident in terms.identifiers(text):
        parts.append(("identifier", should, boost(term("ident", ident), 3.0)))
        parts.append(("definition", should, boost(term("symbol_exact", ident), 8.0)))
    for part in sorted(set(all_parts)):
        parts.append(("definition", should, boost(term("symbol", part), 1.5)))
    return Scored(tuple(parts))


def search_lexical(store: IndexReader, text: str, filters: Filters, limit: int, *, explain: bool = False) -> list[SearchHit]:
    """Blocking: run in a thread."""
    scored = lexical_query(text)
    if scored is None:
        return []
    limit = min(limit, MAX_LIMIT)
    query = scored.query()
    searcher = store.searcher()
    filters = visible(store, filters)
    allowed = filter_clauses(filters, "chunk")
    # Filters select without scoring: Tantivy's score is the parts' sum times the stored
    # lexical weight (facets.lexical_factor), in one search over every kind of chunk.
    only = tantivy.Query.const_score_query(tantivy.Query.boolean_query(allowed), 0.0)
    full = tantivy.Query.boolean_query([(tantivy.Occur.Must, query), (tantivy.Occur.Must, only)])
    found = _top(searcher, full, limit, LEXICAL_WEIGHT)
    placed = placements(filters)
    chunks = [(score, address, stored_chunk(searcher.doc(address), placed)) for score, address in found]
    # Equal scores (as shown) in place order, whatever Tantivy's document order.
    chunks.sort(key=lambda item: (-round(item[0], 4), item[2].repo, item[2].path, item[2].start_line))
    # As Tantivy weighs a snippet's terms: the rarer, the more.
    frequencies = {part: searcher.doc_freq("words", part) for part in set(terms.parts(text))}
    weights = {part: 1 / (1 + n) for part, n in frequencies.items() if n}
    hits = []
    for score, address, chunk in chunks[:limit]:
        snippet, matches = best_fragment(chunk.content, weights, SNIPPET_CHARS)
        explained = None
        if explain:
            explained = {**scored.explain(searcher, address), "facet": round(lexical_factor(chunk.facets, chunk.path), 4)}
        hits.append(chunk_hit(chunk, score, snippet, matches, explain=explained))
    return hits


def _top(searcher: tantivy.Searcher, query: tantivy.Query, limit: int, weight: str) -> list[tuple[float, tantivy.DocAddress]]:
    """The best `limit` hits, and any tied with the last of them: which of equals make the cut
    is then decided by place, not by Tantivy's document order. One hit more than `limit` tells
    whether any is tied past it: most searches take one call (each gives the GIL up, and under
    load waits a switch interval to have it back)."""
    if limit <= 0:
        return []
    size = limit + 1
    while True:
        hits = searcher.search(query, limit=size, weight_by_field=weight).hits
        if len(hits) < size or hits[-1][0] < hits[limit - 1][0] or size >= 4 * MAX_LIMIT:
            return hits
        size *= 2


# -- definitions by name ---------------------------------------------------------------------

# Candidates read per tier of name match; beyond it, Tantivy's choice (source first) stands.
TIER_CAP = 2000
_QUALIFIED = re.compile(r"[A-Za-z_$][\w$]*((\.|::|/)[A-Za-z_$][\w$]*)+")


@attrs.frozen
class SymbolName:
    """A `sym:` query: a name, and the qualifiers before it (`bufio.NewReader`, `Query.join`,
    `internal/pkgbits.newReader`), lowercased: each must be in the definition's scope, in order."""

    name: str
    qualifiers: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> SymbolName:
        text = text.strip()
        if not text or any(c.isspace() for c in text):
            raise RequestError(f"query: a symbol query is one name, got {excerpt(text, 0)[0]!r}")
        if len(text) > MAX_SYMBOL_CHARS:
            raise RequestError(f"query: a name is at most {MAX_SYMBOL_CHARS} characters, this one {len(text):,}")
        if not _QUALIFIED.fullmatch(text):  # `v1.2`, `operator()`: a name as it is
            return cls(text)
        *qualifiers, name = re.split(r"\.|::|/", text)
        return cls(name, tuple(q.lower() for q in qualifiers))

    def within(self, scope: Sequence[str]) -> bool:
        """Whether the qualifiers appear in `scope` in order (others may come between)."""
        rest = iter(scope)
        return all(q in rest for q in self.qualifiers)


def symbol_tiers(name: str) -> list[tantivy.Query]:
    """Queries for names equal to `name` (in any case), starting with it, and near it.

    The prefix is a Levenshtein automaton of distance 0, whose size grows with the name as the
    name does; a regex (`name.+`) would exceed Tantivy's regex size limit for a long name."""
    name = name.lower()
    exact = term("symbol_exact", name)
    starts = tantivy.Query.fuzzy_term_query(SCHEMA, "symbol_exact", name, distance=0, prefix=True)
    fuzzy = tantivy.Query.fuzzy_term_query(SCHEMA, "symbol_exact", name, distance=1 if len(name) < 6 else 2)
    must, not_ = tantivy.Occur.Must, tantivy.Occur.MustNot
    prefix = tantivy.Query.boolean_query([(must, starts), (not_, exact)])
    return [
        exact,
        prefix,
        tantivy.Query.boolean_query([(must, fuzzy), (not_, exact), (not_, starts)]),
    ]


def search_symbols(store: IndexReader, name: str, filters: Filters, limit: int, *, explain: bool = False) -> list[SearchHit]:
    """Definitions by name, best first (see the module's docstring). Blocking: run in a thread."""
    wanted = SymbolName.parse(name)
    limit = min(limit, MAX_LIMIT)
    filters = visible(store, filters)
    placed = placements(filters)
    searcher = store.searcher()
    must = tantivy.Occur.Must
    allowed = filter_clauses(filters, "chunk") + [(must, term("scope", q)) for q in wanted.qualifiers]
    candidates: list[Definition] = []
    for tier, query in enumerate(symbol_tiers(wanted.name)):
        full = tantivy.Query.const_score_query(tantivy.Query.boolean_query([(must, query), *allowed]), 1.0)
        for _, address in searcher.search(full, limit=TIER_CAP, weight_by_field=FACET_WEIGHT).hits:
            doc = searcher.doc(address)
            scope = tuple(doc.get_all("scope"))
            if wanted.within(scope):
                candidates.append(_definition(tier, wanted.name, stored_chunk(doc, placed), scope))
        if len(candidates) >= limit:
            break
    references = _References(searcher, visibility_clauses(filters.visibility))
    hits = []
    for d, count in rank_definitions(candidates, limit, references.of):
        chunk, _ = d.hit
        parts = definition_score(d, count)
        snippet, matches = definition_snippet(chunk.content, chunk.symbol)
        explained = {**parts, "referenced_by": float(count)} if explain else None
        hits.append(chunk_hit(chunk, sum(parts.values()), snippet, matches, explain=explained))
    return hits


def _definition(tier: int, name: str, chunk: StoredChunk, scope: tuple[str, ...]) -> Definition:
    symbol = chunk.symbol
    enclosing = len([p for p in chunk.symbol_path[: len(chunk.symbol_path) - len(symbol)].split(".") if p])
    module = scope[: len(scope) - enclosing]
    exact_case = symbol == name if TIERS[tier] == "exact" else TIERS[tier] == "prefix" and symbol.startswith(name)
    return Definition(
        tier=tier,
        exact_case=exact_case,
        attribute=is_attribute(chunk.language, chunk.kind, symbol, chunk.content),
        publicity=publicity(chunk.language, chunk.path, module, chunk.symbol_path, symbol),
        weight=source_weight(chunk.facets, chunk.path),
        repo=chunk.repo,
        path=chunk.path,
        start_line=chunk.start_line,
        hit=(chunk, module),
    )


@attrs.define
class _References:
    """How many chunks name a definition, plus how many name it qualified by its module (the
    last two parts of a top-level definition's module: `bufio.NewReader`, `models.QuerySet`):
    a cheap proxy for how much it is used. Only the chunks the search sees count (`seen`: its
    visibility clauses), so a version on several refs counts once. Each count is one search,
    and each search gives the GIL up and waits for it again, which a busy daemon makes slow: a
    name is counted once for all its definitions, each qualified form once."""

    searcher: tantivy.Searcher
    seen: Sequence[tuple[tantivy.Occur, tantivy.Query]]
    _counts: dict[tuple[str, tuple[str, ...]], int] = attrs.field(factory=dict)

    def of(self, d: Definition) -> int:
        chunk, module = d.hit
        name = chunk.symbol.lower()
        modules = tuple(m for m in module[-2:] if _IDENTIFIER.fullmatch(m)) if chunk.symbol_path == chunk.symbol else ()
        total = self._count(name, ())
        return total + self._count(name, modules) if modules else total

    def _count(self, name: str, modules: tuple[str, ...]) -> int:
        if (found := self._counts.get((name, modules))) is None:
            if modules:
                phrases = [(tantivy.Occur.Should, tantivy.Query.phrase_query(SCHEMA, "ident", [m, name])) for m in modules]
                query = tantivy.Query.boolean_query(phrases)
            else:
                query = term("ident", name)
            if self.seen:
                query = tantivy.Query.boolean_query([(tantivy.Occur.Must, query), *self.seen])
            found = self._counts[(name, modules)] = self.searcher.search(query, limit=1, count=True).count
        return found


_IDENTIFIER = re.compile(r"[a-z0-9_]+")
