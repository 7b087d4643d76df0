"""What text a pattern can match must contain, as a boolean query of trigrams. Pure.

A pattern is analysed with `re`'s own parser into a query of lowercased character trigrams
that any text it matches must contain — the approach of Russ Cox's codesearch:
`Parse(Duration|Time)` needs ("par" AND "ars" AND ... AND ("dur" AND ...) OR ("tim" AND ...)).
Sets stay small (the bounds below), so the analysis is linear in the pattern's length.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from itertools import product
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Literal

import attrs

from codeweir.errors import RequestError, excerpt

MAX_EXACT = 8  # strings in an exact set before it is turned into trigrams
MAX_SET = 20  # strings in a prefix or suffix set before they are shortened
MAX_CLASS = 32  # characters in a class (lowercased) before it counts as "any character"
# Trigrams an AND keeps (any of them narrow as well; dropping some never loses a match), and
# alternatives an OR may have before it counts as "anything": the analysis stays linear.
MAX_AND = 48
MAX_OR = 64

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
    if op == "or" and len(trigrams) + len(subs) > MAX_OR:
        return ALL
    if op == "and" and len(trigrams) + len(subs) > MAX_AND:
        kept = sorted(trigrams)[:MAX_AND]
        trigrams = set(kept)
        subs = set(sorted(subs, key=repr)[: MAX_AND - len(kept)])
    if len(trigrams) + len(subs) == 1 and subs:
        return subs.pop()
    return TrigramQuery(op, frozenset(trigrams), frozenset(subs))


def any_of_strings(strings: Iterable[str]) -> TrigramQuery:
    """Text containing one of `strings` (each as all its trigrams); ALL if one is too short."""
    out = NONE
    for s in strings:
        if len(s) < 3:
            return ALL
        trigrams = {s[i : i + 3] for i in range(len(s) - 2)}
        out |= TrigramQuery("and", frozenset(sorted(trigrams)[:MAX_AND] if len(trigrams) > MAX_AND else trigrams))
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
    return trigrams_of(parse_pattern(pattern, flags))


def literal_trigrams(literal: str) -> TrigramQuery:
    """What a (lowercased) text must contain to contain `literal`: the trigrams of its runs of
    characters that lowercase to one character (as the index lowercases its trigrams)."""
    if literal.isascii():
        return any_of_strings([literal.lower()])
    out = ALL
    run: list[str] = []
    for char in [*literal, ""]:
        lower = char.lower()
        if len(lower) == 1:
            run.append(lower)
        else:
            out &= any_of_strings(["".join(run)])
            run = []
    return out


def parse_pattern(pattern: str, flags: int):
    try:
        return sre_parse.parse(pattern, flags)
    except re.error as exc:
        raise RequestError(pattern_error(pattern, exc)) from None
    except OverflowError as exc:  # a repeat count beyond what `re` can hold
        raise RequestError(f"regex: {exc}") from None
    except RecursionError:
        raise RequestError("regex: the pattern is nested too deeply") from None


def trigrams_of(parsed) -> TrigramQuery:
    try:
        info = _simplify(_sequence(list(parsed)), force=True)
    except RecursionError:
        raise RequestError("regex: the pattern is nested too deeply") from None
    return info.match & any_of_strings(info.exact) if info.exact is not None else info.match


def _sequence(items: Sequence) -> _Info:
    """Items in a row. A run of four or more literal characters is taken whole, as the string it
    is: a long literal costs one step, not one per character."""
    info = EMPTY
    run: list[str] = []
    for op, av in [*items, (None, None)]:
        if op is sre.LITERAL and len(lower := chr(av).lower()) == 1:
            run.append(lower)
            continue
        if len(run) >= 4:
            info = _concat(info, _simplify(_Info(False, frozenset({"".join(run)}))))
        else:
            for char in run:
                info = _concat(info, _Info(False, frozenset({char})))
        run = []
        if op is not None:
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


def pattern_error(pattern: str, exc: re.error) -> str:
    return pointed("regex", exc.msg, pattern, exc.pos)


def pointed(kind: str, message: str, pattern: str, column: int | None) -> str:
    """`kind: message (column N)`, then the pattern (around N, if it is long) and a caret under N."""
    if column is None:
        return f"{kind}: {message}"
    shown, at = excerpt(pattern, column)
    return f"{kind}: {message} (column {column + 1})\n  {shown}\n  {' ' * at}^"
