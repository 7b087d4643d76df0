"""Search requests: through a real daemon's socket, what each mode answers at the edges of what a
request may ask (the largest limit, the longest query, a long name), never an internal error; and
the planner over an index of a repository's main view and a ref, with freshness checked against
the real repository."""

import pytest
import trio
import trio_parallel

from codeweir.config import ModelConfig, parse_config
from codeweir.embed.backlog import EmbeddingService
from codeweir.errors import RequestError
from codeweir.index.membership import MAIN
from codeweir.index.store import Store
from codeweir.protocol_params import MAX_QUERY_CHARS, MAX_SEARCH_LIMIT, SearchParams
from codeweir.protocol_results import SearchResult
from codeweir.records import Chunk, FileRecord
from codeweir.search.index_search import SearchWorkers
from codeweir.search.planner import SearchRequests
from codeweir.search.query import MAX_SYMBOL_CHARS, parse_query
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


# -- views: the main one and refs ------------------------------------------------------------------

RELEASE_CLOCK = "def parse_duration(text):\n    return 'release'\n"
MAIN_CLOCK = "def parse_duration(text):\n    return 'main'\n"
SHARED = "def shared_parse_duration(text):\n    return parse_duration(text)\n"


def clock_record(repo, view: str, path: str) -> FileRecord:
    blob = repo.git("rev-parse", f"{view or 'main'}:{path}")
    body = repo.git("cat-file", "blob", blob) + "\n"
    name = body.split("(")[0].removeprefix("def ")
    chunk = Chunk(1, body.count("\n"), 0, len(body), name, "function", name, body)
    return FileRecord("proj", path, blob, "python", (chunk,), (blob[:32],))


@pytest.fixture
async def views(tmp_path):
    """A repository whose main view is its worktree and which has the ref `release` besides,
    indexed as a sync of it is: each version once, held by the views that have it."""
    repo = make_repo(tmp_path / "proj", {"clock.py": RELEASE_CLOCK, "shared.py": SHARED})
    repo.git("branch", "release")
    repo.write("clock.py", MAIN_CLOCK)
    repo.commit("main moves on")
    store = Store(tmp_path / "index")
    for path in ("clock.py", "shared.py"):
        main, release = clock_record(repo, MAIN, path), clock_record(repo, "release", path)
        if main.blob == release.blob:
            store.write_file(main, views=(MAIN, "release"))
        else:
            store.write_file(main, views=(MAIN,))
            store.write_file(release, views=("release",))
    store.commit()
    send, receive = trio.open_memory_channel(1)
    limiter = trio.CapacityLimiter(2)
    embedding = EmbeddingService(
        ModelConfig(enabled=False), tmp_path / "state", store, receive, model_limiter=limiter, query_limiter=limiter
    )
    config = repo.config("proj")
    async with trio_parallel.open_worker_context() as context:
        workers = SearchWorkers(context, trio.CapacityLimiter(1))
        yield repo, SearchRequests(store, embedding, limiter, lambda name: config if name == "proj" else None, workers)


async def ask(searches: SearchRequests, query: str, mode: str = "lexical", **params) -> SearchResult:
    return await searches.answer(parse_query(query, regex=mode == "regex"), SearchParams(query=query, mode=mode, **params))


def seen(result: SearchResult) -> list[tuple[str, tuple[str, ...], bool]]:
    """Each file's hits as (path, refs, stale), once."""
    return sorted({(h.path, h.refs, h.stale) for h in result.results})


@pytest.mark.parametrize("mode", ["lexical", "hybrid", "symbol", "regex"])
async def test_without_ref_hits_come_from_the_main_view_once_each_naming_the_refs_that_hold_them(views, mode):
    _, searches = views
    query = {"regex": r"parse_duration\(", "symbol": "sym:parse_duration"}.get(mode, "parse duration")
    result = await ask(searches, query, mode)
    if mode == "symbol":  # the definition of that name, then those starting with it
        assert seen(result) == [("clock.py", (), False)]
    else:
        assert seen(result) == [("clock.py", (), False), ("shared.py", ("release",), False)]
    if mode in ("lexical", "hybrid"):
        assert len(result.results) == 2  # the version both views hold is one hit
    assert not any("'release" in h.snippet for h in result.results)


@pytest.mark.parametrize("as_param", [False, True])
async def test_a_ref_gives_that_refs_versions(views, as_param):
    _, searches = views
    result = await (ask(searches, "parse duration", ref="release") if as_param else ask(searches, "parse duration ref:release"))
    assert seen(result) == [("clock.py", ("release",), False), ("shared.py", ("release",), False)]
    (clock,) = [h for h in result.results if h.path == "clock.py"]
    assert "return 'release" in clock.snippet and result.notes == ()


async def test_a_ref_hit_is_stale_once_the_ref_holds_another_version_and_a_main_hit_is_not(views):
    repo, searches = views
    repo.git("checkout", "-q", "release")
    repo.write("clock.py", "def parse_duration(text):\n    return 'release, fixed'\n")
    repo.commit("fix the release")
    repo.git("checkout", "-q", "main")
    assert seen(await ask(searches, "parse duration", ref=["release"])) == [
        ("clock.py", ("release",), True),
        ("shared.py", ("release",), False),
    ]
    assert seen(await ask(searches, "parse duration")) == [("clock.py", (), False), ("shared.py", ("release",), False)]
    repo.write("shared.py", "# edited in the worktree\n")
    assert seen(await ask(searches, "parse duration")) == [("clock.py", (), False), ("shared.py", ("release",), True)]
    assert seen(await ask(searches, "parse duration ref:release")) == [
        ("clock.py", ("release",), True),
        ("shared.py", ("release",), False),
    ]


async def test_a_ref_no_repository_has_indexed_gives_no_hits_and_a_note_naming_those_there_are(views):
    _, searches = views
    result = await ask(searches, "parse duration ref:v9")
    assert result.results == ()
    assert result.notes == (
        "no repository has ref 'v9' indexed (refs indexed: release; a repository's refs are set in its config)",
    )
    result = await ask(searches, "parse duration", repo="proj", ref=["release", "v9"])
    assert len(result.results) == 2
    assert result.notes == (
        "repository 'proj' has no ref 'v9' indexed (refs indexed: release; a repository's refs are set in its config)",
    )


async def test_a_ref_param_and_a_different_ref_in_the_query_are_a_request_error(views):
    _, searches = views
    with pytest.raises(RequestError, match="ref: the request says"):
        await ask(searches, "parse duration ref:release", ref="v9")
