"""The socket's paging and reading: `search` with `cursor` and `context`, `read` and `refs`
(service/reading.py, search/paging.py, search/context.py, search/references.py, git/reading.py),
on an in-process daemon over its real socket, real git repositories and real Tantivy.

Syncs are held where a test changes a file by taking the daemon's only git thread: what the index
holds stays as it was while the test reads.
"""

from __future__ import annotations

import base64
import json
import os

import pytest
import trio

from codeweir.config import load_config
from codeweir.service.daemon import run_daemon
from tests.gitrepo import make_repo
from tests.service.test_daemon import Conn
from tests.service.test_daemon_process import write_config

LIMITS = "commit_every_files = 20\ngit_threads = 1\nsearch_threads = 3"

LEDGER = '''"""Totals."""


def compute_total(items):
    """The sum of the items' prices."""
    total = 0
    for item in items:
        total += item.price
    return total


class Ledger:
    def balance(self):
        return compute_total(self.entries)
'''


def user(i: int) -> str:
    return f"from ledger import compute_total\n\n\ndef report_{i}(rows):\n    first = compute_total(rows)\n    return first + compute_total(rows[1:])\n"


@pytest.fixture
def repo(tmp_path):
    files = {"ledger.py": LEDGER, **{f"reports/report_{i}.py": user(i) for i in range(12)}}
    files["tests/test_ledger.py"] = "from ledger import compute_total\n\n\ndef test_total():\n    assert compute_total([]) == 0\n"
    return make_repo(tmp_path / "shop", files)


@pytest.fixture
async def daemon(nursery, tmp_path, repo):
    home = tmp_path / "home"
    home.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.py").write_text("SECRET = 'do not read me'\n")
    path = write_config(home / "config.toml", home, {"shop": f'path = "{repo.root}"'}, limits=LIMITS)
    daemon = await nursery.start(run_daemon, load_config(path), path)
    async with await trio.open_unix_socket(home / "cw.sock") as stream:
        conn = Conn(stream)
        assert (await conn.call("wait"))["result"]["done"]
        daemon.conn = conn
        yield daemon
    daemon.shutdown()


async def result(conn: Conn, method: str, params: dict):
    reply = await conn.call(method, params)
    assert "result" in reply, reply
    return reply["result"]


async def error(conn: Conn, method: str, params: dict) -> str:
    reply = await conn.call(method, params)
    assert "error" in reply, reply
    return reply["error"]["message"]


def where(hit: dict) -> tuple:
    return (hit["path"], hit["start_line"], hit.get("line"))


async def pages(conn: Conn, params: dict, limit: int) -> list[dict]:
    hits, cursor = [], None
    while True:
        answer = await result(conn, "search", {**params, "limit": limit, **({"cursor": cursor} if cursor else {})})
        assert len(answer["results"]) <= limit
        hits += answer["results"]
        cursor = answer["next_cursor"]
        if cursor is None:
            return hits


@pytest.mark.parametrize(
    "params",
    [
        {"query": '"compute_total"', "mode": "lexical"},
        {"query": r"compute_total\(", "mode": "regex"},
        {"query": "compute total rows", "mode": "hybrid"},
        {"query": "compute_total", "mode": "symbol"},
    ],
    ids=["exact", "regex", "hybrid", "symbol"],
)
async def test_search_pages_by_cursor_reproduce_the_uncut_list_with_no_hit_twice(daemon, params):
    uncut = await result(daemon.conn, "search", {**params, "limit": 200})
    assert uncut["next_cursor"] is None
    paged = await pages(daemon.conn, params, 3)
    assert [where(h) for h in paged] == [where(h) for h in uncut["results"]]
    assert len({where(h) for h in paged}) == len(paged) >= 1


async def test_a_page_ends_with_a_cursor_only_when_more_hits_follow(daemon):
    first = await result(daemon.conn, "search", {"query": '"compute_total"', "mode": "lexical", "limit": 5})
    assert len(first["results"]) == 5 and first["next_cursor"]
    everything = await result(daemon.conn, "search", {"query": '"compute_total"', "mode": "lexical", "limit": 1000})
    assert everything["next_cursor"] is None and len(everything["results"]) > 5


