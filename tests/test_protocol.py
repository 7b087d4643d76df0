import json

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codeweir import protocol, protocol_params, protocol_results
from codeweir.protocol import (
    CLOSED,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    NEED_DATA,
    PARSE_ERROR,
    REQUEST_TOO_LARGE,
    ProtocolFailure,
    Request,
    ServerConnection,
)
from codeweir.protocol_params import SearchParams, SyncParams


def line(method: str, params=None, request_id=1, **extra) -> bytes:
    message = {"jsonrpc": "2.0", "id": request_id, "method": method, **extra}
    if params is not None:
        message["params"] = params
    return json.dumps(message).encode() + b"\n"


def events_of(data: bytes, max_request_bytes: int = 1 << 16) -> list:
    connection = ServerConnection(max_request_bytes)
    connection.receive_data(data)
    events = []
    while (event := connection.next_event()) is not NEED_DATA:
        events.append(event)
    return events


def only_event(data: bytes, **kwargs):
    (event,) = events_of(data, **kwargs)
    return event


def failure_of(data: bytes, **kwargs) -> ProtocolFailure:
    event = only_event(data, **kwargs)
    assert isinstance(event, ProtocolFailure), event
    return event


def test_a_request_without_params_gets_the_empty_params_object():
    assert only_event(line("status", request_id="a")) == Request("a", "status", protocol_params.NoParams())


def test_a_request_without_an_id_is_a_notification():
    message = json.dumps({"jsonrpc": "2.0", "method": "sync", "params": {"repo": "r"}}).encode() + b"\n"
    event = only_event(message)
    assert event.notification and event.params == SyncParams(repo="r")


def test_wait_and_sync_with_wait_are_long_running_others_are_not():
    assert only_event(line("wait", {})).long_running
    assert only_event(line("sync", {"all": True, "wait": True})).long_running
    assert not only_event(line("sync", {"all": True})).long_running
    assert not only_event(line("search", {"query": "x"})).long_running


def test_requests_split_across_receives_are_reassembled():
    data = line("search", {"query": "x"}) + line("jobs")
    connection = ServerConnection(1 << 16)
    events = []
    for i in range(len(data)):
        connection.receive_data(data[i : i + 1])
        while (event := connection.next_event()) is not NEED_DATA:
            events.append(event)
    assert [e.method for e in events] == ["search", "jobs"]


def test_blank_lines_are_skipped_and_eof_closes():
    connection = ServerConnection(1 << 16)
    connection.receive_data(b"\n  \r\n" + line("jobs"))
    connection.receive_data(b"")
    assert connection.next_event().method == "jobs"
    assert connection.next_event() is CLOSED


def test_a_last_request_without_newline_is_served_at_eof():
    connection = ServerConnection(1 << 16)
    connection.receive_data(line("repos").rstrip(b"\n"))
    assert connection.next_event() is NEED_DATA
    connection.receive_data(b"")
    assert connection.next_event().method == "repos"
    assert connection.next_event() is CLOSED


def test_an_oversized_line_is_answered_once_then_discarded_and_the_next_request_works():
    connection = ServerConnection(100)
    connection.receive_data(b'{"jsonrpc": "2.0", "method": "search", "params": {"query": "' + b"x" * 150)
    failure = connection.next_event()
    assert failure.code == REQUEST_TOO_LARGE and "100 bytes" in failure.message
    connection.receive_data(b"y" * 500)  # still the same oversized line
    assert connection.next_event() is NEED_DATA
    connection.receive_data(b'"}}\n' + line("jobs"))
    assert connection.next_event().method == "jobs"


def test_an_oversized_line_arriving_whole_is_refused():
    data = line("search", {"query": "x" * 200}) + line("jobs")
    first, second = events_of(data, max_request_bytes=100)
    assert first.code == REQUEST_TOO_LARGE and second.method == "jobs"


def test_a_line_of_exactly_the_limit_is_accepted():
    data = line("search", {"query": "abc"})
    assert only_event(data, max_request_bytes=len(data) - 1).method == "search"


