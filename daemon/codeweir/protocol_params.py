"""The params of each control API method: frozen attrs classes whose validators check every
field, and the size limits on them, without I/O.

`protocol.converter` structures a request's JSON params into these (`PARAMS` maps each method to
its class); a wrong value raises `InvalidValue`, or `InvalidField` where a check of the whole
class names the field, and `protocol` turns those into an error naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal, get_args

import attrs

SearchMode = Literal["hybrid", "lexical", "semantic", "regex", "symbol", "commits"]
SEARCH_MODES: tuple[str, ...] = get_args(SearchMode)
Priority = Literal["normal", "interactive"]


class InvalidValue(ValueError):
    """A params value is wrong; the message says what was expected."""


class InvalidField(InvalidValue):
    """Raised by a class-level check, which cattrs cannot attribute to a field by itself."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _between(low: float, high: float = math.inf) -> Callable[[Any, attrs.Attribute[Any], float | None], None]:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
        if value is not None and not low <= value <= high:
            bounds = f"at least {low:g}" if high == math.inf else f"between {low:g} and {high:g}"
            raise InvalidField(attribute.name, f"must be {bounds}, got {value!r}")

    return check


def _not_blank(instance: Any, attribute: attrs.Attribute[str], value: str) -> None:
    if not value.strip():
        raise InvalidField(attribute.name, "must not be empty")


# Request sizes (README, "Request limits"). A request line is at most server.max_request_bytes
# (1 MiB by default) besides.
MAX_QUERY_CHARS = 32_768  # a search's query
MAX_NAME_CHARS = 4096  # a repository name, a path glob, a language, a kind, a job id, a path
MAX_SEARCH_LIMIT = 1000  # hits a search returns
MAX_LIST_ITEMS = 10_000  # items of a list param (a sync's paths): more is a full sync's work


def _chars_at_most(limit: int) -> Callable[[Any, attrs.Attribute[Any], str | None], None]:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: str | None) -> None:
        if value is not None and len(value) > limit:
            raise InvalidField(attribute.name, f"must be at most {limit:,} characters, got {len(value):,}")

    return check


def _each_at_most(limit: int) -> Callable[[Any, attrs.Attribute[Any], tuple[str, ...] | None], None]:
    def check(instance: Any, attribute: attrs.Attribute[Any], values: tuple[str, ...] | None) -> None:
        for index, value in enumerate(values or ()):
            if len(value) > limit:
                raise InvalidField(attribute.name, f"item {index}: must be at most {limit:,} characters, got {len(value):,}")

    return check


_name = _chars_at_most(MAX_NAME_CHARS)


MAX_CURSOR_CHARS = 4096
MAX_CONTEXT_LINES = 50


@attrs.frozen
class NoParams:
    """Params of `status`, `repos`, `jobs` and `reload`: none."""


@attrs.frozen(kw_only=True)
class SyncParams:
    repo: str | None = attrs.field(default=None, validator=_name)
    all: bool = False
    full: bool = False
    # Stream `progress` notifications and answer when the job ends.
    wait: bool = False
    # Sync just these paths of `repo` (a watcher's or a git hook's changes): at most
    # MAX_LIST_ITEMS of them, each at most MAX_NAME_CHARS long; more is a full sync.
    paths: tuple[str, ...] | None = attrs.field(default=None, validator=_each_at_most(MAX_NAME_CHARS))
    priority: Priority = "normal"

    def __attrs_post_init__(self) -> None:
        if self.all and self.repo is not None:
            raise InvalidField("all", "give either repo or all=true, not both")
        if not self.all and self.repo is None:
            raise InvalidField("repo", "give a repository name, or all=true")
        if self.paths is not None and self.repo is None:
            raise InvalidField("paths", "needs repo: paths are relative to one repository")


RefNames = str | tuple[str, ...] | None  # one ref's name, or a list of them (JSON: a string or an array)


def ref_names(ref: RefNames) -> tuple[str, ...]:
    """`ref` as a tuple of names."""
    return (ref,) if isinstance(ref, str) else ref or ()


