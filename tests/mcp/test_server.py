"""`codeweir mcp` as agents run it: the MCP SDK's own ClientSession drives it as a subprocess over
stdio, against a real daemon (in this process, over its real socket) on a real git repository.

The client checks every answer's structured content against the tool's output schema (the SDK
does it on each call). Syncs are held where a test changes a file by taking the daemon's only git
thread. Nothing sleeps to wait: each step waits for its answer, or for the process to exit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError

from codeweir.client import HOW_TO_START
from codeweir.config import load_config
from codeweir.mcp.budget import compact_json, estimate_tokens
from codeweir.protocol_params import WaitParams
from codeweir.service.daemon import run_daemon
from tests.gitrepo import make_repo
from tests.service.test_daemon_process import write_config

LIMITS = "commit_every_files = 50\ngit_threads = 1\nsearch_threads = 3"
DEADLINE = 60.0
TOOLS = {"search_code", "find_symbol", "find_references", "read_code", "search_history", "list_repos", "index_status"}

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


CATALOG = "".join(f"ITEM_{i} = {i}  # the catalog's item number {i}\n" for i in range(300))


def report(i: int) -> str:
    body = "".join(f"    part_{j} = compute_total(rows[{j}:])  # share {j} of report {i}\n" for j in range(4))
    return f"from ledger import compute_total\n\n\ndef report_{i}(rows):\n{body}    return part_0\n"


@pytest.fixture
def repo(tmp_path):
    repo = make_repo(tmp_path / "shop", {"ledger.py": LEDGER, "catalog.py": CATALOG})
    repo.write_files({f"reports/report_{i:02}.py": report(i) for i in range(30)})
    repo.git("add", "-A")
    repo.git("commit", "-q", "--author", "Ada Lovelace <ada@example.com>", "-m", "Add monthly reports that sum ledger totals")
    repo.write("README.md", "# Shop\n\nLedgers and reports.\n")
    repo.commit("Describe the shop in a README")
    return repo


@pytest.fixture
async def daemon(nursery, tmp_path, repo):
    home = tmp_path / "home"
    home.mkdir()
    path = write_config(home / "config.toml", home, {"shop": f'path = "{repo.root}"'}, limits=LIMITS)
    daemon = await nursery.start(run_daemon, load_config(path), path)
    daemon.socket = home / "cw.sock"
    daemon.home = home
    await daemon.wait(WaitParams(), None)  # the start-up sync
    yield daemon
    daemon.shutdown()


def server_parameters(socket: Path) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable, args=["-m", "codeweir.cli.main", "mcp", "--socket", str(socket)], env={"PYTHONUNBUFFERED": "1"}
    )


@asynccontextmanager
async def mcp_session(socket: Path, errlog_dir: Path):
    with (errlog_dir / f"mcp-{os.getpid()}-{trio.current_time()}.log").open("w") as errlog:
        async with stdio_client(server_parameters(socket), errlog=errlog) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session


@pytest.fixture
async def session(daemon, tmp_path):
    async with mcp_session(daemon.socket, tmp_path) as session:
        yield session


async def call(session: ClientSession, tool: str, arguments: dict):
    """A tool's answer: its structured content (checked against the output schema by the SDK) and text."""
    result = await session.call_tool(tool, arguments)
    assert not result.is_error, result.content[0].text
    return result.structured_content, result.content[0].text


async def tool_error(session: ClientSession, tool: str, arguments: dict) -> str:
    result = await session.call_tool(tool, arguments)
    assert result.is_error and result.structured_content is None
    return result.content[0].text


async def mcp_error(session: ClientSession, tool: str, arguments: dict) -> MCPError:
    with pytest.raises(MCPError) as caught:
        await session.call_tool(tool, arguments)
    return caught.value


def within(budget: int, structured: dict, text: str) -> bool:
    return estimate_tokens(text) <= budget and estimate_tokens(compact_json(structured)) <= budget


# -- the tools ----------------------------------------------------------------------------------


