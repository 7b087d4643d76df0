"""Exact substring and regex search: a trigram prefilter in Tantivy, then linear-time matching.

Every chunk's content is indexed as its lowercased character trigrams. A pattern is analysed
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

import math
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from itertools import product
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Literal

import attrs
import re2
import tantivy
from re2 import _re2  # the binding itself: matching over bytes, by offsets

from codeweir.errors import RequestError
from codeweir.facets import rank_weight
from codeweir.index.store import SCHEMA, Store, stored_chunk
from codeweir.protocol import TIMED_OUT, SearchHit
from codeweir.records import StoredChunk
from codeweir.search.filters import FACET_WEIGHT, MAX_LIMIT, Filters, filter_clauses
from codeweir.search.hits import Matches, chunk_hit, merged
from codeweir.search.query import excerpt

MAX_EXACT = 8  # strings in an exact set before it is turned into trigrams
MAX_SET = 20  # strings in a prefix or suffix set before they are shortened
MAX_CLASS = 32  # characters in a class (lowercased) before it counts as "any character"
MAX_SCAN_CHUNKS = 10_000  # chunks a pattern without trigrams may scan
# Trigrams an AND keeps (any of them narrow as well; dropping some never loses a match), and
# alternatives an OR may have before it counts as "anything": the analysis stays linear.
MAX_AND = 48
MAX_OR = 64
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
    return _trigrams_of(_parse(pattern, flags))


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


def _parse(pattern: str, flags: int):
    try:
        return sre_parse.parse(pattern, flags)
    except re.error as exc:
        raise RequestError(_regex_error(pattern, exc)) from None
    except OverflowError as exc:  # a repeat count beyond what `re` can hold
        raise RequestError(f"regex: {exc}") from None
    except RecursionError:
        raise RequestError("regex: the pattern is nested too deeply") from None


def _trigrams_of(parsed) -> TrigramQuery:
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


# -- the engine: Python's syntax, RE2's linear-time matching --------------------------------------
#
# A pattern is parsed once, by Python's own parser (so its errors, and their columns, are those of
# Python's `re`), and the parse is both analysed into trigrams (above) and written out again in
# RE2's syntax, which RE2 matches in time linear in the text, releasing the GIL while it does.
# What RE2 cannot do in linear time (lookaround, backreferences, atomic groups, possessive
# repeats) is refused with the construct named and pointed at.

MAX_REPEAT = 1000  # RE2's largest repeat count (nested repeats multiplied together)
MAX_PROGRAM = 8192  # RE2 instructions in a pattern's compiled program
# Work per RE2 call is bounded: text is matched in windows of WINDOW_WORK // program size bytes
# (at least MIN_WINDOW), each searched with one more window after it, so a match longer than a
# window may be cut short. Even RE2's slowest path (its NFA, when a pattern's DFA outgrows its
# memory) then spends well under a second per call, and the budget is checked between calls.
WINDOW_WORK = 1 << 24
MIN_WINDOW = 1 << 11
MAX_WINDOW = 1 << 20

_UNANCHORED = _re2.RE2.Anchor.UNANCHORED
_FLAG_LETTERS = ((re.IGNORECASE, "i"), (re.MULTILINE, "m"), (re.DOTALL, "s"))
_CATEGORIES = {
    sre.CATEGORY_DIGIT: r"\d",
    sre.CATEGORY_NOT_DIGIT: r"\D",
    sre.CATEGORY_SPACE: r"\s",
    sre.CATEGORY_NOT_SPACE: r"\S",
    sre.CATEGORY_WORD: r"\w",
    sre.CATEGORY_NOT_WORD: r"\W",
}
_ANCHORS = {
    sre.AT_BEGINNING: "^",
    sre.AT_END: "$",
    sre.AT_BEGINNING_STRING: r"\A",
    sre.AT_END_STRING: r"\z",
    sre.AT_BOUNDARY: r"\b",
    sre.AT_NON_BOUNDARY: r"\B",
}


class _Unsupported(Exception):
    def __init__(self, what: str, marks: tuple[str, ...]) -> None:
        super().__init__(what)
        self.what = what
        self.marks = marks  # how the construct is spelled, to point at it


def _re2_syntax(parsed) -> str:
    """A parsed Python pattern written in RE2's syntax (non-capturing groups throughout)."""
    flags = "".join(letter for flag, letter in _FLAG_LETTERS if parsed.state.flags & flag)
    return (f"(?{flags})" if flags else "") + _re2_sequence(list(parsed))


