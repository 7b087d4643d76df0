"""Query planning over the store: lexical search with code-aware terms, filters, snippets.

Filters (repo, path glob, language, kind, facets, and their negations) are clauses of the
Tantivy query itself, so a filter never returns fewer results than exist because it ran after
a top-k. Ranking: a query is a sum of labelled parts (the words, their adjacency, a definition
of the name, the exact identifier), multiplied by the chunk's facet weight (source over tests,
vendored, generated and minified code: see `facets`), which Tantivy applies to every match.
With `explain`, each hit lists what each part and the weight gave.
"""

from __future__ import annotations

import json
import re

import attrs
import tantivy

from codeweir.errors import RequestError
from codeweir.facets import rank_weight
from codeweir.index.store import IDENT, PARTS, SCHEMA, Store, tokens
from codeweir.protocol import SearchHit
from codeweir.search.filters import FACET_WEIGHT, MAX_LIMIT, Filters, filter_clauses, term, word_query
from codeweir.search.hits import to_hit


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


def required_words(text: str) -> list[tantivy.Query]:
    """One query per word of `text`, each of which a chunk must match."""
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
    all_parts = tokens(PARTS, text)
    if len(all_parts) > 1:
        parts.append(("phrase", should, boost(tantivy.Query.phrase_query(SCHEMA, "content", all_parts), 2.0)))
        parts.append(("definition", should, boost(tantivy.Query.phrase_query(SCHEMA, "symbol", all_parts), 4.0)))
    for ident in tokens(IDENT, text):
        parts.append(("identifier", should, boost(term("ident", ident), 3.0)))
        parts.append(("definition", should, boost(term("symbol_exact", ident), 8.0)))
    for part in sorted(set(all_parts)):
        parts.append(("definition", should, boost(term("symbol", part), 1.5)))
    return Scored(tuple(parts))


# Tier scores spaced so that the facet weight (1 to 2) never lifts a tier over the one above;
# an exact name is also within fuzzy distance, so it scores 9 + 1.
SYMBOL_TIERS = (("exact", 9.0), ("prefix", 3.0), ("fuzzy", 1.0))


def symbol_query(name: str) -> Scored:
    """Definitions by name: exact, then prefix, then fuzzy (constant scores, so the tiers hold)."""
    name = name.strip().lower()
    if not name or any(c.isspace() for c in name):
        raise RequestError(f"query: a symbol query is one name, got {name!r}")
    queries = {
        "exact": term("symbol_exact", name),
        "prefix": tantivy.Query.regex_query(SCHEMA, "symbol_exact", re.escape(name) + ".+"),
        "fuzzy": tantivy.Query.fuzzy_term_query(SCHEMA, "symbol_exact", name, distance=1 if len(name) < 6 else 2),
    }
    return Scored(
        tuple((tier, tantivy.Occur.Should, tantivy.Query.const_score_query(queries[tier], score)) for tier, score in SYMBOL_TIERS)
    )


def search_symbols(store: Store, name: str, filters: Filters, limit: int, *, explain: bool = False) -> list[SearchHit]:
    """Blocking: run in a thread."""
    return _run(store, symbol_query(name), filters, limit, explain)


def search_lexical(store: Store, text: str, filters: Filters, limit: int, *, explain: bool = False) -> list[SearchHit]:
    """Blocking: run in a thread."""
    scored = lexical_query(text)
    if scored is None:
        return []
    return _run(store, scored, filters, limit, explain)


def _run(store: Store, scored: Scored, filters: Filters, limit: int, explain: bool) -> list[SearchHit]:
    query = scored.query()
    # Filters select without scoring, so the score is the parts' sum times the facet weight.
    only = tantivy.Query.const_score_query(tantivy.Query.boolean_query(filter_clauses(filters, "chunk")), 0.0)
    full = tantivy.Query.boolean_query([(tantivy.Occur.Must, query), (tantivy.Occur.Must, only)])
    searcher = store.searcher()
    result = searcher.search(full, limit=min(limit, MAX_LIMIT), weight_by_field=FACET_WEIGHT)
    snippets = tantivy.SnippetGenerator.create(searcher, query, SCHEMA, "content")
    snippets.set_max_num_chars(240)
    hits = []
    for score, address in result.hits:
        doc = searcher.doc(address)
        hit = to_hit(doc, score, snippets.snippet_from_doc(doc).to_html())
        if explain:
            hit = attrs.evolve(hit, explain={**scored.explain(searcher, address), "facet": rank_weight(hit.facets)})
        hits.append(hit)
    return hits
