"""Matching: Python's regex syntax run by RE2 (linear time, the GIL released while it runs),
quoted literals by byte search, in bounded steps under a time budget; each match as a line and
column, and the snippet around it."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from re import _constants as sre  # type: ignore[attr-defined]

import attrs
import re2
from re2 import _re2  # the binding itself: matching over bytes, by offsets

from codeweir.errors import RequestError
from codeweir.protocol import TIMED_OUT
from codeweir.protocol_results import Matches, merged_spans
from codeweir.search.trigrams import TrigramQuery, literal_trigrams, parse_pattern, pointed, trigrams_of

SNIPPET_CHARS = 240

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
    return pointed("regex", message, pattern, column)


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
        parsed = parse_pattern(pattern, flags)
        self.text = pattern
        self.trigrams = trigrams_of(parsed)
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
    return body[start:end], merged_spans((max(s, start) - start, min(e, end) - start) for s, e in spans)
