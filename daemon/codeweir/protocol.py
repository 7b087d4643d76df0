"""The control API's wire protocol: JSON-RPC 2.0, one JSON object per line, without I/O.

Like h11, this module never touches a socket: the server feeds received bytes to
`ServerConnection.receive_data` and takes parsed events from `next_event`; `response`, `error`
and `notification` return the bytes to send. Params are structured into frozen attrs classes by
one strict cattrs converter: unknown fields, wrong types and out-of-range values are errors that
name the field, never silently coerced.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Callable, Iterable, Set
from datetime import date, datetime
from pathlib import PurePath
from typing import Any, Literal, TypeAlias, get_args, get_origin

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError
from cattrs.gen import make_dict_unstructure_fn

# JSON-RPC 2.0 error codes; -32000..-32099 are left to the implementation.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_ERROR = -32000  # busy, and codeweir errors a handler raised
REQUEST_TOO_LARGE = -32001
TIMED_OUT = -32002
PERMISSION_DENIED = -32003

SearchMode = Literal["hybrid", "lexical", "semantic", "regex", "symbol", "commits"]
SEARCH_MODES: tuple[str, ...] = get_args(SearchMode)
Priority = Literal["normal", "interactive"]
Stage = Literal["scan", "index", "commits", "embed"]
RequestId: TypeAlias = str | int | None


class _Invalid(ValueError):
    """A params value is wrong; the message says what was expected."""


class _FieldInvalid(_Invalid):
    """Raised by a class-level check, which cattrs cannot attribute to a field by itself."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _between(low: float, high: float = math.inf) -> Callable[[Any, attrs.Attribute[Any], float | None], None]:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
        if value is not None and not low <= value <= high:
            bounds = f"at least {low:g}" if high == math.inf else f"between {low:g} and {high:g}"
            raise _FieldInvalid(attribute.name, f"must be {bounds}, got {value!r}")

    return check


def _not_blank(instance: Any, attribute: attrs.Attribute[str], value: str) -> None:
    if not value.strip():
        raise _FieldInvalid(attribute.name, "must not be empty")


# Request sizes (README, "Request limits"). A request line is at most server.max_request_bytes
# (1 MiB by default) besides.
MAX_QUERY_CHARS = 32_768  # a search's query
MAX_NAME_CHARS = 4096  # a repository name, a path glob, a language, a kind, a job id, a path
MAX_SEARCH_LIMIT = 1000  # hits a search returns
MAX_LIST_ITEMS = 10_000  # items of a list param (a sync's paths): more is a full sync's work


def _chars_at_most(limit: int) -> Callable[[Any, attrs.Attribute[Any], str | None], None]:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: str | None) -> None:
        if value is not None and len(value) > limit:
            raise _FieldInvalid(attribute.name, f"must be at most {limit:,} characters, got {len(value):,}")

    return check


def _each_at_most(limit: int) -> Callable[[Any, attrs.Attribute[Any], tuple[str, ...] | None], None]:
    def check(instance: Any, attribute: attrs.Attribute[Any], values: tuple[str, ...] | None) -> None:
        for index, value in enumerate(values or ()):
            if len(value) > limit:
                raise _FieldInvalid(attribute.name, f"item {index}: must be at most {limit:,} characters, got {len(value):,}")

    return check


_name = _chars_at_most(MAX_NAME_CHARS)


MAX_CURSOR_CHARS = 4096
MAX_CONTEXT_LINES = 50


def _at_most_chars(limit: int) -> Callable[[Any, attrs.Attribute[Any], str | None], None]:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: str | None) -> None:
        if value is not None and len(value) > limit:
            raise _FieldInvalid(attribute.name, f"must be at most {limit} characters, got {len(value)}")

    return check


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
            raise _FieldInvalid("all", "give either repo or all=true, not both")
        if not self.all and self.repo is None:
            raise _FieldInvalid("repo", "give a repository name, or all=true")
        if self.paths is not None and self.repo is None:
            raise _FieldInvalid("paths", "needs repo: paths are relative to one repository")


RefNames = str | tuple[str, ...] | None  # one ref's name, or a list of them (JSON: a string or an array)