async def test_page_sizes_may_change_between_pages(daemon):
    params = {"query": r"compute_total\(", "mode": "regex"}
    uncut = (await result(daemon.conn, "search", {**params, "limit": 100}))["results"]
    first = await result(daemon.conn, "search", {**params, "limit": 2})
    second = await result(daemon.conn, "search", {**params, "limit": 7, "cursor": first["next_cursor"]})
    assert [where(h) for h in first["results"] + second["results"]] == [where(h) for h in uncut[:9]]


async def test_a_cursor_sent_with_another_query_or_damaged_is_refused(daemon):
    first = await result(daemon.conn, "search", {"query": '"compute_total"', "mode": "lexical", "limit": 2})
    cursor = first["next_cursor"]
    message = await error(daemon.conn, "search", {"query": '"balance"', "mode": "lexical", "cursor": cursor})
    assert message.startswith("cursor: it continues another request")
    assert (await error(daemon.conn, "search", {"query": "x", "cursor": "%%%"})).startswith("cursor: not a cursor")
    forged = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    forged["d"] = 10**9  # a search as deep as the client likes: refused
    text = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode()
    message = await error(daemon.conn, "search", {"query": '"compute_total"', "mode": "lexical", "cursor": text})
    assert message.startswith("cursor: damaged")


async def test_context_gives_each_hit_its_whole_lines_and_n_around_from_the_file(daemon, repo):
    answer = await result(daemon.conn, "search", {"query": '"total += item.price"', "mode": "lexical", "context": 2})
    [hit] = answer["results"]
    lines = LEDGER.split("\n")
    assert hit["line"] == 8
    assert hit["context"] == {"start_line": 6, "end_line": 10, "text": "\n".join(lines[5:10])}


async def test_context_of_a_symbol_hit_is_around_its_definition_line(daemon):
    answer = await result(daemon.conn, "search", {"query": "compute_total", "mode": "symbol", "context": 1})
    hit = answer["results"][0]
    assert hit["path"] == "ledger.py"
    context = hit["context"]
    assert context["start_line"] == 3 and "def compute_total(items):" in context["text"].split("\n")[1]


async def test_context_and_references_of_a_ref_are_from_that_refs_version_of_the_file(nursery, tmp_path, repo):
    repo.git("branch", "old")
    repo.write("ledger.py", "# moved down\n" * 5 + LEDGER)  # the worktree's version differs
    home = tmp_path / "home"
    home.mkdir()
    path = write_config(home / "config.toml", home, {"shop": f'path = "{repo.root}"\nrefs = ["old"]'}, limits=LIMITS)
    daemon = await nursery.start(run_daemon, load_config(path), path)
    async with await trio.open_unix_socket(home / "cw.sock") as stream:
        conn = Conn(stream)
        assert (await conn.call("wait"))["result"]["done"]
        query = {"query": '"total += item.price"', "mode": "lexical", "context": 1}
        [on_ref] = (await result(conn, "search", {**query, "ref": "old"}))["results"]
        [on_main] = (await result(conn, "search", query))["results"]
        uses = {}
        for ref in ("old", None):
            answer = await result(conn, "refs", {"symbol": "compute_total", "path": "ledger.py", **({"ref": ref} if ref else {})})
            uses[ref] = [use["line"] for file in answer["files"] for use in file["refs"]]
    daemon.shutdown()
    assert uses == {"old": [14], None: [19]}  # references are looked for in the views asked for
    assert (on_ref["line"], on_ref["context"]["start_line"], on_main["line"]) == (8, 7, 13)
    assert on_ref["context"]["text"] == "\n".join(LEDGER.split("\n")[6:9])
    assert on_main["context"]["text"] == "\n".join(LEDGER.split("\n")[6:9])


async def test_without_context_hits_carry_none(daemon):
    answer = await result(daemon.conn, "search", {"query": '"compute_total"', "mode": "lexical"})
    assert all("context" not in hit for hit in answer["results"])


async def test_read_returns_the_asked_lines_with_the_files_length_and_freshness(daemon, repo):
    answer = await result(daemon.conn, "read", {"repo": "shop", "path": "ledger.py", "start": 4, "end": 6})
    assert answer["text"] == "\n".join(LEDGER.split("\n")[3:6])
    assert (answer["start_line"], answer["end_line"], answer["total_lines"]) == (4, 6, 14)
    assert answer["stale"] is False and answer["more"] is False and answer["blob"] == answer["indexed_blob"]
    whole = await result(daemon.conn, "read", {"repo": "shop", "path": "ledger.py"})
    assert whole["text"] + "\n" == LEDGER
    past = await result(daemon.conn, "read", {"repo": "shop", "path": "ledger.py", "start": 13, "end": 400})
    assert (past["start_line"], past["end_line"]) == (13, 14)