async def test_the_tool_list_is_seven_read_only_tools_with_strict_input_and_output_schemas(session):
    listed = (await session.list_tools()).tools
    assert {tool.name for tool in listed} == TOOLS
    for tool in listed:
        assert tool.description and len(tool.description) > 60
        assert tool.input_schema["type"] == "object" and tool.input_schema["additionalProperties"] is False
        assert {"budget_tokens", "cursor"} <= tool.input_schema["properties"].keys()
        assert tool.input_schema["properties"]["budget_tokens"]["default"] == 4000
        assert tool.output_schema["type"] == "object" and "next_cursor" in tool.output_schema["required"]
        assert tool.annotations.read_only_hint is True and tool.annotations.destructive_hint is False
    search = next(t for t in listed if t.name == "search_code").input_schema
    assert search["required"] == ["query"]
    assert search["properties"]["mode"]["enum"] == ["auto", "literal", "regex", "symbol", "semantic", "hybrid"]
    assert {"repo", "path", "language", "kind", "case_sensitive", "limit", "context"} <= search["properties"].keys()


async def test_search_code_answers_blocks_whose_hits_carry_repo_path_lines_symbol_freshness_and_score(session):
    structured, text = await call(session, "search_code", {"query": "compute_total", "mode": "symbol"})
    [block, *_] = structured["blocks"]
    assert (block["repo"], block["path"], block["stale"]) == ("shop", "ledger.py", False)
    [hit] = block["hits"]
    assert hit["symbol"] == "compute_total" and hit["kind"] == "function" and hit["score"] > 0
    assert (hit["repo"], hit["path"], hit["start_line"]) == ("shop", "ledger.py", 4)
    assert "def compute_total(items):" in block["text"]
    assert "shop:ledger.py:" in text and "4:def compute_total(items):" in text  # the hit's own line, marked
    assert structured["cut"] is False and structured["mode"] == "symbol"


async def test_hits_next_to_each_other_in_one_file_share_one_block(session):
    structured, text = await call(session, "search_code", {"query": "total", "mode": "regex", "path": "ledger.py", "context": 2})
    assert structured["shown"] >= 4
    [block] = structured["blocks"]  # lines 4..14 hold every hit; with 2 lines around each they touch: one block
    assert len(block["hits"]) == structured["shown"]
    assert block["text"] == "\n".join(LEDGER.split("\n")[block["start_line"] - 1 : block["end_line"]])
    assert text.count("shop:ledger.py:") == 1
    assert "8:        total += item.price" in text and "7-    for item in items:" in text


async def test_literal_mode_finds_the_exact_text_quotes_and_all(session, repo):
    structured, _ = await call(
        session, "search_code", {"query": "rows[2:])  # share 2", "mode": "literal", "limit": 100, "budget_tokens": 100_000}
    )
    assert structured["shown"] == 30
    assert all(hit["line"] == 7 for block in structured["blocks"] for hit in block["hits"])


async def test_find_symbol_shows_the_definition_or_its_whole_body(session):
    structured, text = await call(session, "find_symbol", {"name": "compute_total"})
    [block] = structured["blocks"]
    assert block["hits"][0]["symbol"] == "compute_total" and "4:def compute_total(items):" in text
    structured, text = await call(session, "find_symbol", {"name": "Ledger.balance", "include_body": True})
    [block] = structured["blocks"]
    assert block["text"] == "    def balance(self):\n        return compute_total(self.entries)"
    assert block["hits"][0]["kind"] == "method"


async def test_find_references_groups_uses_by_file_with_line_and_column_and_says_it_is_search_based(session):
    structured, text = await call(session, "find_references", {"symbol": "compute_total", "budget_tokens": 100_000})
    assert structured["method"].startswith("search-based") and "search-based" in text
    assert [(d["path"], d["line"]) for d in structured["definitions"]] == [("ledger.py", 4)]
    files = {f["path"]: f["refs"] for f in structured["files"]}
    assert [(r["line"], r["column"]) for r in files["ledger.py"]] == [(14, 16)]
    assert [(r["line"], r["column"]) for r in files["reports/report_07.py"]] == [(1, 20), (5, 14), (6, 14), (7, 14), (8, 14)]
    assert structured["total"] == 1 + 30 * 5 == sum(len(r) for r in files.values())
    assert structured["next_cursor"] is None and "  5:14:     part_0 = compute_total(rows[0:])" in text