def _ref_names(instance: Any, attribute: attrs.Attribute[Any], value: RefNames) -> None:
    for index, name in enumerate((value,) if isinstance(value, str) else value or ()):
        where = "" if isinstance(value, str) else f"item {index}: "
        if not name.strip():
            raise _FieldInvalid(attribute.name, f"{where}must not be empty")
        if len(name) > MAX_NAME_CHARS:
            raise _FieldInvalid(attribute.name, f"{where}must be at most {MAX_NAME_CHARS:,} characters, got {len(name):,}")


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
    cursor: str | None = attrs.field(default=None, validator=_at_most_chars(MAX_CURSOR_CHARS))
    # Lines of the file around each hit (`hit.context`); 0: none.
    context: int = attrs.field(default=0, validator=_between(0, MAX_CONTEXT_LINES))

    @property
    def refs(self) -> tuple[str, ...]:
        """`ref` as a tuple of names."""
        return (self.ref,) if isinstance(self.ref, str) else self.ref or ()


@attrs.frozen(kw_only=True)
class ReadParams:
    """Lines `start`..`end` (1-based, inclusive; `end` None: to the end) of a file the index holds."""

    repo: str = attrs.field(validator=_not_blank)
    path: str = attrs.field(validator=_not_blank)
    start: int = attrs.field(default=1, validator=_between(1))
    end: int | None = attrs.field(default=None, validator=_between(1))

    def __attrs_post_init__(self) -> None:
        if self.end is not None and self.end < self.start:
            raise _FieldInvalid("end", f"must not be before start ({self.start}), got {self.end}")


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
    cursor: str | None = attrs.field(default=None, validator=_at_most_chars(MAX_CURSOR_CHARS))

    @property
    def refs(self) -> tuple[str, ...]:
        return (self.ref,) if isinstance(self.ref, str) else self.ref or ()


@attrs.frozen(kw_only=True)
class CancelParams:
    job: str | None = attrs.field(default=None, validator=_name)
    repo: str | None = attrs.field(default=None, validator=_name)

    def __attrs_post_init__(self) -> None:
        if self.job is None and self.repo is None:
            raise _FieldInvalid("job", "give a job id or a repo")


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


Matches = tuple[tuple[int, int], ...]  # [start, end) code point offsets into a snippet