@pytest.mark.parametrize(
    ("data", "code", "words"),
    [
        (b"{not json\n", PARSE_ERROR, "parse error"),
        (b"\xff\xfe\n", PARSE_ERROR, "UTF-8"),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "search", "params": {"query": NaN}}\n', PARSE_ERROR, "NaN"),
        (b"[" * 50_000 + b"\n", PARSE_ERROR, "nested too deeply"),
        (b"[" + line("jobs").strip() + b"]\n", INVALID_REQUEST, "batches are not supported"),
        (b'"status"\n', INVALID_REQUEST, "expected a JSON object, got a string"),
        (b'{"id": 1, "method": "status"}\n', INVALID_REQUEST, '"jsonrpc" must be "2.0"'),
        (line("status", x=1), INVALID_REQUEST, "unknown member(s) 'x'"),
        (line("status", request_id=[1]), INVALID_REQUEST, "id must be"),
        (line("status", request_id=True), INVALID_REQUEST, "id must be"),
        (b'{"jsonrpc": "2.0", "id": 1, "method": 5}\n', INVALID_REQUEST, "method must be a string"),
        (line("frobnicate"), METHOD_NOT_FOUND, "method not found: 'frobnicate'; methods: cancel, jobs"),
        (line("search", ["x"]), INVALID_PARAMS, "expected an object of named params, got an array"),
        (line("search", {}), INVALID_PARAMS, "query: required field missing"),
        (line("search", {"query": "  "}), INVALID_PARAMS, "query: must not be empty"),
        (line("search", {"query": 3}), INVALID_PARAMS, "query: expected a string, got a number"),
        (
            line("search", {"query": "x", "limit": 0}),
            INVALID_PARAMS,
            "limit: must be between 1 and 1000, got 0",
        ),
        (
            line("search", {"query": "x", "limit": "5"}),
            INVALID_PARAMS,
            "limit: expected an integer, got a string",
        ),
        (
            line("search", {"query": "x", "limit": True}),
            INVALID_PARAMS,
            "limit: expected an integer, got a boolean",
        ),
        (line("search", {"query": "x", "mode": "fuzzy"}), INVALID_PARAMS, "mode: must be one of 'hybrid'"),
        (
            line("search", {"query": "x", "case_sensitive": "yes"}),
            INVALID_PARAMS,
            "case_sensitive: expected true or false",
        ),
        (
            line("search", {"query": "x", "colour": 1}),
            INVALID_PARAMS,
            "colour: unknown field (fields: query, mode",
        ),
        (line("sync", {}), INVALID_PARAMS, "repo: give a repository name, or all=true"),
        (
            line("sync", {"repo": "a", "all": True}),
            INVALID_PARAMS,
            "all: give either repo or all=true, not both",
        ),
        (line("sync", {"all": True, "paths": ["a"]}), INVALID_PARAMS, "paths: needs repo"),
        (
            line("sync", {"repo": "a", "paths": "a.py"}),
            INVALID_PARAMS,
            "paths: expected a list, got a string",
        ),
        (line("sync", {"repo": "a", "paths": ["a", 2]}), INVALID_PARAMS, "paths: item 1: expected a string"),
        (
            line("sync", {"repo": "a", "priority": "urgent"}),
            INVALID_PARAMS,
            "priority: must be one of 'normal', 'interactive'",
        ),
        (line("wait", {"timeout": -1}), INVALID_PARAMS, "timeout: must be at least 0, got -1.0"),
        (
            b'{"jsonrpc": "2.0", "id": 1, "method": "wait", "params": {"timeout": 1e400}}\n',
            INVALID_PARAMS,
            "timeout: expected a finite number",
        ),
        (line("cancel", {}), INVALID_PARAMS, "job: give a job id or a repo"),
        (line("status", {"verbose": True}), INVALID_PARAMS, "verbose: unknown field (fields: none)"),
    ],
)
def test_each_kind_of_bad_request_gets_its_error_code_and_a_clear_message(data, code, words):
    failure = failure_of(data)
    assert failure.code == code
    assert words in failure.message
    answer = json.loads(failure.to_bytes())
    assert answer["error"] == {"code": code, "message": failure.message}