async def test_read_code_reads_numbered_lines_from_the_worktree(session):
    structured, text = await call(session, "read_code", {"repo": "shop", "path": "ledger.py", "start_line": 4, "end_line": 6})
    assert structured["text"] == "\n".join(LEDGER.split("\n")[3:6])
    assert (structured["start_line"], structured["end_line"], structured["total_lines"]) == (4, 6, 14)
    assert structured["stale"] is False and structured["next_cursor"] is None
    assert text.split("\n")[1] == "4:def compute_total(items):"


async def test_read_code_says_when_the_file_differs_from_the_indexed_version(daemon, session, repo):
    async with daemon.stages.git_limiter:  # no sync reads the change meanwhile
        repo.write("ledger.py", "# moved down a line\n" + LEDGER)
        structured, text = await call(session, "read_code", {"repo": "shop", "path": "ledger.py", "start_line": 1, "end_line": 1})
        assert structured["text"] == "# moved down a line" and structured["stale"] is True
        assert "differs from the version codeweir indexed" in text


async def test_search_history_finds_commits_by_words_author_dates_and_path(session, repo):
    structured, text = await call(session, "search_history", {"query": "monthly reports"})
    assert structured["commits"][0]["summary"] == "Add monthly reports that sum ledger totals"
    assert structured["commits"][0]["author"] == "Ada Lovelace <ada@example.com>"
    structured, _ = await call(session, "search_history", {"author": "ada"})
    assert [c["summary"] for c in structured["commits"]] == ["Add monthly reports that sum ledger totals"]
    structured, _ = await call(session, "search_history", {"path": "README.md"})
    assert [c["summary"] for c in structured["commits"]] == ["Describe the shop in a README"]
    structured, _ = await call(session, "search_history", {"since": "2023-12-31", "until": "2024-01-02"})
    assert len(structured["commits"]) == 3  # every commit of the repository, newest first
    structured, _ = await call(session, "search_history", {"since": "2030-01-01"})
    assert structured["commits"] == []


async def test_list_repos_and_index_status_say_what_is_indexed_how_fresh_and_how_covered(session, repo):
    structured, text = await call(session, "list_repos", {})
    [listed] = structured["repos"]
    assert (listed["name"], listed["path"], listed["files_indexed"]) == ("shop", str(repo.root), 33)
    assert listed["head"] == repo.head() and listed["synced_at"] is not None
    assert text.startswith("1 configured repositories")
    structured, text = await call(session, "index_status", {})
    [status] = structured["repos"]
    assert status["lexical_coverage"] == 1.0 and status["chunks"] > 0
    assert status["vector_coverage"] == 0.0 and structured["model"]["state"] == "disabled"
    assert "lexical 33/33 files (100%)" in text and "synced" in text


# -- budgets and cursors --------------------------------------------------------------------------


@pytest.mark.parametrize("budget", [300, 700, 2000])
async def test_every_answer_of_a_large_result_stays_within_its_budget(session, budget):
    calls = [
        ("search_code", {"query": "compute_total", "mode": "literal", "limit": 100, "context": 3}),
        ("find_symbol", {"name": "report", "include_body": True, "limit": 50}),
        ("find_references", {"symbol": "compute_total"}),
        ("read_code", {"repo": "shop", "path": "reports/report_01.py"}),
        ("search_history", {"limit": 100}),
        ("index_status", {}),
    ]
    for tool, arguments in calls:
        structured, text = await call(session, tool, {**arguments, "budget_tokens": budget})
        assert within(budget, structured, text), (tool, estimate_tokens(text), estimate_tokens(compact_json(structured)))
    structured, text = await call(session, "search_code", {**calls[0][1], "budget_tokens": budget})
    assert structured["cut"] is True and structured["next_cursor"] and "cut at the" in text


