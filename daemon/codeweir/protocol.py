"""The control API's wire protocol: JSON-RPC 2.0, one JSON object per line, without I/O.

Like h11, this module never touches a socket: the server feeds received bytes to
`ServerConnection.receive_data` and takes parsed events from `next_event`; `response`, `error`
and `notification` return the bytes to send. Params are structured into their frozen attrs
classes (protocol_params.py) by one strict cattrs converter, which also makes the JSON of the
results (protocol_results.py): unknown fields, wrong types and out-of-range values are errors that
name the field, never silently coerced.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Iterable, Set
from datetime import date, datetime
from pathlib import PurePath
from typing import Any, Literal, TypeAlias, get_args, get_origin

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError
from cattrs.gen import make_dict_unstructure_fn

from codeweir.protocol_params import MAX_LIST_ITEMS, PARAMS, InvalidField, InvalidValue, RefNames
from codeweir.protocol_results import Matches, SearchHit

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

RequestId: TypeAlias = str | int | None


def _structure_str(value: Any, _: type) -> str:
    if isinstance(value, str):
        return value
    raise InvalidValue(f"expected a string, got {json_kind(value)}")


def _structure_bool(value: Any, _: type) -> bool:
    if isinstance(value, bool):
        return value
    raise InvalidValue(f"expected true or false, got {json_kind(value)}")


def _structure_int(value: Any, _: type) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise InvalidValue(f"expected an integer, got {json_kind(value)}")


def _structure_float(value: Any, _: type) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if math.isfinite(number):
            return number
        raise InvalidValue(f"expected a finite number, got {_brief(value)}")
    raise InvalidValue(f"expected a number, got {json_kind(value)}")


def _structure_literal(value: Any, type_: Any) -> str:
    choices = get_args(type_)
    if isinstance(value, str) and value in choices:
        return value
    names = ", ".join(repr(c) for c in choices)
    raise InvalidValue(f"must be one of {names}; got {_brief(value) if isinstance(value, str) else json_kind(value)}")


def _structure_str_tuple(value: Any, type_: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise InvalidValue(f"expected a list, got {json_kind(value)}")
    if len(value) > MAX_LIST_ITEMS:  # refused before its items are looked at
        raise InvalidValue(f"must have at most {MAX_LIST_ITEMS:,} items, got {len(value):,}")
    (item_type, _ellipsis) = get_args(type_)
    items = []
    for index, item in enumerate(value):
        try:
            items.append(converter.structure(item, item_type))
        except InvalidValue as exc:
            raise InvalidValue(f"item {index}: {exc}") from None
    return tuple(items)


def _is_literal(type_: Any) -> bool:
    return get_origin(type_) is Literal


def _structure_ref_names(value: Any, _: Any) -> RefNames:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        return _structure_str_tuple(value, tuple[str, ...])
    raise InvalidValue(f"expected a string or a list of strings, got {json_kind(value)}")


def _is_str_tuple(type_: Any) -> bool:
    return get_origin(type_) is tuple and len(get_args(type_)) == 2 and get_args(type_)[1] is Ellipsis


_HIT_OPTIONAL = ("line", "column", "explain", "context")  # SearchHit's fields sent only when not None


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
    if isinstance(exc, InvalidField):
        return [f"{at(exc.field)}: {exc}"]
    if isinstance(exc, KeyError):
        return [f"{path}: required field missing"]
    if isinstance(exc, InvalidValue):
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
