"""Search requests through a real daemon's socket: what each mode answers at the edges of what a
request may ask (the largest limit, the longest query, a long name), never an internal error."""

import pytest
import trio

from codeweir.config import parse_config
from codeweir.protocol import MAX_QUERY_CHARS, MAX_SEARCH_LIMIT
from codeweir.search.query import MAX_SYMBOL_CHARS
from codeweir.service.daemon import run_daemon
from tests.gitrepo import make_repo
from tests.service.test_daemon import Conn

FILES = {
    "timeutil/parse.go": (
        "package timeutil\n\n// ParseDuration parses a duration string.\n"
        'func ParseDuration(s string) (int, error) {\n\tif s == "" {\n\t\treturn 0, errEmpty\n\t}\n\treturn len(s), nil\n}\n'
    ),
    "server.py": "class Server:\n    def handle(self, request):\n        return request.upper()\n",
}


async def serve(tmp_path, nursery, model: dict) -> tuple[object, Conn]:
    repo = make_repo(tmp_path / "proj", FILES)
    config = parse_config(
        {
            "state_dir": str(tmp_path / "state"),
            "socket": str(tmp_path / "run" / "codeweir.sock"),
            "repositories": [{"name": "proj", "path": str(repo.root)}],
            "limits": {"files_in_flight": 2, "parse_workers": 1},
            "model": model,
        },
        base_dir=tmp_path,
    )
    daemon = await nursery.start(run_daemon, config)
    conn = Conn(await trio.open_unix_socket(config.socket))
    assert (await conn.call("sync", {"repo": "proj", "wait": True}))["result"]["jobs"][0]["state"] == "completed"
    return daemon, conn


@pytest.fixture
async def conn(tmp_path, nursery):
    daemon, conn = await serve(tmp_path, nursery, {"enabled": False})
    yield conn
    daemon.shutdown()


async def test_hybrid_search_answers_every_limit_a_request_may_ask(tmp_path, nursery, default_model_dir):
    """The lexical half ranks three times the limit: more than a request may ask for."""
    daemon, conn = await serve(tmp_path, nursery, {"path": str(default_model_dir)})
    await daemon.embedding.wait_idle()
    for limit in (333, 334, 500, MAX_SEARCH_LIMIT):
        reply = await conn.call("search", {"query": "parse duration", "limit": limit})
        assert "result" in reply, (limit, reply)
        assert reply["result"]["mode"] == "hybrid" and reply["result"]["results"][0]["path"] == "timeutil/parse.go"
    daemon.shutdown()


@pytest.mark.parametrize("name", ["Parse" * 51 + "x", "😀" * MAX_SYMBOL_CHARS, "a.b::" * 51 + "x"])
async def test_a_symbol_name_of_the_longest_length_is_looked_up(conn, name):
    """A prefix query of a long name is no regex (Tantivy's regex automata have a size limit)."""
    reply = await conn.call("search", {"query": "sym:" + name})
    assert reply["result"]["results"] == [], reply


@pytest.mark.parametrize(
    "params",
    [{"query": "sym:" + "Parse" * 200}, {"query": "Parse" * 200, "mode": "symbol"}],
)
async def test_a_longer_symbol_name_is_a_request_error(conn, params):
    error = (await conn.call("search", params))["error"]
    assert error["code"] == -32602 and "a name is at most 256 characters, this one 1,000" in error["message"]


@pytest.mark.parametrize("mode", ["lexical", "hybrid"])
async def test_a_word_of_too_many_parts_is_a_request_error(conn, mode):
    error = (await conn.call("search", {"query": "a.b." * 1000, "mode": mode}))["error"]
    assert error["code"] == -32602 and "at most 1,024 words and parts of words" in error["message"]


async def test_a_long_symbol_name_still_finds_its_prefix_tier(conn):
    hits = (await conn.call("search", {"query": "sym:ParseDur"}))["result"]["results"]
    assert [h["symbol"] for h in hits] == ["ParseDuration"]


@pytest.mark.parametrize(
    "params, says",
    [
        ({"query": "x" * (MAX_QUERY_CHARS + 1)}, "query: must be at most 32,768 characters, got 32,769"),
        ({"query": "x", "limit": MAX_SEARCH_LIMIT + 1}, "limit: must be between 1 and 1000, got 1001"),
        ({"query": "x", "limit": 0}, "limit: must be between 1 and 1000, got 0"),
        ({"query": "x", "path": "*" * 5000}, "path: must be at most 4,096 characters, got 5,000"),
    ],
)
async def test_too_large_params_are_request_errors_naming_the_field(conn, params, says):
    error = (await conn.call("search", params))["error"]
    assert error == {"code": -32602, "message": f"invalid params for search: {says}"}


@pytest.mark.parametrize("mode", ["lexical", "regex"])
async def test_long_quoted_literals_and_patterns_are_answered(conn, mode):
    literal = "".join(chr(ord("a") + (i * 7) % 26) for i in range(20_000))
    query = f'"{literal}"' if mode == "lexical" else "lang:go " + literal
    reply = await conn.call("search", {"query": query, "mode": mode})
    if mode == "lexical":
        assert reply["result"]["results"] == []
    else:  # compiled, the pattern is more than the engine takes
        assert reply["error"]["code"] == -32602 and "the pattern is too large" in reply["error"]["message"]
