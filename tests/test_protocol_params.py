"""Each method's params as a request line structures them: defaults, refs, size limits."""

import pytest

from codeweir import protocol, protocol_params
from codeweir.protocol import INVALID_PARAMS, Request
from codeweir.protocol_params import SearchParams
from tests.test_protocol import failure_of, line, only_event


def test_a_search_request_is_structured_with_defaults():
    event = only_event(line("search", {"query": "parse duration", "repo": "go"}))
    assert event == Request(1, "search", SearchParams(query="parse duration", repo="go"))
    assert event.params.mode == "hybrid" and event.params.limit == 10


@pytest.mark.parametrize(
    "ref, refs",
    [(None, ()), ("release/5.1", ("release/5.1",)), (["main", "v5.1.3"], ("main", "v5.1.3")), ([], ())],
)
def test_a_search_takes_one_ref_or_a_list_of_them(ref, refs):
    params = only_event(line("search", {"query": "x", "ref": ref})).params
    assert params.refs == refs
    assert only_event(protocol.request(1, "search", params)).params == params


@pytest.mark.parametrize(
    "ref, message",
    [
        (3, "ref: expected a string or a list of strings, got a number"),
        ({"name": "main"}, "ref: expected a string or a list of strings, got an object"),
        (["main", 3], "ref: item 1: expected a string, got a number"),
        (" ", "ref: must not be empty"),
        (["main", ""], "ref: item 1: must not be empty"),
        ("r" * 4097, "ref: must be at most 4,096 characters, got 4,097"),
    ],
)
def test_a_ref_that_is_not_a_name_or_a_list_of_names_is_invalid_params_naming_it(ref, message):
    failure = failure_of(line("search", {"query": "x", "ref": ref}))
    assert (failure.code, failure.message) == (INVALID_PARAMS, f"invalid params for search: {message}")


def test_sync_paths_arrive_as_a_tuple():
    event = only_event(line("sync", {"repo": "r", "paths": ["a.py", "b/c.go"], "priority": "interactive"}))
    assert event.params.paths == ("a.py", "b/c.go")


@pytest.mark.parametrize(
    ("method", "params", "message"),
    [
        (
            "search",
            {"query": "x" * (protocol_params.MAX_QUERY_CHARS + 1)},
            "invalid params for search: query: must be at most 32,768 characters, got 32,769",
        ),
        ("search", {"query": "x", "limit": 1001}, "invalid params for search: limit: must be between 1 and 1000, got 1001"),
        (
            "search",
            {"query": "x", "path": "a" * 4097},
            "invalid params for search: path: must be at most 4,096 characters, got 4,097",
        ),
        (
            "search",
            {"query": "x", "repo": "r" * 4097},
            "invalid params for search: repo: must be at most 4,096 characters, got 4,097",
        ),
        (
            "sync",
            {"repo": "r", "paths": ["a.py"] * (protocol_params.MAX_LIST_ITEMS + 1)},
            "invalid params for sync: paths: must have at most 10,000 items, got 10,001",
        ),
        (
            "sync",
            {"repo": "r", "paths": ["a.py", "b" * 4097]},
            "invalid params for sync: paths: item 1: must be at most 4,096 characters, got 4,097",
        ),
        ("wait", {"repo": "r" * 4097}, "invalid params for wait: repo: must be at most 4,096 characters, got 4,097"),
    ],
)
def test_params_over_a_size_limit_are_invalid_params_naming_the_field(method, params, message):
    failure = failure_of(line(method, params), max_request_bytes=1 << 20)  # the server's default
    assert (failure.code, failure.message) == (INVALID_PARAMS, message)


def test_params_at_their_size_limits_are_accepted():
    query = "x" * protocol_params.MAX_QUERY_CHARS
    assert only_event(line("search", {"query": query, "limit": 1000}), max_request_bytes=1 << 20).params.query == query
    paths = [f"src/{i}.py" for i in range(protocol_params.MAX_LIST_ITEMS)]
    assert len(only_event(line("sync", {"repo": "r", "paths": paths}), max_request_bytes=1 << 20).params.paths) == len(paths)