async def pages(session: ClientSession, tool: str, arguments: dict, budget: int) -> list[dict]:
    answers, cursor = [], None
    while True:
        structured, text = await call(
            session, tool, {**arguments, "budget_tokens": budget, **({"cursor": cursor} if cursor else {})}
        )
        assert within(budget, structured, text)
        answers.append(structured)
        cursor = structured["next_cursor"]
        if cursor is None:
            return answers
        assert len(answers) < 500, "the cursor does not advance"


def hit_places(answers: list[dict]) -> list[tuple]:
    return [(h["path"], h["start_line"], h.get("line")) for a in answers for b in a["blocks"] for h in b["hits"]]


@pytest.mark.parametrize(
    "arguments",
    [
        {"query": "compute_total", "mode": "literal", "limit": 100, "context": 2},
        {"query": "compute total rows", "mode": "auto", "limit": 60},
        {"query": "report", "mode": "symbol", "limit": 40},
    ],
    ids=["literal", "auto", "symbol"],
)
async def test_search_code_pages_by_cursor_reproduce_the_uncut_list_with_no_hit_twice_or_skipped(session, arguments):
    uncut = await pages(session, "search_code", arguments, 100_000)
    assert not any(answer["cut"] for answer in uncut) and len(hit_places(uncut)) >= 30
    paged = await pages(session, "search_code", arguments, 400)
    assert len(paged) > len(uncut) + 2
    assert hit_places(paged) == hit_places(uncut)
    assert len(set(hit_places(paged))) == len(hit_places(paged))


async def test_find_references_and_read_code_pages_reproduce_their_uncut_answers(session):
    [uncut] = await pages(session, "find_references", {"symbol": "compute_total"}, 100_000)
    paged = await pages(session, "find_references", {"symbol": "compute_total"}, 350)
    assert len(paged) > 3

    def refs(answers: list[dict]) -> list[tuple]:
        return [(f["path"], r["line"], r["column"]) for a in answers for f in a["files"] for r in f["refs"]]

    assert refs(paged) == refs([uncut])
    [whole] = await pages(session, "read_code", {"repo": "shop", "path": "catalog.py"}, 100_000)
    parts = await pages(session, "read_code", {"repo": "shop", "path": "catalog.py", "start_line": 3}, 300)
    assert len(parts) > 10
    assert (
        "\n".join(p["text"] for p in parts) == "\n".join(whole["text"].split("\n")[2:]) == CATALOG.rstrip("\n").split("\n", 2)[2]
    )


async def test_an_answer_of_limit_hits_ends_with_a_cursor_to_the_next_ones(session):
    arguments = {"query": "compute_total", "mode": "literal", "limit": 10, "budget_tokens": 100_000}
    first, text = await call(session, "search_code", arguments)
    assert first["shown"] == 10 and first["cut"] is False and first["next_cursor"] and "[more hits follow" in text
    second, _ = await call(session, "search_code", {**arguments, "cursor": first["next_cursor"]})
    uncut, _ = await call(session, "search_code", {**arguments, "limit": 20})
    assert hit_places([first, second]) == hit_places([uncut])


# -- errors -------------------------------------------------------------------------------------


async def test_what_the_daemon_refuses_is_a_tool_error_that_reads_nothing(session, repo, tmp_path):
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.py").write_text("SECRET = 'do not read me'\n")
    message = await tool_error(session, "read_code", {"repo": "nope", "path": "ledger.py"})
    assert "no repository named 'nope' (configured: shop)" in message
    for path, why in [
        ("../outside/secret.py", "'..' component"),
        ("reports/../../outside/secret.py", "'..' component"),
        (str(tmp_path / "outside" / "secret.py"), "is absolute"),
        (".git/config", "is not a file codeweir indexes"),
    ]:
        message = await tool_error(session, "read_code", {"repo": "shop", "path": path})
        assert why in message and "SECRET" not in message
    assert "no repository named" in await tool_error(session, "search_code", {"query": "x", "repo": "nope"})
    assert "no repository named" in await tool_error(session, "find_references", {"symbol": "x", "repo": "nope"})
    assert "no repository named" in await tool_error(session, "index_status", {"repo": "nope"})


