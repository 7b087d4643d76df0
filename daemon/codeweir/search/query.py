"""The search query language, parsed without I/O.

    parse duration lang:go -path:vendor/**          words, with filters
    "err != nil" path:net/http/**                    an exact substring
    sym:Reader kind:struct                           a definition by name
    fix race author:alice after:2024-01-01           commits (mode commits)
    is:test  -is:generated  case:yes  repo:django
    ref:release/5.1 ref:main                         on a configured ref (any of them)

Filters are `key:value` (the value may be "quoted"); `-key:value` excludes, for the keys in
NEGATABLE. A `key:` that is not a known key is an ordinary word (`std::vector`, `http://x`),
unless it is a near-miss of one (`lnag:go`), which is an error. In regex mode, filters are
taken from the start and the end of the text, and everything between them, verbatim, is the
pattern. `ref:` may be given more than once (a hit on any of those refs); the other keys, but
for `author:` and `is:`, once. Errors name the problem and point at its column.
"""

from __future__ import annotations

import difflib
import re
from datetime import UTC, datetime
from typing import Literal

import attrs

from codeweir.errors import RequestError, excerpt
from codeweir.facets import FACETS, SOURCE
from codeweir.records import KINDS

KEYS = ("sym", "lang", "path", "repo", "ref", "kind", "is", "case", "author", "after", "before")
ALIASES = {"language": "lang", "file": "path", "symbol": "sym"}  # as GitHub and zoekt spell them
NEGATABLE = frozenset({"lang", "path", "repo", "kind", "is", "author"})
CASES = ("yes", "no", "auto")
MAX_TERMS = 256  # words, quoted literals and filters in one query (a regex pattern counts as one)
MAX_SYMBOL_CHARS = 256  # a name looked up by sym: (the longest real ones are far shorter)
Case = Literal["yes", "no", "auto"]


@attrs.frozen
class Query:
    words: tuple[str, ...] = ()  # free words, as typed
    literals: tuple[str, ...] = ()  # "quoted": exact substrings
    excluded: tuple[str, ...] = ()  # -word: chunks with this word are left out
    pattern: str = ""  # regex mode: the text between the filters, verbatim
    symbol: str | None = None
    repo: str | None = None
    refs: tuple[str, ...] = ()  # ref:NAME: the repositories' views of these refs (any of them)
    path: str | None = None
    lang: str | None = None
    kind: str | None = None
    facets: tuple[str, ...] = ()  # is:test: only these
    case: Case | None = None
    after: int | None = None  # epoch seconds, inclusive
    before: int | None = None  # epoch seconds, exclusive
    not_repos: tuple[str, ...] = ()
    not_paths: tuple[str, ...] = ()
    not_langs: tuple[str, ...] = ()
    not_kinds: tuple[str, ...] = ()
    not_facets: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    not_authors: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """The free words, for lexical search."""
        return " ".join(self.words)


@attrs.frozen
class _Token:
    column: int  # 1-based, where the token starts
    text: str  # as typed
    negated: bool = False
    key: str | None = None  # a filter's key
    value: str = ""  # a filter's value, or a word; unquoted
    value_column: int = 0
    quoted: bool = False


class _Error(Exception):
    def __init__(self, message: str, column: int) -> None:
        super().__init__(message)
        self.column = column


def parse_query(text: str, *, regex: bool = False) -> Query:
    """The query in `text`; RequestError, pointing at the problem's column, if it is not valid."""
    try:
        return _parse(text, regex)
    except _Error as exc:
        raise RequestError(_pointed(text, str(exc), exc.column)) from None


def _pointed(text: str, message: str, column: int) -> str:
    shown, at = excerpt(text, column - 1)
    return f"query: {message} (column {column})\n  {shown}\n  {' ' * at}^"


def _parse(text: str, regex: bool) -> Query:
    tokens = _tokenize(text, quotes=not regex)
    fields: dict[str, object] = {}
    lists: dict[str, list[str]] = {}
    seen: dict[str, _Token] = {}
    if regex:
        tokens, pattern = _peel_pattern(text, tokens)
        fields["pattern"] = pattern
    if len(tokens) > MAX_TERMS:  # each is a clause of the search, and costs its time
        raise _Error(
            f"a query has at most {MAX_TERMS} words, quoted literals and filters, this one {len(tokens)}",
            tokens[MAX_TERMS].column,
        )
    for token in tokens:
        if token.key is None:
            _word(token, lists)
        else:
            _filter(token, fields, lists, seen)
    query = Query(**fields, **{name: tuple(values) for name, values in lists.items()})  # type: ignore[arg-type]
    if query.symbol is not None and (query.words or query.literals):
        extra = next(t for t in tokens if t.key is None and not t.negated)
        raise _Error("sym: looks up one name; search the other words without sym:", extra.column)
    if query.after is not None and query.before is not None and query.after >= query.before:
        raise _Error("after: is not before before:", seen["before"].value_column)
    return query