def test_an_error_keeps_the_request_id_when_it_was_readable():
    assert failure_of(line("search", {}, request_id="q7")).id == "q7"
    assert failure_of(b"{oops\n").id is None


def test_bad_notifications_are_not_answered():
    message = {"jsonrpc": "2.0", "method": "search", "params": {}}
    assert not failure_of(json.dumps(message).encode() + b"\n").reply


def test_a_server_offering_fewer_methods_reports_only_those():
    connection = ServerConnection(1 << 16, methods=["status", "search"])
    connection.receive_data(line("sync", {"all": True}))
    failure = connection.next_event()
    assert failure.code == METHOD_NOT_FOUND and failure.message.endswith("methods: search, status")


def test_a_server_cannot_offer_a_method_the_protocol_does_not_know():
    with pytest.raises(ValueError, match="frobnicate"):
        ServerConnection(100, methods=["frobnicate"])


def test_responses_are_one_json_line_and_hits_carry_line_and_column_only_for_regex():
    hit = protocol_results.SearchHit(
        repo="r", path="a.go", start_line=3, end_line=9, score=1.5, snippet="<b>x</b>", blob="abc", symbol="F"
    )
    result = protocol_results.SearchResult(results=(hit, attrs.evolve(hit, line=4, column=2)), took_ms=1.25, mode="regex")
    data = protocol.response(7, result)
    assert data.endswith(b"\n") and data.count(b"\n") == 1
    answer = json.loads(data)
    plain, regex = answer["result"]["results"]
    assert "line" not in plain and "column" not in plain
    assert (regex["line"], regex["column"]) == (4, 2)
    assert answer["id"] == 7 and answer["result"]["notes"] == []


def test_messages_survive_odd_values():
    data = protocol.notification("progress", {"text": "a\nb\ud800", "set": {1}})
    assert data.count(b"\n") == 1
    assert json.loads(data)["params"] == {"text": "a\nb?", "set": [1]}
    assert json.loads(protocol.error(None, -32000, "busy", data={"retry": 1}))["error"]["data"] == {"retry": 1}


def test_a_request_built_by_the_client_parses_back():
    data = protocol.request(3, "search", {"query": "x", "limit": 5})
    assert only_event(data) == Request(3, "search", SearchParams(query="x", limit=5))


def check_never_raises(chunks: list[bytes], max_request_bytes: int) -> int:
    connection = ServerConnection(max_request_bytes)
    seen = 0
    for chunk in chunks:
        connection.receive_data(chunk)
        while (event := connection.next_event()) is not NEED_DATA:
            assert isinstance(event, (Request, ProtocolFailure))
            if isinstance(event, ProtocolFailure):
                json.loads(event.to_bytes())
            seen += 1
    connection.receive_data(b"")
    while (event := connection.next_event()) is not CLOSED:
        assert isinstance(event, (Request, ProtocolFailure))
    return seen


@settings(max_examples=300)
@given(st.lists(st.binary(min_size=1, max_size=200), max_size=8), st.integers(16, 300))
def test_random_bytes_never_raise(chunks, max_request_bytes):
    check_never_raises(chunks, max_request_bytes)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
requestish = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.sampled_from(["2.0", "1.0"]) | json_values,
        "id": st.integers() | st.text(max_size=5) | json_values,
        "method": st.sampled_from(sorted(protocol_params.PARAMS)) | json_values,
        "params": st.dictionaries(
            st.sampled_from(["query", "repo", "all", "wait", "paths", "limit", "mode", "timeout", "job", "x"]),
            json_values,
            max_size=4,
        )
        | json_values,
    },
)


@settings(max_examples=200)
@given(st.lists(requestish | json_values, min_size=1, max_size=5))
def test_random_json_requests_each_get_exactly_one_request_or_failure(messages):
    data = b"".join(json.dumps(m).encode() + b"\n" for m in messages)
    assert check_never_raises([data], 1 << 16) == len(messages)