async def test_a_symlink_leading_out_of_the_repository_is_refused(daemon, session, repo, tmp_path):
    async with daemon.stages.git_limiter:
        os.rename(repo.path("reports"), tmp_path / "moved")
        (tmp_path / "moved" / "report_00.py").write_text("LEAKED = True\n")
        repo.symlink("reports", str(tmp_path / "moved"))
        message = await tool_error(session, "read_code", {"repo": "shop", "path": "reports/report_00.py"})
        assert "symlink: not followed" in message and "LEAKED" not in message


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        ("search_code", {}, "query: required"),
        ("search_code", {"query": 42}, "query: expected string, got a number"),
        ("search_code", {"query": "x", "limit": 0}, "limit: must be between 1 and 100, got 0"),
        ("search_code", {"query": "x", "mode": "psychic"}, "mode: must be one of auto, literal"),
        ("search_code", {"query": "x", "colour": "red"}, "unknown argument(s) colour"),
        ("search_code", {"query": "x" * 100_000}, "query: at most 1000 characters, got 100000"),
        ("search_code", {"query": "x", "budget_tokens": 10**12}, "budget_tokens: must be between 300 and 100000"),
        ("search_code", {"query": "x", "cursor": "not a cursor!"}, "cursor: not a cursor codeweir gave"),
        (
            "read_code",
            {"repo": "shop", "path": "ledger.py", "start_line": 9, "end_line": 2},
            "end_line: must not be before start_line",
        ),
        ("search_history", {"since": "last tuesday"}, "since: A date: YYYY-MM-DD"),
        ("no_such_tool", {}, "unknown tool 'no_such_tool'"),
    ],
)
async def test_malformed_arguments_get_mcp_errors_and_the_server_goes_on(session, tool, arguments, message):
    error = await mcp_error(session, tool, arguments)
    assert error.code == -32602 and message in error.message, error.message
    assert len(error.message) < 600  # never the oversized value itself
    structured, _ = await call(session, "list_repos", {})
    assert structured["repos"][0]["name"] == "shop"


async def test_a_cursor_of_another_call_is_refused(session):
    first, _ = await call(session, "search_code", {"query": "compute_total", "mode": "literal", "budget_tokens": 300})
    error = await mcp_error(session, "search_code", {"query": "balance", "mode": "literal", "cursor": first["next_cursor"]})
    assert "continues a search_code call with other arguments" in error.message
    error = await mcp_error(session, "read_code", {"repo": "shop", "path": "ledger.py", "cursor": first["next_cursor"]})
    assert "not a cursor of read_code" in error.message


async def test_every_tool_says_the_daemon_is_down_and_how_to_start_it(tmp_path):
    with trio.fail_after(DEADLINE):
        async with mcp_session(tmp_path / "nobody-listens.sock", tmp_path) as session:
            for tool, arguments in [
                ("search_code", {"query": "x"}),
                ("find_symbol", {"name": "x"}),
                ("find_references", {"symbol": "x"}),
                ("read_code", {"repo": "r", "path": "p"}),
                ("search_history", {"query": "x"}),
                ("list_repos", {}),
                ("index_status", {}),
            ]:
                message = await tool_error(session, tool, arguments)
                assert "the codeweir daemon is not running" in message and HOW_TO_START in message


# -- the process ----------------------------------------------------------------------------------


def spawn(socket: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "codeweir.cli.main", "mcp", "--socket", str(socket)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def initialized(proc: subprocess.Popen) -> dict:
    """Send initialize and return its answer: the server is up and serving."""
    request = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}},
    }
    proc.stdin.write(json.dumps(request).encode() + b"\n")
    proc.stdin.flush()
    return json.loads(proc.stdout.readline())