def _peel_pattern(text: str, tokens: list[_Token]) -> tuple[list[_Token], str]:
    """Filters at either end; the text between them is the pattern."""
    start, end = 0, len(tokens)
    while start < end and tokens[start].key is not None:
        start += 1
    while end > start and tokens[end - 1].key is not None:
        end -= 1
    if start == end:
        return tokens, ""
    first, last = tokens[start], tokens[end - 1]
    pattern = text[first.column - 1 : last.column - 1 + len(last.text)]
    return tokens[:start] + tokens[end:], pattern


def _word(token: _Token, lists: dict[str, list[str]]) -> None:
    if token.negated:
        if token.quoted:
            raise _Error("a quoted literal cannot be excluded; exclude a word (-word) or a path (-path:)", token.column)
        lists.setdefault("excluded", []).append(token.value)
    elif token.quoted:
        if not token.value:
            raise _Error("empty quotes: put the text to find between them", token.column)
        lists.setdefault("literals", []).append(token.value)
    else:
        lists.setdefault("words", []).append(token.value)


def _filter(token: _Token, fields: dict[str, object], lists: dict[str, list[str]], seen: dict[str, _Token]) -> None:
    key, value = token.key, token.value
    assert key is not None
    if not value:
        raise _Error(f"{key}: needs a value", token.value_column)
    if token.negated and key not in NEGATABLE:
        raise _Error(f"{key}: cannot be negated", token.column)
    value = _checked_value(key, value, token.value_column)
    if key == "author" or token.negated:
        name = {"author": "authors", "is": "facets"}.get(key, f"{key}s")
        lists.setdefault(f"not_{name}" if token.negated else name, []).append(value)
        return
    if key in ("is", "ref"):
        lists.setdefault({"is": "facets", "ref": "refs"}[key], []).append(value)
        return
    if key in seen:
        raise _Error(f"{key}: is given twice (first at column {seen[key].column})", token.column)
    seen[key] = token
    if key in ("after", "before"):
        fields[key] = _epoch(value, token.value_column)
    else:
        fields["symbol" if key == "sym" else key] = value


def _checked_value(key: str, value: str, column: int) -> str:
    choices = {"is": (*FACETS, SOURCE), "case": CASES, "kind": KINDS}.get(key)
    if choices is not None and value not in choices:
        raise _Error(f"{key}: {value!r} is not one of {', '.join(choices)}", column)
    if key == "sym" and any(c.isspace() for c in value):
        raise _Error("sym: takes one name", column)
    if key == "sym" and len(value) > MAX_SYMBOL_CHARS:
        raise _Error(f"sym: a name is at most {MAX_SYMBOL_CHARS} characters, this one {len(value):,}", column)
    return value


def _epoch(value: str, column: int) -> int:
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise _Error(f"{value!r} is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][+HH:MM]", column) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp())


def _tokenize(text: str, *, quotes: bool) -> list[_Token]:
    tokens = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        start = i
        negated = text[i] == "-" and i + 1 < n and not text[i + 1].isspace()
        body = i + 1 if negated else i
        key, after_key = _key_at(text, body, _word_end(text, body))
        value_start = after_key if key else body
        if quotes and value_start < n and text[value_start] == '"':
            value, i = _quoted(text, value_start)
            quoted = True
        else:
            i = _word_end(text, i)
            value, quoted = text[value_start:i], False
        tokens.append(_Token(start + 1, text[start:i], negated, key, value, value_start + 1, quoted))
    return tokens


_NOT_SPACES = re.compile(r"\S*")  # \s is what str.isspace() says, in a str pattern
_QUOTE_OR_BACKSLASH = re.compile(r'["\\]')


def _word_end(text: str, i: int) -> int:
    """Where the run of non-space characters starting at `i` ends."""
    return _NOT_SPACES.match(text, i).end()  # type: ignore[union-attr]  # \S* always matches


def _key_at(text: str, i: int, end: int) -> tuple[str | None, int]:
    """A known filter key starting at `i` ("lang:", before `end`), and where its value starts."""
    colon = text.find(":", i, end)
    candidate = text[i:colon]
    if colon <= i or not candidate.isalpha():
        return None, i
    if candidate in KEYS or candidate in ALIASES:
        return ALIASES.get(candidate, candidate), colon + 1
    if near := difflib.get_close_matches(candidate.lower(), (*KEYS, *ALIASES), n=1, cutoff=0.7):
        raise _Error(f"unknown filter {candidate}: (did you mean {near[0]}:?); quote it to search for it", i + 1)
    return None, i


def _quoted(text: str, start: int) -> tuple[str, int]:
    """The text of the quoted string opening at `start` (\\" and \\\\ escaped), and the index after it."""
    out = []
    i = start + 1
    while (special := _QUOTE_OR_BACKSLASH.search(text, i)) is not None:
        j = special.start()
        out.append(text[i:j])
        if text[j] == "\\":
            escaped = j + 1 < len(text) and text[j + 1] in '"\\'
            out.append(text[j + 1] if escaped else "\\")
            i = j + 2 if escaped else j + 1
            continue
        if j + 1 < len(text) and not text[j + 1].isspace():
            raise _Error("a closing quote must be followed by a space", j + 2)
        return "".join(out), j + 1
    raise _Error("unterminated quote", start + 1)