async def test_read_says_when_the_file_differs_from_the_indexed_version(daemon, repo):
    async with daemon.stages.git_limiter:  # no sync reads the change meanwhile
        repo.write("ledger.py", "# moved\n" + LEDGER)
        answer = await result(daemon.conn, "read", {"repo": "shop", "path": "ledger.py", "start": 1, "end": 1})
        assert answer["text"] == "# moved" and answer["stale"] is True
        assert answer["blob"] == repo.hash_object("ledger.py") != answer["indexed_blob"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"repo": "nope", "path": "ledger.py"}, "repo: no repository named 'nope' (configured: shop)"),
        ({"repo": "shop", "path": "../outside/secret.py"}, "has a '..' component"),
        ({"repo": "shop", "path": "/etc/passwd"}, "is absolute"),
        ({"repo": "shop", "path": "reports/../ledger.py"}, "has a '..' component"),
        ({"repo": "shop", "path": ".git/config"}, "is not a file codeweir indexes"),
        ({"repo": "shop", "path": "ledger.py", "start": 99}, "start: ledger.py has 14 lines"),
    ],
)
async def test_read_refuses_what_is_not_an_indexed_file_of_a_configured_repository(daemon, params, message):
    assert message in await error(daemon.conn, "read", params)


async def test_read_refuses_a_directory_swapped_for_a_symlink_leading_out(daemon, repo, tmp_path):
    async with daemon.stages.git_limiter:
        os.rename(repo.path("reports"), tmp_path / "moved")
        (tmp_path / "moved" / "report_0.py").write_text("LEAKED = True\n")
        repo.symlink("reports", str(tmp_path / "moved"))
        message = await error(daemon.conn, "read", {"repo": "shop", "path": "reports/report_0.py"})
        assert "symlink: not followed" in message and "LEAKED" not in message


async def test_refs_lists_uses_grouped_by_file_without_the_definition(daemon):
    answer = await result(daemon.conn, "refs", {"symbol": "compute_total"})
    assert answer["method"].startswith("search-based")
    assert [(d["path"], d["line"]) for d in answer["definitions"]] == [("ledger.py", 4)]
    files = {f["path"]: f["refs"] for f in answer["files"]}
    assert [(r["line"], r["column"]) for r in files["ledger.py"]] == [(14, 16)]  # not line 4's definition
    assert [(r["line"], r["column"]) for r in files["reports/report_3.py"]] == [(1, 20), (5, 13), (6, 20)]
    assert files["reports/report_3.py"][2]["text"] == "    return first + compute_total(rows[1:])"
    assert answer["total"] == 1 + 12 * 3 + 2 and answer["complete"] is True and answer["next_cursor"] is None
    paths = [f["path"] for f in answer["files"]]
    assert len(paths) == len(set(paths)) == 14  # one group per file
    assert paths.index("tests/test_ledger.py") > paths.index("reports/report_0.py")  # source before tests


async def test_refs_pages_by_cursor_reproduce_the_whole_list(daemon):
    whole = await result(daemon.conn, "refs", {"symbol": "compute_total", "limit": 1000})

    def flat(answer: dict) -> list[tuple]:
        return [(f["path"], r["line"], r["column"]) for f in answer["files"] for r in f["refs"]]

    paged, cursor = [], None
    while True:
        answer = await result(
            daemon.conn, "refs", {"symbol": "compute_total", "limit": 4, **({"cursor": cursor} if cursor else {})}
        )
        assert answer["shown"] <= 4
        paged += flat(answer)
        cursor = answer["next_cursor"]
        if cursor is None:
            break
    assert paged == flat(whole)


async def test_refs_of_a_name_that_is_not_an_identifier_is_an_error(daemon):
    assert "is not an identifier" in await error(daemon.conn, "refs", {"symbol": "compute total"})
    assert "no repository named" in await error(daemon.conn, "refs", {"symbol": "x", "repo": "nope"})