def _re2_sequence(items: Sequence) -> str:
    return "".join(_re2_item(op, av) for op, av in items)


def _re2_item(op, av) -> str:
    if op is sre.LITERAL:
        return _re2_char(av)
    if op is sre.NOT_LITERAL:
        return f"[^{_re2_char(av)}]"
    if op is sre.ANY:
        return "."
    if op is sre.IN:
        return _re2_class(av)
    if op is sre.CATEGORY:
        return _CATEGORIES[av]
    if op is sre.AT:
        return _ANCHORS[av]
    if op is sre.BRANCH:
        return "(?:" + "|".join(_re2_sequence(list(branch)) for branch in av[1]) + ")"
    if op is sre.SUBPATTERN:
        _group, add, remove, sub = av
        on = "".join(letter for flag, letter in _FLAG_LETTERS if add & flag)
        off = "".join(letter for flag, letter in _FLAG_LETTERS if remove & flag)
        return f"(?{on}{'-' + off if off else ''}:{_re2_sequence(list(sub))})"
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
        low, high, sub = av
        if low > MAX_REPEAT or (high != sre.MAXREPEAT and high > MAX_REPEAT):
            raise _Unsupported(f"a repeat count above {MAX_REPEAT}", ("{",))
        if high == sre.MAXREPEAT:
            count = {0: "*", 1: "+"}.get(low, f"{{{low},}}")
        elif (low, high) == (0, 1):
            count = "?"
        else:
            count = f"{{{low}}}" if low == high else f"{{{low},{high}}}"
        return f"(?:{_re2_sequence(list(sub))}){count}{'?' if op is sre.MIN_REPEAT else ''}"
    if op is sre.ASSERT or op is sre.ASSERT_NOT:
        behind, negative = av[0] < 0, op is sre.ASSERT_NOT
        name = ("negative " if negative else "") + ("lookbehind" if behind else "lookahead")
        raise _Unsupported(name, ("(?<" + ("!" if negative else "="),) if behind else ("(?!" if negative else "(?=",))
    if op is sre.GROUPREF:
        raise _Unsupported("a backreference", ("\\", "(?P="))
    if op is sre.GROUPREF_EXISTS:
        raise _Unsupported("a conditional group", ("(?(",))
    if op is sre.ATOMIC_GROUP:
        raise _Unsupported("an atomic group", ("(?>",))
    if op is sre.POSSESSIVE_REPEAT:
        raise _Unsupported("a possessive repeat", ("*+", "++", "?+", "}+"))
    raise _Unsupported(f"{op} (a construct of Python's regex syntax)", ())


def _re2_class(items) -> str:
    out: list[str] = []
    for op, av in items:
        if op is sre.NEGATE:
            out.insert(0, "^")
        elif op is sre.LITERAL:
            out.append(_re2_char(av))
        elif op is sre.RANGE:
            out.append(f"{_re2_char(av[0])}-{_re2_char(av[1])}")
        elif op is sre.CATEGORY:
            out.append(_CATEGORIES[av])
        else:
            raise _Unsupported(f"{op} in a class", ())
    return "[" + "".join(out) + "]"


def _re2_char(code: int) -> str:
    char = chr(code)
    if (char.isalnum() and char.isprintable()) or char == "_":
        return char
    return f"\\x{{{code:x}}}"  # punctuation, spaces and controls: never special, in or out of a class