def merged_spans(spans: Iterable[tuple[int, int]]) -> Matches:
    """Spans in order, overlapping and touching ones joined, empty ones dropped."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(s for s in spans if s[1] > s[0]):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return tuple(out)


@attrs.frozen(kw_only=True)
class SearchHit:
    """A result of every mode but `commits`: a chunk of a file, flat. The search stage builds
    these; `converter` makes the object the API and `search --json` send."""

    repo: str
    path: str
    start_line: int  # 1-based, inclusive
    end_line: int
    # Strings, never null: the definition's path ("Server.handle"), "" for a chunk that defines nothing.
    # A definition cut into several chunks names each of them so, but only the one holding its
    # definition line is found by `sym:` (the others are its pieces).
    symbol: str = ""
    kind: str = ""  # one of codeweir.chunk.chunker.KINDS: "function", "class", "section", "text", …
    language: str = ""
    score: float
    snippet: str  # raw text of the chunk (lines of it, or a fragment of a long line): never escaped
    # Where the query matched in the snippet, as rg --json gives it: [start, end) offsets in
    # Unicode code points (Python string indices) into `snippet`, in order, not overlapping.
    matches: Matches = ()
    blob: str  # the indexed file's git blob id
    # The configured refs whose view holds this version of the file (its blob at its path), by
    # name, in order; [] when only the main view (the worktree, or a bare repository's ref) does.
    # A version on several refs is one hit that names them all.
    refs: tuple[str, ...] = ()
    # Exact matches (regex, "quoted literals") only: the match's line and 1-based column.
    line: int | None = None
    column: int | None = None
    facets: tuple[str, ...] = ()  # "test", "vendored", "generated", "minified"; empty for source
    # The file has changed since it was indexed: in the worktree (or the repository's ref); for
    # a search with refs, on one of the wanted refs holding the hit, which now points elsewhere.
    stale: bool = False
    explain: dict[str, float] | None = None  # with explain=true: the parts of the score
    context: HitContext | None = None  # with context=N: the hit's lines and N around them, from the file now


@attrs.frozen(kw_only=True)
class HitContext:
    """Whole lines of a hit's file as it is now: the hit's snippet lines (an exact match's line) and
    `context` lines before and after them; a line over MAX_CONTEXT_LINE_CHARS is cut, ending in "…"."""

    start_line: int
    end_line: int
    text: str  # lines start_line..end_line, joined by "\n"


MAX_CONTEXT_LINE_CHARS = 1000

_HIT_OPTIONAL = ("line", "column", "explain", "context")  # sent only when not None


@attrs.frozen(kw_only=True)
class CommitHit:
    """A result of mode `commits`."""

    repo: str
    sha: str
    author: str  # "Name <email>"
    date: str  # ISO 8601, UTC
    summary: str  # the message's first line
    paths: tuple[str, ...]  # changed paths
    score: float
    snippet: str  # raw text of the message (or a fragment of it): never escaped
    matches: Matches = ()  # as SearchHit's: where the words matched in `snippet`


@attrs.frozen(kw_only=True)
class SearchResult:
    """The answer to `search`."""

    results: tuple[SearchHit, ...] | tuple[CommitHit, ...]
    took_ms: float
    mode: str
    notes: tuple[str, ...] = ()
    # More hits follow: send this as `cursor` (with the same query and filters) for the next ones.
    next_cursor: str | None = None


@attrs.frozen(kw_only=True)
class Progress:
    """Params of a `progress` notification, sent while a `sync` with wait=true runs."""

    job: str
    repo: str
    stage: Stage
    done: int
    total: int | None = None  # None while unknown (scanning)


PROGRESS = "progress"


def _structure_str(value: Any, _: type) -> str:
    if isinstance(value, str):
        return value
    raise _Invalid(f"expected a string, got {json_kind(value)}")


def _structure_bool(value: Any, _: type) -> bool:
    if isinstance(value, bool):
        return value
    raise _Invalid(f"expected true or false, got {json_kind(value)}")


def _structure_int(value: Any, _: type) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _Invalid(f"expected an integer, got {json_kind(value)}")


def _structure_float(value: Any, _: type) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if math.isfinite(number):
            return number
        raise _Invalid(f"expected a finite number, got {_brief(value)}")
    raise _Invalid(f"expected a number, got {json_kind(value)}")


def _structure_literal(value: Any, type_: Any) -> str:
    choices = get_args(type_)
    if isinstance(value, str) and value in choices:
        return value
    names = ", ".join(repr(c) for c in choices)
    raise _Invalid(f"must be one of {names}; got {_brief(value) if isinstance(value, str) else json_kind(value)}")


def _structure_str_tuple(value: Any, type_: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _Invalid(f"expected a list, got {json_kind(value)}")
    if len(value) > MAX_LIST_ITEMS:  # refused before its items are looked at
        raise _Invalid(f"must have at most {MAX_LIST_ITEMS:,} items, got {len(value):,}")
    (item_type, _ellipsis) = get_args(type_)
    items = []
    for index, item in enumerate(value):
        try:
            items.append(converter.structure(item, item_type))
        except _Invalid as exc:
            raise _Invalid(f"item {index}: {exc}") from None
    return tuple(items)


def _is_literal(type_: Any) -> bool:
    return get_origin(type_) is Literal


def _structure_ref_names(value: Any, _: Any) -> RefNames:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        return _structure_str_tuple(value, tuple[str, ...])
    raise _Invalid(f"expected a string or a list of strings, got {json_kind(value)}")


def _is_str_tuple(type_: Any) -> bool:
    return get_origin(type_) is tuple and len(get_args(type_)) == 2 and get_args(type_)[1] is Ellipsis


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True, unstruct_collection_overrides={Set: list})
    conv.register_structure_hook(str, _structure_str)
    conv.register_structure_hook(bool, _structure_bool)
    conv.register_structure_hook(int, _structure_int)
    conv.register_structure_hook(float, _structure_float)
    conv.register_structure_hook_func(_is_literal, _structure_literal)
    conv.register_structure_hook_func(_is_str_tuple, _structure_str_tuple)
    conv.register_structure_hook_func(lambda t: t == RefNames, _structure_ref_names)
    conv.register_unstructure_hook(PurePath, str)
    conv.register_unstructure_hook(datetime, datetime.isoformat)
    conv.register_unstructure_hook(date, date.isoformat)
    # Match offsets as JSON has them, [[start, end], ...], so an unstructured hit equals its JSON.
    conv.register_unstructure_hook_func(lambda t: t == Matches, lambda spans: [list(span) for span in spans])
    # A hit's line, column and explain exist only for exact matches and when asked: leave them
    # out otherwise. Deleted from the full dict, the others keep the order of the fields (cattrs'
    # omit_if_default would move these three last).
    hit_fields = make_dict_unstructure_fn(SearchHit, conv)

    def unstructure_hit(hit: SearchHit) -> dict[str, Any]:
        out = hit_fields(hit)
        for name in _HIT_OPTIONAL:
            if out[name] is None:
                del out[name]
        return out

    conv.register_unstructure_hook(SearchHit, unstructure_hit)
    return conv


# The one converter for params and results.
converter = _make_converter()


@attrs.frozen
class Request:
    id: RequestId
    method: str
    params: Any  # an instance of PARAMS[method]
    # Sent without an id: run it, answer nothing (JSON-RPC 2.0 §4.1).
    notification: bool = False

    @property
    def long_running(self) -> bool:
        """Bounded by its own params, not by the server's per-request timeout."""
        return self.method == "wait" or (self.method == "sync" and self.params.wait)


@attrs.frozen
class ProtocolFailure:
    """A request that cannot be run; `to_bytes()` is the error response to send if `reply`."""

    id: RequestId
    code: int
    message: str
    reply: bool = True

    def to_bytes(self) -> bytes:
        return error(self.id, self.code, self.message)


class Status(enum.Enum):
    NEED_DATA = "need data"  # call receive_data, then next_event again
    CLOSED = "closed"  # the peer ended the stream and every request in it was returned


NEED_DATA = Status.NEED_DATA
CLOSED = Status.CLOSED
Event: TypeAlias = Request | ProtocolFailure | Status


class ServerConnection:
    """The server's side of one connection: bytes in, `Request`s and `ProtocolFailure`s out."""

    def __init__(self, max_request_bytes: int, methods: Iterable[str] = PARAMS) -> None:
        self.max_request_bytes = max_request_bytes
        self.methods = frozenset(methods)
        unknown = self.methods - PARAMS.keys()
        if unknown:
            raise ValueError(f"no params class for method(s) {sorted(unknown)}")
        self._buffer = bytearray()
        self._scanned = 0  # a prefix of _buffer known to hold no newline
        self._discarding = False  # inside an oversized line: drop bytes up to its newline
        self._eof = False

    def receive_data(self, data: bytes) -> None:
        """Add received bytes; b"" means the peer closed its side."""
        if self._eof:
            raise RuntimeError("receive_data after end of stream")
        if not data:
            self._eof = True
            return
        if self._discarding:
            newline = data.find(b"\n")
            if newline < 0:
                return
            data = data[newline + 1 :]
            self._discarding = False
        self._buffer += data

    def next_event(self) -> Event:
        while True:
            newline = self._buffer.find(b"\n", self._scanned)
            if newline >= 0:
                line = bytes(self._buffer[:newline])
                del self._buffer[: newline + 1]
                self._scanned = 0
            elif len(self._buffer) > self.max_request_bytes:
                self._buffer.clear()
                self._scanned = 0
                self._discarding = not self._eof
                return self._too_large()
            elif not self._eof:
                self._scanned = len(self._buffer)
                return NEED_DATA
            elif self._buffer:  # a last request without its newline
                line = bytes(self._buffer)
                self._buffer.clear()
            else:
                return CLOSED
            if len(line) > self.max_request_bytes:
                return self._too_large()
            if line.strip():
                return self._parse(line)

    def _too_large(self) -> ProtocolFailure:
        return ProtocolFailure(
            None,
            REQUEST_TOO_LARGE,
            f"request too large: the limit is {self.max_request_bytes} bytes per line",
        )

    def _parse(self, line: bytes) -> Request | ProtocolFailure:
        try:
            message = json.loads(line.decode("utf-8"), parse_constant=_reject_constant)
        except UnicodeDecodeError as exc:
            return ProtocolFailure(None, PARSE_ERROR, f"parse error: request is not valid UTF-8 ({exc.reason})")
        except RecursionError:
            return ProtocolFailure(None, PARSE_ERROR, "parse error: JSON nested too deeply")
        except ValueError as exc:
            return ProtocolFailure(None, PARSE_ERROR, f"parse error: {exc}")
        if isinstance(message, list):
            return ProtocolFailure(
                None,
                INVALID_REQUEST,
                "invalid request: batches are not supported; send one JSON object per line",
            )
        if not isinstance(message, dict):
            return ProtocolFailure(None, INVALID_REQUEST, f"invalid request: expected a JSON object, got {json_kind(message)}")
        return self._request(message)

    def _request(self, message: dict[str, Any]) -> Request | ProtocolFailure:
        has_id = "id" in message
        request_id = message.get("id")
        if request_id is not None and not _valid_id(request_id):
            return ProtocolFailure(None, INVALID_REQUEST, "invalid request: id must be a string, an integer or null")

        def invalid(message: str) -> ProtocolFailure:
            return ProtocolFailure(request_id, INVALID_REQUEST, f"invalid request: {message}")

        if message.get("jsonrpc") != "2.0":
            return invalid('"jsonrpc" must be "2.0"')
        extra = sorted(message.keys() - {"jsonrpc", "id", "method", "params"})
        if extra:
            return invalid(f"unknown member(s) {', '.join(_brief(k) for k in extra[:5])}")
        method = message.get("method")
        if not isinstance(method, str):
            return invalid(f"method must be a string, got {json_kind(method)}")
        if method not in self.methods:
            available = ", ".join(sorted(self.methods))
            return ProtocolFailure(
                request_id,
                METHOD_NOT_FOUND,
                f"method not found: {_brief(method)}; methods: {available}",
                has_id,
            )
        raw_params = message.get("params")
        if raw_params is None:
            raw_params = {}
        if not isinstance(raw_params, dict):
            return ProtocolFailure(
                request_id,
                INVALID_PARAMS,
                f"invalid params: expected an object of named params, got {json_kind(raw_params)}",
                has_id,
            )
        try:
            params = structure_params(method, raw_params)
        except ParamsError as exc:
            return ProtocolFailure(request_id, INVALID_PARAMS, str(exc), has_id)
        return Request(request_id, method, params, notification=not has_id)


class ParamsError(ValueError):
    """Params that do not fit their method; the message names each wrong field."""


def structure_params(method: str, raw: dict[str, Any]) -> Any:
    """`raw` (JSON-shaped) as an instance of the method's params class."""
    try:
        return converter.structure(raw, PARAMS[method])
    except ClassValidationError as exc:
        problems = "; ".join(_validation_messages(exc, ""))
        raise ParamsError(f"invalid params for {method}: {problems}") from None


def _valid_id(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _validation_messages(exc: BaseException, path: str) -> list[str]:
    def at(name: str) -> str:
        return f"{path}.{name}" if path else name

    if isinstance(exc, ClassValidationError):
        with_notes, others = exc.group_exceptions()
        messages = [m for sub, note in with_notes for m in _validation_messages(sub, at(note.name))]
        return messages + [m for sub in others for m in _validation_messages(sub, path)]
    if isinstance(exc, ForbiddenExtraKeysError):
        known = ", ".join(f.name for f in attrs.fields(exc.cl)) or "none"
        return [f"{at(_brief(key, quote=False))}: unknown field (fields: {known})" for key in sorted(exc.extra_fields)]
    if isinstance(exc, _FieldInvalid):
        return [f"{at(exc.field)}: {exc}"]
    if isinstance(exc, KeyError):
        return [f"{path}: required field missing"]
    if isinstance(exc, _Invalid):
        return [f"{path}: {exc}"]
    return [f"{path or 'params'}: invalid value ({exc})"]


def json_kind(value: Any) -> str:
    """The JSON type of a value, for messages (never its repr: it may be huge or deep)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _brief(value: Any, *, quote: bool = True, limit: int = 60) -> str:
    text = repr(value) if quote else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _encode(message: dict[str, Any]) -> bytes:
    text = json.dumps(message, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    # Strings from undecodable files may hold lone surrogates; they must not break the line.
    return text.encode("utf-8", "replace") + b"\n"


def request(request_id: RequestId, method: str, params: Any = None) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = converter.unstructure(params)
    return _encode(message)


def response(request_id: RequestId, result: Any) -> bytes:
    return _encode({"jsonrpc": "2.0", "id": request_id, "result": converter.unstructure(result)})


def error(request_id: RequestId, code: int, message: str, data: Any = None) -> bytes:
    body: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        body["data"] = converter.unstructure(data)
    return _encode({"jsonrpc": "2.0", "id": request_id, "error": body})


def notification(method: str, params: Any) -> bytes:
    return _encode({"jsonrpc": "2.0", "method": method, "params": converter.unstructure(params)})
