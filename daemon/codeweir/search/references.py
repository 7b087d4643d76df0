"""References to an identifier, found by search, as Sourcegraph's search-based code navigation
finds them when no precise index exists: every whole-word occurrence of the name (a trigram
search verified by a regex, search/regex.py), less the lines that define it (the symbol index's
definitions of exactly that name, search/lexical.py). No compiler resolves anything: a
same-named identifier in another scope, a string or a comment counts too, and the answer says so.

Occurrences come in the exact search's order (chunks defining or ranking higher first, source
before tests), grouped by file in the order each file first appears, by line and column within
a file. A search reads at most MAX_OCCURRENCE_LINES matching lines, always that many, so the
list a cursor pages through is the same on every page.

Blocking: run in a thread.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import attrs

from codeweir.errors import RequestError
from codeweir.search.filters import visible
from codeweir.search.lexical import search_symbols
from codeweir.search.regex import search_regex

if TYPE_CHECKING:
    from codeweir.index.store import Store
    from codeweir.protocol_results import SearchHit
    from codeweir.search.filters import Filters

MAX_OCCURRENCE_LINES = 1000  # matching lines read per request (search/filters.MAX_LIMIT)
MAX_DEFINITIONS = 50
METHOD = (
    "search-based: whole-word occurrences of the name, less its definitions in the symbol index; "
    "not compiler-resolved, so same-named identifiers elsewhere, strings and comments count too"
)
_NAME = re.compile(r"[A-Za-z_$][\w$]*")
_QUALIFIED = re.compile(r"[A-Za-z_$][\w$]*((\.|::|/)[A-Za-z_$][\w$]*)+")
_IDENTIFIER_CHAR = re.compile(r"[\w$]")
_COMMENT_OR_DECORATOR = re.compile(r"\s*(#|//|/\*|\*|--|@|\"\"\"|''')")


@attrs.frozen
class Occurrence:
    repo: str
    path: str
    line: int
    column: int  # 1-based, in characters
    text: str  # the line (a long line cut around the occurrence)
    language: str = ""
    blob: str = ""


@attrs.frozen
class Definition:
    repo: str
    path: str
    line: int
    symbol: str
    kind: str


@attrs.frozen
class References:
    name: str
    definitions: tuple[Definition, ...]
    occurrences: tuple[Occurrence, ...]  # grouped by file (see the module's docstring)
    complete: bool  # False: the search stopped at MAX_OCCURRENCE_LINES matching lines
    notes: tuple[str, ...] = ()
    method: str = METHOD  # how they were found, in words


def identifier(symbol: str) -> tuple[str, list[str]]:
    """The identifier to find for `symbol` (the last part of a qualified name), and notes."""
    symbol = symbol.strip()
    if _NAME.fullmatch(symbol):
        return symbol, []
    if _QUALIFIED.fullmatch(symbol):
        name = re.split(r"\.|::|/", symbol)[-1]
        return name, [f"references of {name!r}, the last part of {symbol!r}: qualifiers are not resolved"]
    raise RequestError(f"symbol: {symbol!r} is not an identifier (letters, digits, _ and $, not starting with a digit)")


def find_references(store: Store, symbol: str, filters: Filters, *, case_sensitive: bool = True) -> References:
    name, notes = identifier(symbol)
    filters = visible(store, filters)  # the views searched: their versions only, each once
    # \b on the sides that are word characters (the linear-time engine has no lookaround); a `$`
    # next to an occurrence, which \b cannot see, is checked on the line below.
    left = r"\b" if re.match(r"\w", name[0]) else ""
    right = r"\b" if re.match(r"\w", name[-1]) else ""
    pattern = left + re.escape(name) + right
    found = search_regex(store, [pattern], filters, MAX_OCCURRENCE_LINES, case_sensitive=case_sensitive)
    definitions = _definitions(store, name, filters, case_sensitive)
    by_file: dict[tuple[str, str, str], list[Occurrence]] = {}
    for hit in found.hits:
        by_file.setdefault((hit.repo, hit.path, hit.blob), []).extend(_occurrences(hit))
    occurrences: list[Occurrence] = []
    lines: dict[int, int] = {}  # a definition's index -> the line its name is on
    for (repo, path, blob), found_here in by_file.items():
        found_here.sort(key=lambda o: (o.line, o.column))
        defining = [(i, hit) for i, (d, hit) in enumerate(definitions) if (hit.repo, hit.path, hit.blob) == (repo, path, blob)]
        occurrences.extend(_without_definitions(found_here, defining, lines))
    complete = len(found.hits) < MAX_OCCURRENCE_LINES
    notes += [n for n in found.notes if not n.startswith("stopped at ")]
    if not complete:
        notes.append(f"the search stopped at {MAX_OCCURRENCE_LINES} matching lines; narrow it with repo, path or lang")
    return References(
        name=name,
        definitions=tuple(attrs.evolve(d, line=lines.get(i, d.line)) for i, (d, _) in enumerate(definitions)),
        occurrences=tuple(occurrences),
        complete=complete,
        notes=tuple(notes),
    )


def _definitions(store: Store, name: str, filters: Filters, case_sensitive: bool) -> list[tuple[Definition, SearchHit]]:
    """Definitions of exactly `name` (in its case, unless not case-sensitive), as the symbol index has them."""
    out = []
    for hit in search_symbols(store, name, filters, MAX_DEFINITIONS):
        defined = hit.symbol.rsplit(".", 1)[-1]
        if defined == name or (not case_sensitive and defined.lower() == name.lower()):
            out.append((Definition(hit.repo, hit.path, hit.start_line, hit.symbol, hit.kind), hit))
    return out


def _occurrences(hit: SearchHit) -> list[Occurrence]:
    """Every occurrence on the hit's line: the hit's match and the others its snippet marks."""
    assert hit.line is not None and hit.column is not None
    if not hit.matches:
        return [Occurrence(hit.repo, hit.path, hit.line, hit.column, hit.snippet, hit.language, hit.blob)]
    first = hit.matches[0][0]
    return [
        Occurrence(hit.repo, hit.path, hit.line, hit.column + start - first, hit.snippet, hit.language, hit.blob)
        for start, end in hit.matches
        if not _IDENTIFIER_CHAR.match(hit.snippet[start - 1 : start]) and not _IDENTIFIER_CHAR.match(hit.snippet[end : end + 1])
    ]


def _without_definitions(
    found: list[Occurrence], defining: list[tuple[int, SearchHit]], lines: dict[int, int]
) -> list[Occurrence]:
    """`found` (one file's occurrences, in order) less each definition's name: the first occurrence
    in the definition's lines that is not on a comment or decorator line. Its line goes in `lines`."""
    dropped: set[int] = set()
    for index, hit in defining:
        for position, occurrence in enumerate(found):
            if position in dropped or not hit.start_line <= occurrence.line <= hit.end_line:
                continue
            if _COMMENT_OR_DECORATOR.match(occurrence.text):
                continue
            dropped.add(position)
            lines[index] = occurrence.line
            break
    return [o for i, o in enumerate(found) if i not in dropped]