def _unsupported_error(pattern: str, exc: _Unsupported) -> str:
    column = _find_construct(pattern, exc.marks)
    message = f"{exc.what} is not supported: matching runs in linear time, which it cannot"
    return _pointed("regex", message, pattern, column)


def _find_construct(pattern: str, marks: tuple[str, ...]) -> int | None:
    """Where one of `marks` first appears outside a class and an escape (a backslash mark: a
    backslash and a digit), 0-based; None if nowhere."""
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            if "\\" in marks and i + 1 < n and pattern[i + 1] in "123456789":
                return i
            i += 2
        elif c == "[":
            i += 1
            if i < n and pattern[i] == "^":
                i += 1
            if i < n and pattern[i] == "]":
                i += 1
            while i < n and pattern[i] != "]":
                i += 2 if pattern[i] == "\\" else 1
            i += 1
        else:
            for mark in marks:
                if mark != "\\" and pattern.startswith(mark, i):
                    return i + 1 if mark[0] in "*+?}" else i
            i += 1
    return None


def _re2_error(message: str) -> str:
    """RE2's message for a pattern it refuses, in this module's words where it has them."""
    if "repetition" in message:
        message = f"a repeat count above {MAX_REPEAT}, nested repeats multiplied together, is not supported"
    elif "too large" in message:
        message = f"the pattern is too large (over {MAX_PROGRAM:,} instructions compiled): shorten it"
    elif "nest" in message:
        message = "the pattern is nested too deeply"
    return f"regex: {message}"


def _re2_compile(source: str) -> _re2.RE2:
    options = re2.Options()
    options.log_errors = False
    options.never_capture = True
    compiled = _re2.RE2(source.encode("utf-8", "surrogatepass"), options)
    if not compiled.ok():
        raise RequestError(_re2_error(compiled.error().decode("utf-8", "replace")))
    if compiled.ProgramSize() > MAX_PROGRAM:
        raise RequestError(
            f"regex: the pattern is too large ({compiled.ProgramSize():,} instructions compiled, at most"
            f' {MAX_PROGRAM:,}): shorten it, or search for a "quoted literal"'
        )
    return compiled


# -- the time a search may take -----------------------------------------------------------------

MATCH_SECONDS = 5.0  # how long one search may match before it stops with an error


class Budget:
    """A search's deadline, checked between bounded steps of matching."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise RequestError(
                f"search stopped after {self.seconds:g} s of matching: narrow it with path:, lang: or a longer literal",
                code=TIMED_OUT,
            )


UNLIMITED = Budget(math.inf)


# -- verification (pure) ------------------------------------------------------------------------


class Text:
    """A chunk's content, and its UTF-8 bytes (what RE2 and literal search scan), with offsets
    converted between the two: matching works in bytes, hits report characters."""

    def __init__(self, content: str) -> None:
        self.content = content
        self.ascii = content.isascii()
        self.data = content.encode("utf-8", "surrogatepass")
        self._lower_bytes: bytes | None = None
        self._folded: str | None = None
        self._byte = self._char = 0  # a known pair of equal offsets: conversions go on from it

    @classmethod
    def of(cls, content: str | Text) -> Text:
        return content if isinstance(content, Text) else cls(content)

    def lower_bytes(self) -> bytes:
        if self._lower_bytes is None:
            self._lower_bytes = self.data.lower()  # ASCII letters only: offsets stay
        return self._lower_bytes

    def folded(self) -> str:
        if self._folded is None:
            self._folded = fold(self.content)
        return self._folded

    def boundary(self, offset: int) -> int:
        """`offset`, moved forward to the start of a character."""
        data = self.data
        while offset < len(data) and data[offset] & 0xC0 == 0x80:
            offset += 1
        return offset

    def char(self, offset: int) -> int:
        """The character offset of a byte offset (of the character starting there or next).
        Each conversion costs the distance from the one before."""
        if self.ascii:
            return offset
        if offset >= len(self.data):
            return len(self.content)
        offset = self.boundary(offset)
        low, high = sorted((self._byte, offset))
        chars = high - low - len(self.data[low:high].translate(None, _NOT_CONTINUATION))
        self._char += chars if offset >= self._byte else -chars
        self._byte = offset
        return self._char

    def byte(self, offset: int) -> int:
        """The byte offset of a character offset."""
        if self.ascii:
            return offset
        if offset >= len(self.content):
            return len(self.data)
        low, high = sorted((self._char, offset))
        size = len(self.content[low:high].encode("utf-8", "surrogatepass"))
        self._byte += size if offset >= self._char else -size
        self._char = offset
        return self._byte


_NOT_CONTINUATION = bytes(b for b in range(256) if b & 0xC0 != 0x80)


class _SingleLower(dict):
    """str.translate's table lowercasing each character that lowercases to one character."""

    def __missing__(self, code: int) -> int:
        lower = chr(code).lower()
        self[code] = value = ord(lower) if len(lower) == 1 else code
        return value