@pytest.mark.parametrize(("how", "code"), [("SIGTERM", 0), ("SIGINT", 130), ("stdin closed", 0)])
def test_sigterm_ctrl_c_and_the_end_of_stdin_end_the_server_at_once_and_cleanly(tmp_path, how, code):
    proc = spawn(tmp_path / "nobody.sock")
    try:
        assert initialized(proc)["result"]["serverInfo"]["name"] == "codeweir"
        if how == "stdin closed":
            proc.stdin.close()
        else:
            proc.send_signal(getattr(signal, how))
        assert proc.wait(timeout=DEADLINE) == code
        assert b"Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_an_oversized_message_gets_an_error_for_its_id_and_the_server_goes_on(tmp_path):
    proc = spawn(tmp_path / "nobody.sock")
    try:
        initialized(proc)
        proc.stdin.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
        huge = {
            "jsonrpc": "2.0",
            "id": 7,
            "method": "tools/call",
            "params": {"name": "search_code", "arguments": {"query": "x" * (2 << 20)}},
        }
        proc.stdin.write(json.dumps(huge).encode() + b"\n")
        proc.stdin.write(b"this line is not JSON\n")
        proc.stdin.write(b'{"jsonrpc":"2.0","id":8,"method":"tools/list"}\n')
        proc.stdin.flush()
        answers = {}
        while 8 not in answers:
            message = json.loads(proc.stdout.readline())
            answers[message.get("id")] = message
        assert answers[7]["error"]["message"].startswith("message too large")
        assert len(answers[8]["result"]["tools"]) == 7
        proc.stdin.close()
        assert proc.wait(timeout=DEADLINE) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- refs -------------------------------------------------------------------------------------------

RELEASE_LEDGER = LEDGER.replace("total += item.price", "total += item.price * item.quantity")


@pytest.fixture
async def with_release(nursery, tmp_path, repo):
    """The shop with a release branch whose ledger differs, indexed beside the worktree."""
    repo.git("checkout", "-q", "-b", "release")
    repo.write("ledger.py", RELEASE_LEDGER)
    repo.commit("Price by quantity on the release")
    repo.git("checkout", "-q", "main")
    home = tmp_path / "home"
    home.mkdir()
    path = write_config(home / "config.toml", home, {"shop": f'path = "{repo.root}"\nrefs = ["release"]'}, limits=LIMITS)
    daemon = await nursery.start(run_daemon, load_config(path), path)
    await daemon.wait(WaitParams(), None)
    async with mcp_session(home / "cw.sock", tmp_path) as session:
        yield session
    daemon.shutdown()


async def test_search_code_and_find_symbol_take_a_ref_and_each_hit_names_the_refs_holding_it(with_release):
    session = with_release
    structured, text = await call(session, "search_code", {"query": "total", "mode": "regex", "path": "ledger.py"})
    assert all(hit.get("refs") is None for block in structured["blocks"] for hit in block["hits"])
    assert "item.quantity" not in text
    structured, text = await call(
        session, "search_code", {"query": "item.quantity", "mode": "literal", "ref": "release", "context": 0}
    )
    [block] = structured["blocks"]
    assert block["path"] == "ledger.py" and block["hits"][0]["refs"] == ["release"] and block["hits"][0]["line"] == 8
    assert "shop:ledger.py:4-9 @release" in text
    structured, text = await call(session, "find_symbol", {"name": "Ledger", "ref": ["release"]})
    [block] = structured["blocks"]
    assert block["hits"][0]["refs"] == ["release"] and "@release" in text
    structured, _ = await call(session, "find_symbol", {"name": "report_03"})
    assert structured["blocks"][0]["hits"][0]["refs"] == ["release"]  # the same on the worktree and the release


async def test_search_history_takes_a_ref(with_release):
    session = with_release
    structured, _ = await call(session, "search_history", {"query": "quantity"})
    assert structured["commits"] == []
    structured, _ = await call(session, "search_history", {"query": "quantity", "ref": "release"})
    assert [c["summary"] for c in structured["commits"]] == ["Price by quantity on the release"]


async def test_a_ref_no_repository_has_is_said_in_the_notes(with_release):
    structured, text = await call(with_release, "search_code", {"query": "compute_total", "ref": "v9"})
    assert structured["blocks"] == [] and "no repository has ref 'v9' indexed (refs indexed: release" in text
