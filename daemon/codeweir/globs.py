"""Path globs: the one dialect of config include/exclude and of a query's `path:`. Pure.

Globs are gitignore-ish: "*" and "?" stay within a directory, "**" crosses directories, a glob
without "/" ("*.py", "vendor") matches at any depth, one with "/" is anchored at the root, a
trailing "/" matches directories only, and a matching directory selects its whole subtree.
"[abc]" and "[!abc]" are classes, "\\" escapes. The regex a glob becomes is anchored (it must
match the whole path) and is valid for Python's `re` and for Tantivy's regex queries alike.
"""

from __future__ import annotations

import functools
import posixpath
import re
from collections.abc import Iterable

import attrs


def glob_regex(glob: str) -> str:
    """The regex (to be matched against the whole path) of `glob`.

    Raises ValueError naming a glob that cannot be used.
    """
    if glob.startswith("!"):
        raise ValueError(f"glob {glob!r}: negation is not supported; list it under exclude instead")
    dir_only = glob.endswith("/")
    body = glob.rstrip("/")
    anchored = "/" in body
    body = body.lstrip("/")
    if not body:
        raise ValueError(f"glob {glob!r} matches no path")
    prefix = "" if anchored else "(?:.*/)?"
    suffix = "/.+" if dir_only else "(?:/.*)?"
    return prefix + _translate(body) + suffix


def name_regex(glob: str) -> str:
    """The regex (to be matched against the whole name) of a glob over names such as ref names,
    in the same dialect as paths' globs ("release/*" matches "release/5.1", not "release/5/x";
    "**" crosses "/"), but anchored at both ends: "main" is only "main"."""
    if not glob:
        raise ValueError("an empty glob matches no name")
    return _translate(glob)


@attrs.frozen
class GlobFilter:
    """Selects a path when include is empty or one of its globs matches, and no exclude does."""

    include: re.Pattern[str] | None
    exclude: re.Pattern[str] | None

    @classmethod
    def of(cls, include: Iterable[str], exclude: Iterable[str]) -> GlobFilter:
        return _glob_filter(tuple(include), tuple(exclude))

    def matches(self, path: str) -> bool:
        if self.include is not None and self.include.fullmatch(path) is None:
            return False
        return self.exclude is None or self.exclude.fullmatch(path) is None


@functools.lru_cache(maxsize=64)
def _glob_filter(include: tuple[str, ...], exclude: tuple[str, ...]) -> GlobFilter:
    return GlobFilter(_compile(include), _compile(exclude))


def _compile(globs: tuple[str, ...]) -> re.Pattern[str] | None:
    if not globs:
        return None
    return re.compile("|".join(f"(?:{glob_regex(g)})" for g in globs))


@attrs.frozen
class PathScope:
    """A set of paths, each a file or a directory whose whole subtree it stands for."""

    exact: frozenset[str]
    dirs: tuple[str, ...]  # each with a trailing "/"

    @classmethod
    def of(cls, paths: Iterable[str]) -> PathScope:
        """From repository-relative paths; "" or "." is the whole repository."""
        cleaned = {posixpath.normpath(p).strip("/") for p in paths}
        cleaned = {"" if p == "." else p for p in cleaned}
        return cls(frozenset(cleaned), tuple(sorted(p + "/" if p else "" for p in cleaned)))

    def __contains__(self, path: str) -> bool:
        return path in self.exact or path.startswith(self.dirs)


def _translate(glob: str) -> str:
    out: list[str] = []
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        if glob.startswith("**/", i) and (i == 0 or glob[i - 1] == "/"):
            out.append("(?:.*/)?")  # zero or more whole directories
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[" and (end := _class_end(glob, i)) > 0:
            members = glob[i + 1 : end]
            negate = members[:1] in ("!", "^")  # git's wildmatch takes either
            members = members[1:] if negate else members
            # Escaped so that neither regex dialect reads a member as syntax: a leading "^" or
            # "]", or a class operator of Tantivy's ("&&", "~~", "[:alpha:]").
            members = re.sub(r"([\\\[\]^&~])", r"\\\1", members)
            out.append("[" + ("^/" if negate else "") + members + "]")
            i = end + 1
        elif c == "\\" and i + 1 < n:
            out.append(re.escape(glob[i + 1]))
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def _class_end(glob: str, start: int) -> int:
    """Index of the "]" closing the class opened at `start`, or -1 (then "[" is literal)."""
    i = start + 1
    if glob[i : i + 1] in ("!", "^"):
        i += 1
    if glob[i : i + 1] == "]":  # a leading "]" is a member
        i += 1
    return glob.find("]", i)