_LOWER = _SingleLower()


def fold(text: str) -> str:
    """`text` with each character lowercased, where that is one character: same length, same offsets."""
    return text.lower() if text.isascii() else text.translate(_LOWER)


class Pattern:
    """A compiled pattern: a regex run by RE2, or a literal. `search` finds the first match at
    or after a byte offset, as byte offsets, checking `budget` between bounded steps."""

    text: str  # the regex, or the literal, as given
    trigrams: TrigramQuery  # what a chunk must contain for it to match

    def search(self, text: Text, pos: int, end: int, budget: Budget) -> tuple[int, int] | None:
        raise NotImplementedError


class Regex(Pattern):
    def __init__(self, pattern: str, *, case_sensitive: bool) -> None:
        flags = re.MULTILINE | (0 if case_sensitive else re.IGNORECASE)
        parsed = _parse(pattern, flags)
        self.text = pattern
        self.trigrams = _trigrams_of(parsed)
        try:
            source = _re2_syntax(parsed)
        except _Unsupported as exc:
            raise RequestError(_unsupported_error(pattern, exc)) from None
        except RecursionError:
            raise RequestError("regex: the pattern is nested too deeply") from None
        self.regex = _re2_compile(source)
        self.window = min(MAX_WINDOW, max(MIN_WINDOW, WINDOW_WORK // max(1, self.regex.ProgramSize())))

    def search(self, text: Text, pos: int, end: int, budget: Budget) -> tuple[int, int] | None:
        """Leftmost-first, in windows: a match starting in a window's first half is taken (and
        is the leftmost, unless a longer one than a window starts before it); else the next
        window starts at this one's second half."""
        data, window = text.data, self.window
        while True:
            budget.check()
            stop = text.boundary(min(end, pos + 2 * window))
            start, finish = self.regex.Match(_UNANCHORED, data, pos, stop)[0]
            if start >= 0 and (stop >= end or start < pos + window):
                return text.boundary(start), max(text.boundary(start), finish)
            if stop >= end:
                return None
            pos = text.boundary(pos + window)  # no match of at most a window starts before it


class Substring(Pattern):
    """A "quoted literal": a substring, found by byte search (case-insensitively, in the text
    with each character lowercased), in linear time."""

    def __init__(self, literal: str, *, case_sensitive: bool) -> None:
        self.text = literal
        self.case_sensitive = case_sensitive
        self.trigrams = literal_trigrams(literal)
        self.needle = literal.encode("utf-8", "surrogatepass")
        self.folded = fold(literal)
        self.folded_needle = self.needle.lower() if literal.isascii() else None

    def search(self, text: Text, pos: int, end: int, budget: Budget) -> tuple[int, int] | None:
        budget.check()
        if self.case_sensitive:
            start = text.data.find(self.needle, pos, end)
            return None if start < 0 else (start, start + len(self.needle))
        if self.folded_needle is not None:  # ASCII: byte offsets of the lowered bytes are the text's
            start = text.lower_bytes().find(self.folded_needle, pos, end)
            return None if start < 0 else (start, start + len(self.folded_needle))
        start = text.folded().find(self.folded, text.char(pos), text.char(end))
        if start < 0:
            return None
        first = text.byte(start)
        return first, text.byte(start + len(self.folded))


@attrs.frozen
class LineMatch:
    line: int  # in the file, 1-based
    column: int  # 1-based, in characters
    start: int  # the match, as offsets into the chunk's content
    end: int


def compile_pattern(pattern: str, *, case_sensitive: bool) -> Regex:
    """`^` and `$` match at line ends, as in grep; RequestError for an invalid pattern."""
    return Regex(pattern, case_sensitive=case_sensitive)


def line_matches(
    content: str | Text, first_line: int, patterns: Sequence[Pattern], budget: Budget = UNLIMITED
) -> list[LineMatch]:
    """The first match on each line where any pattern matches, in line order; none unless
    every pattern matches somewhere in `content`. A match spanning lines counts for its first;
    the next match is looked for from the line after (or from the end of a match spanning it)."""
    text = Text.of(content)
    data = text.data
    by_line: dict[int, LineMatch] = {}
    for pattern in patterns:
        line, line_start, scanned, pos = first_line, 0, 0, 0
        found = False
        while pos <= len(data):
            match = pattern.search(text, pos, len(data), budget)
            if match is None:
                break
            found = True
            start, end = match
            newlines = data.count(b"\n", scanned, start)
            if newlines:
                line += newlines
                line_start = data.rindex(b"\n", scanned, start) + 1
            scanned = start
            known = by_line.get(line)
            if known is None or text.char(start) < known.start:
                first = text.char(start)
                by_line[line] = LineMatch(line, first - text.char(line_start) + 1, first, text.char(end))
            next_line = data.find(b"\n", start) + 1
            if next_line == 0:
                break
            pos = max(end, next_line)
        if not found:
            return []
    return [by_line[line] for line in sorted(by_line)]


def line_snippet(content: str | Text, match: LineMatch, patterns: Sequence[Pattern] = ()) -> tuple[str, Matches]:
    """The matching line, raw, long lines cut around the match, with the offsets of the match and
    of every other match of `patterns` on it (clipped to the line)."""
    text = Text.of(content)
    body = text.content
    start = body.rfind("\n", 0, match.start) + 1
    end = body.find("\n", match.start)
    end = len(body) if end < 0 else end
    if end - start > SNIPPET_CHARS:
        start = max(start, match.start - SNIPPET_CHARS // 3)
        end = min(end, start + SNIPPET_CHARS)
    spans = [(match.start, match.end)]
    first, last = text.byte(start), text.byte(end)
    for pattern in patterns:
        pos = first
        while pos <= last and (found := pattern.search(text, pos, last, UNLIMITED)) is not None:
            spans.append((text.char(found[0]), text.char(found[1])))
            pos = found[1] if found[1] > found[0] else text.boundary(found[0] + 1)
    return body[start:end], merged((max(s, start) - start, min(e, end) - start) for s, e in spans)


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
    required = [(must, q) for q in words] + filter_clauses(filters, "chunk")
    if prefilter != ALL:
        required.append((must, _tantivy_query(prefilter)))
    names = sorted({p.text.lower() for p in compiled if _IDENTIFIER.fullmatch(p.text)})
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
        budget.check()
        text = Text(chunk.content)
        for match in line_matches(text, chunk.start_line, compiled, budget):
            key = (chunk.repo, chunk.path, match.line)
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
    return _pointed("regex", exc.msg, pattern, exc.pos)


def _pointed(kind: str, message: str, pattern: str, column: int | None) -> str:
    """`kind: message (column N)`, then the pattern (around N, if it is long) and a caret under N."""
    if column is None:
        return f"{kind}: {message}"
    shown, at = excerpt(pattern, column)
    return f"{kind}: {message} (column {column + 1})\n  {shown}\n  {' ' * at}^"
