"""Query planning over the store: lexical search with code-aware terms, filters, snippets.

Filters (repo, path glob, language, kind) are clauses of the Tantivy query itself, so a
filter never returns fewer results than exist because it ran after a top-k.
"""

from __future__ import annotations

import html
import re
import attrs
import tantivy

from .errors import RequestError
from .store import IDENT, PARTS, SCHEMA, Store, stored_chunk, tokens

MAX_LIMIT = 1000


@attrs.frozen
class Filters:
    repo: str | None = None
    path: str | None = None  # a glob: "*.go", "net/http/**", "src/*/main.py"
    lang: str | None = None
    kind: str | None = None


@attrs.frozen
class Hit:
    """One search result, flat, as the API and `search --json` print it."""

    repo: str
    path: str
    start_line: int
    end_line: int
    symbol: str
    kind: str
    language: str
    score: float
    snippet: str
    blob: str
    content_hash: str = attrs.field(default="", repr=False, eq=False)


def glob_to_regex(glob: str) -> str:
    """A path glob as Tantivy's (anchored) regex: `**` any depth, `*` and `?` within a segment.

    A glob without "/" matches the file name at any depth, as in ripgrep's `-g`.
    """
    if not glob:
        raise RequestError("path: the glob is empty")
    out = []
    i = 0
    while i < len(glob):
        c = glob[i]
        if glob.startswith("**/", i):
            out.append("(.*/)?")
            i += 3
            continue
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        out.append({"*": "[^/]*", "?": "[^/]"}.get(c) or re.escape(c))
        i += 1
    body = "".join(out)
    return body if "/" in glob.rstrip("/") else "(.*/)?" + body


def _term(field: str, value: str) -> tantivy.Query:
    return tantivy.Query.term_query(SCHEMA, field, value)


def filter_clauses(filters: Filters, doc_kind: str) -> list[tuple[tantivy.Occur, tantivy.Query]]:
    clauses = [(tantivy.Occur.Must, _term("doc_kind", doc_kind))]
    for field, value in (("repo", filters.repo), ("language", filters.lang), ("kind", filters.kind)):
        if value:
            clauses.append((tantivy.Occur.Must, _term(field, value)))
    if filters.path:
        try:
            clauses.append((tantivy.Occur.Must, tantivy.Query.regex_query(SCHEMA, "path", glob_to_regex(filters.path))))
        except ValueError as exc:
            raise RequestError(f"path: invalid glob {filters.path!r}: {exc}") from None
    return clauses


def lexical_query(text: str) -> tantivy.Query | None:
    """Every word must match (in content, symbol or path); identifiers and phrases rank higher.

    `parse duration` finds parseDuration, parse_duration and ParseDuration (subword terms,
    with a phrase boost for adjacency); `parseDuration` ranks its exact identifier first.
    """
    words = text.split()
    required = []
    for word in words:
        parts = tokens(PARTS, word)
        if not parts:
            continue
        # A word is present if all its subwords are, in content, symbol or path.
        per_field = []
        for field in ("content", "symbol", "path_parts"):
            if len(parts) == 1:
                per_field.append(_term(field, parts[0]))
            else:
                per_field.append(tantivy.Query.phrase_query(SCHEMA, field, parts))
        required.append((tantivy.Occur.Must, tantivy.Query.boolean_query([(tantivy.Occur.Should, q) for q in per_field])))
    if not required:
        return None
    boosts = []
    all_parts = tokens(PARTS, text)
    if len(all_parts) > 1:
        boosts.append(tantivy.Query.boost_query(tantivy.Query.phrase_query(SCHEMA, "content", all_parts), 2.0))
        boosts.append(tantivy.Query.boost_query(tantivy.Query.phrase_query(SCHEMA, "symbol", all_parts), 4.0))
    for ident in tokens(IDENT, text):
        boosts.append(tantivy.Query.boost_query(_term("ident", ident), 3.0))
        boosts.append(tantivy.Query.boost_query(_term("symbol_exact", ident), 8.0))
    for part in set(all_parts):
        boosts.append(tantivy.Query.boost_query(_term("symbol", part), 1.5))
    clauses = required + [(tantivy.Occur.Should, q) for q in boosts]
    return tantivy.Query.boolean_query(clauses)


def symbol_query(name: str) -> tantivy.Query:
    """Definitions by name: exact, then prefix, then fuzzy (constant scores, so the tiers hold)."""
    name = name.strip().lower()
    if not name or any(c.isspace() for c in name):
        raise RequestError(f"query: a symbol query is one name, got {name!r}")
    tiers = [
        (_term("symbol_exact", name), 3.0),
        (tantivy.Query.regex_query(SCHEMA, "symbol_exact", re.escape(name) + ".+"), 2.0),
        (tantivy.Query.fuzzy_term_query(SCHEMA, "symbol_exact", name, distance=1 if len(name) < 6 else 2), 1.0),
    ]
    return tantivy.Query.boolean_query(
        [(tantivy.Occur.Should, tantivy.Query.const_score_query(q, score)) for q, score in tiers]
    )


def search_symbols(store: Store, name: str, filters: Filters, limit: int) -> list[Hit]:
    """Blocking: run in a thread."""
    return _run(store, symbol_query(name), filters, limit)


def search_lexical(store: Store, text: str, filters: Filters, limit: int) -> list[Hit]:
    """Blocking: run in a thread."""
    query = lexical_query(text)
    if query is None:
        return []
    return _run(store, query, filters, limit)


def _run(store: Store, query: tantivy.Query, filters: Filters, limit: int) -> list[Hit]:
    full = tantivy.Query.boolean_query([(tantivy.Occur.Must, query), *filter_clauses(filters, "chunk")])
    searcher = store.searcher()
    result = searcher.search(full, limit=min(limit, MAX_LIMIT))
    snippets = tantivy.SnippetGenerator.create(searcher, query, SCHEMA, "content")
    snippets.set_max_num_chars(240)
    hits = []
    for score, address in result.hits:
        doc = searcher.doc(address)
        hits.append(to_hit(doc, score, snippets.snippet_from_doc(doc).to_html()))
    return hits


def to_hit(doc: tantivy.Document, score: float, snippet: str) -> Hit:
    c = stored_chunk(doc)
    return Hit(
        repo=c.repo,
        path=c.path,
        start_line=c.start_line,
        end_line=c.end_line,
        symbol=c.symbol_path or c.symbol,
        kind=c.kind,
        language=c.language,
        score=round(float(score), 4),
        snippet=snippet or _first_lines(c.content),
        blob=c.blob,
        content_hash=c.content_hash,
    )


def _first_lines(content: str, n: int = 3) -> str:
    return html.escape("\n".join(content.splitlines()[:n]))