def _ref_names(instance: Any, attribute: attrs.Attribute[Any], value: RefNames) -> None:
    for index, name in enumerate((value,) if isinstance(value, str) else value or ()):
        where = "" if isinstance(value, str) else f"item {index}: "
        if not name.strip():
            raise InvalidField(attribute.name, f"{where}must not be empty")
        if len(name) > MAX_NAME_CHARS:
            raise InvalidField(attribute.name, f"{where}must be at most {MAX_NAME_CHARS:,} characters, got {len(name):,}")


@attrs.frozen(kw_only=True)
class SearchParams:
    query: str = attrs.field(validator=[_not_blank, _chars_at_most(MAX_QUERY_CHARS)])
    mode: SearchMode = "hybrid"
    repo: str | None = attrs.field(default=None, validator=_name)
    # A configured ref's name ("main", "release/5.1", "v5.1.3"), or a list of them: hits from the
    # repositories' views of those refs (any of them), as the query's `ref:` gives. None: the main
    # view (the worktree, or a bare repository's ref), as without refs.
    ref: RefNames = attrs.field(default=None, validator=_ref_names)
    path: str | None = attrs.field(default=None, validator=_name)  # a glob over repository-relative paths
    lang: str | None = attrs.field(default=None, validator=_name)
    kind: str | None = attrs.field(default=None, validator=_name)
    limit: int = attrs.field(default=10, validator=_between(1, MAX_SEARCH_LIMIT))
    case_sensitive: bool = False
    # Each hit says what its score is made of (`codeweir search --json` asks for it).
    explain: bool = False
    # A previous answer's `next_cursor`: this answer continues after its last hit (same query).
    cursor: str | None = attrs.field(default=None, validator=_chars_at_most(MAX_CURSOR_CHARS))
    # Lines of the file around each hit (`hit.context`); 0: none.
    context: int = attrs.field(default=0, validator=_between(0, MAX_CONTEXT_LINES))

    @property
    def refs(self) -> tuple[str, ...]:
        return ref_names(self.ref)


@attrs.frozen(kw_only=True)
class ReadParams:
    """Lines `start`..`end` (1-based, inclusive; `end` None: to the end) of a file the index holds."""

    repo: str = attrs.field(validator=_not_blank)
    path: str = attrs.field(validator=_not_blank)
    start: int = attrs.field(default=1, validator=_between(1))
    end: int | None = attrs.field(default=None, validator=_between(1))

    def __attrs_post_init__(self) -> None:
        if self.end is not None and self.end < self.start:
            raise InvalidField("end", f"must not be before start ({self.start}), got {self.end}")


@attrs.frozen(kw_only=True)
class RefsParams:
    """Occurrences of an identifier that are not its definitions (search-based, grouped by file)."""

    symbol: str = attrs.field(validator=_not_blank)
    repo: str | None = None
    path: str | None = None  # a glob, as search's
    lang: str | None = None
    ref: RefNames = attrs.field(default=None, validator=_ref_names)  # as search's: the views looked in
    limit: int = attrs.field(default=100, validator=_between(1, 1000))  # occurrences in this answer
    case_sensitive: bool = True
    cursor: str | None = attrs.field(default=None, validator=_chars_at_most(MAX_CURSOR_CHARS))

    @property
    def refs(self) -> tuple[str, ...]:
        return ref_names(self.ref)


@attrs.frozen(kw_only=True)
class CancelParams:
    job: str | None = attrs.field(default=None, validator=_name)
    repo: str | None = attrs.field(default=None, validator=_name)

    def __attrs_post_init__(self) -> None:
        if self.job is None and self.repo is None:
            raise InvalidField("job", "give a job id or a repo")


@attrs.frozen(kw_only=True)
class WaitParams:
    repo: str | None = attrs.field(default=None, validator=_name)
    timeout: float | None = attrs.field(default=None, validator=_between(0))
    # Also until every chunk and commit message has a vector (by default: the lexical index only).
    vectors: bool = False


PARAMS: dict[str, type] = {
    "status": NoParams,
    "repos": NoParams,
    "sync": SyncParams,
    "search": SearchParams,
    "jobs": NoParams,
    "cancel": CancelParams,
    "wait": WaitParams,
    "reload": NoParams,
    "read": ReadParams,
    "refs": RefsParams,
}
