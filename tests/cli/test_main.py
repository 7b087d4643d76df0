import json
import signal
import subprocess
import sys

import attrs
import pytest
import trio

from codeweir import protocol, protocol_params, protocol_results
from codeweir.cli import main as cli
from codeweir.cli.render_hits import ELLIPSIS
from codeweir.client import HOW_TO_START
from codeweir.config import ServerConfig, parse_config
from codeweir.errors import RequestError
from codeweir.git.hooks import HOOK_NAMES
from codeweir.service import handlers
from codeweir.service.scheduler import SyncRequest
from codeweir.service.server import serve_unix
from tests.gitrepo import make_repo
from tests.service.test_jobs import Syncs, running

HITS = (
    protocol_results.SearchHit(
        repo="alpha",
        path="pkg/time.go",
        start_line=3,
        end_line=9,
        symbol="ParseDuration",
        kind="function",
        language="go",
        score=0.8125,
        snippet="func ParseDuration(s string) (Duration, error) {\n\treturn x && y",
        matches=((5, 18),),
        blob="4b825dc",
    ),
    protocol_results.SearchHit(
        repo="beta",
        path="[id].tsx",
        start_line=1,
        end_line=1,
        score=0.5,
        snippet="parse",
        matches=((0, 5),),
        blob="e69de29",
        line=1,
        column=7,
    ),
)


NOW = 1_800_000_000.0
STATUS = {
    "daemon": {
        "version": "0.1.0",
        "pid": 4242,
        "uptime_s": 7384.2,
        "state_dir": "/home/dev/.local/state/codeweir",
        "socket": "/run/user/1000/codeweir.sock",
    },
    "repos": [
        {
            "name": "go-std",
            "path": "/srv/git/go.git",
            "files_indexed": 8176,
            "files_seen": 8176,
            "files_total": 8176,
            "files_skipped": {"binary": 12, "too_large": 3},
            "chunks": 67312,
            "chunks_embedded": 28944,
            "file_errors": [
                {
                    "path": "src/cmd/vendor/golang.org/x/arch/x86/x86asm/tables.go",
                    "status": "error",
                    "error": "the worker reading and chunking it timed out",
                }
            ],
            "head": "4b27d4a5fdbac9016f65d021bd832310853d5859",
            "refs": [
                {
                    "name": "release-branch.go1.19",
                    "commit": "9a8b7c6d5e4f",
                    "files": 8170,
                    "chunks": 67000,
                    "chunks_embedded": 6700,
                }
            ],
            "refs_unmatched": ["release-branch.go1.20*"],
            "synced_at": NOW - 130,
            "error": None,
            "backoff": None,
        },
        {
            "name": "a-repository-with-a-rather-long-name",
            "path": "/home/dev/src/work/projects/client/backend/monorepo",
            "files_indexed": 0,
            "files_seen": 0,
            "files_total": None,
            "files_skipped": {},
            "chunks": 0,
            "chunks_embedded": 0,
            "file_errors": [],
            "head": "",
            "synced_at": None,
            "error": "repository 'a-repository-with-a-rather-long-name' at /home/dev/src/work/projects/client/backend/monorepo: no such directory",
            "backoff": {"failures": 3, "reason": "RepoError: no such directory", "retry_at": NOW + 40, "retry_in_s": 40.0},
        },
    ],
    "model": {
        "state": "filling",
        "error": None,
        "model": "all-MiniLM-L6-v2-int8",
        "provider": "CPUExecutionProvider",
        "vectors": 28944,
        "serving": "all-MiniLM-L6-v2-int8",
    },
    "index": {
        "directory": "/home/dev/.local/state/codeweir/index",
        "versions": {"schema": 3, "chunker": 1},
        "rebuilding": False,
        "rebuilt_repos": [],
    },
    "queue": {"queued": 1, "running": 1},
}
JOBS = {
    "jobs": [
        {
            "id": "j12",
            "repo": "a-repository-with-a-rather-long-name",
            "state": "queued",
            "full": False,
            "paths": None,
            "priority": "normal",
            "created": NOW - 5,
            "started": None,
            "ended": None,
            "counts": {},
            "error": None,
        },
        {
            "id": "j11",
            "repo": "go-std",
            "state": "running",
            "full": True,
            "paths": None,
            "priority": "normal",
            "created": NOW - 200,
            "started": NOW - 190,
            "ended": None,
            "counts": {},
            "error": None,
        },
        {
            "id": "j10",
            "repo": "go-std",
            "state": "completed",
            "full": False,
            "paths": ["src/net/http/server.go"],
            "priority": "interactive",
            "created": NOW - 3700,
            "started": NOW - 3700,
            "ended": NOW - 3696.5,
            "counts": {"files": 8176, "indexed": 1, "deleted": 0, "unchanged": 0, "commits": 0},
            "error": None,
        },
        {
            "id": "j9",
            "repo": "a-repository-with-a-rather-long-name",
            "state": "failed",
            "full": False,
            "paths": None,
            "priority": "normal",
            "created": NOW - 90000,
            "started": NOW - 90000,
            "ended": NOW - 89999,
            "counts": {},
            "error": "RepoError: repository 'a-repository-with-a-rather-long-name' at "
            "/home/dev/src/work/projects/client/backend/monorepo: no such directory",
        },
    ]
}


RELOADED = {"added": ["gamma", "delta"], "removed": ["beta"], "changed": [], "restart_needed": ["limits"]}
COMMIT_HITS = (
    protocol_results.CommitHit(
        repo="alpha",
        sha="4b27d4a5fdbac9016f65d021bd832310853d5859",
        author="Alice Liddell <alice@example.com>",
        date="2024-03-02T14:05:00+00:00",
        summary="net/http: fix race in the connection pool",
        paths=("src/net/http/transport.go", "src/net/http/pool.go", "src/net/http/pool_test.go"),
        score=5.441,
        snippet="net/http: fix race in the connection pool\n\nThe pool's idle list was read without its lock.",
        matches=((10, 13), (14, 18)),
    ),
)


class Daemon:
    """Handlers standing in for the daemon, recording what the CLI asked for."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.following = trio.Event()
        self.left = trio.Event()
        self.paths = {"alpha": "/src/alpha", "beta": "/src/beta"}
        self.hits: tuple = HITS

    async def status(self, params, notify):
        return STATUS

    async def repos(self, params, notify):
        return {"repos": [{"name": name, "path": path} for name, path in self.paths.items()]}

    async def jobs(self, params, notify):
        return JOBS

    async def reload(self, params, notify):
        return RELOADED

    async def search(self, params, notify):
        self.calls.append(("search", params))
        if params.query == "unbalanced(":
            raise RequestError("invalid query: unbalanced parenthesis at column 10")
        return protocol_results.SearchResult(results=self.hits, took_ms=3.5, mode=params.mode, notes=("semantic: 40% embedded",))

    async def sync(self, params, notify):
        self.calls.append(("sync", params))
        job = {"id": "j1", "repo": params.repo or "alpha"}
        if not params.wait:
            return {"jobs": [{**job, "state": "queued"}]}
        if params.repo == "broken":
            return {"jobs": [{**job, "state": "failed", "error": "path /src/broken does not exist"}]}
        for stage, total in (("scan", None), ("index", 3), ("embed", 12)):
            await notify(
                protocol_results.PROGRESS,
                protocol_results.Progress(job="j1", repo=job["repo"], stage=stage, done=0, total=total),
            )
            await notify(
                protocol_results.PROGRESS,
                protocol_results.Progress(job="j1", repo=job["repo"], stage=stage, done=3, total=total),
            )
            if params.repo == "endless":
                self.following.set()
                try:
                    await trio.sleep_forever()
                finally:
                    self.left.set()
        return {"jobs": [{**job, "state": "completed"}]}

    async def cancel(self, params, notify):
        self.calls.append(("cancel", params))
        running, queued = ({**job, "repo": params.repo or "alpha"} for job in JOBS["jobs"][1::-1])
        if params.repo == "alpha":
            return {"cancelled": [running, queued]}
        return {"cancelled": [running] if params.job == "j1" or params.repo == "endless" else []}

    async def wait(self, params, notify):
        if params.repo == "slow":
            return {"done": False, "pending": JOBS["jobs"][:2]}
        return {"done": True}

    def handlers(self) -> dict:
        return {name: getattr(self, name) for name in protocol_params.PARAMS if hasattr(self, name)}


@pytest.fixture
async def daemon(nursery, tmp_path, monkeypatch):
    monkeypatch.delenv("CODEWEIR_SOCKET", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-config"))
    double = Daemon()
    double.path = tmp_path / "codeweir.sock"
    await nursery.start(serve_unix, double.path, double.handlers(), ServerConfig())
    return double


async def codeweir(daemon: Daemon, *argv: str) -> int:
    return await trio.to_thread.run_sync(cli.main, [*argv, "--socket", str(daemon.path)])


async def test_status_prints_a_readable_summary(daemon, capsys):
    assert await codeweir(daemon, "status") == 0
    out = capsys.readouterr().out
    assert "codeweir 0.1.0, pid 4242" in out and "all-MiniLM-L6-v2-int8 on CPUExecutionProvider" in out
    assert "go-std" in out and "8,176/8,176" in out


async def test_json_prints_the_exact_result_object(daemon, capsys):
    assert await codeweir(daemon, "repos", "--json") == 0
    assert json.loads(capsys.readouterr().out) == await daemon.repos(None, None)


async def test_options_may_come_before_the_command(daemon, capsys):
    assert await trio.to_thread.run_sync(cli.main, ["--json", "--socket", str(daemon.path), "jobs"]) == 0
    assert json.loads(capsys.readouterr().out) == JOBS


async def test_jobs_print_a_table(daemon, capsys):
    assert await codeweir(daemon, "jobs") == 0
    out = capsys.readouterr().out
    assert "j11" in out and "running" in out


async def test_reload_says_in_a_sentence_each_what_the_new_config_changed(daemon, capsys):
    assert await codeweir(daemon, "reload") == 0
    assert capsys.readouterr().out.splitlines() == [
        "config reloaded",
        "added gamma, delta: watched and syncing now",
        "removed beta: no longer watched, and gone from the index",
        "limits: changed in the config, applied when the daemon restarts",
    ]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["reload"], RELOADED),
        (["cancel", "alpha"], {"cancelled": [{**JOBS["jobs"][1], "repo": "alpha"}, {**JOBS["jobs"][0], "repo": "alpha"}]}),
        (["wait", "slow"], {"done": False, "pending": JOBS["jobs"][:2]}),
        (["repos"], {"repos": [{"name": "alpha", "path": "/src/alpha"}, {"name": "beta", "path": "/src/beta"}]}),
    ],
)
async def test_json_output_of_reload_cancel_wait_and_repos_is_the_daemons_answer(daemon, capsys, argv, expected):
    await codeweir(daemon, *argv, "--json")
    assert json.loads(capsys.readouterr().out) == expected


async def test_repos_prints_a_row_per_repository_with_its_path(daemon, capsys):
    assert await codeweir(daemon, "repos") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["repo", "path", "ref", "files", "state"]
    assert lines[2].split() == ["alpha", "/src/alpha", "worktree", "all", "ok"]


async def test_search_prints_location_symbol_score_and_snippet(daemon, capsys):
    assert await codeweir(daemon, "search", "parse duration", "--repo", "alpha", "-n", "5", "--path", "*.go") == 0
    out = capsys.readouterr().out
    assert "alpha/pkg/time.go:3-9  ParseDuration (function)  0.812" in out
    assert "    func ParseDuration(s string) (Duration, error) {" in out
    assert "return x && y" in out  # the raw source, as the daemon sends it
    assert "beta/[id].tsx:1:7" in out  # regex hits show line and column; brackets are not markup
    assert "2 results in 3.5 ms (hybrid)" in out
    assert "note: semantic: 40% embedded" in out
    ((method, params),) = daemon.calls
    assert params == protocol_params.SearchParams(query="parse duration", repo="alpha", limit=5, path="*.go")


async def test_search_ref_asks_for_those_refs_and_each_hit_shows_the_refs_holding_it(daemon, capsys):
    daemon.hits = (attrs.evolve(HITS[0], refs=("release/5.1", "v5.1.3")), HITS[1])
    assert await codeweir(daemon, "search", "parse duration", "--ref", "release/5.1", "--ref", "v5.1.3") == 0
    out = capsys.readouterr().out
    assert "alpha/pkg/time.go:3-9 @release/5.1,v5.1.3  ParseDuration (function)  0.812" in out
    assert "beta/[id].tsx:1:7  0.500" in out  # a hit of the worktree alone names no ref
    ((method, params),) = daemon.calls
    assert params == protocol_params.SearchParams(query="parse duration", ref=("release/5.1", "v5.1.3"))


async def test_commit_hits_show_short_sha_date_author_summary_and_paths(daemon, capsys):
    daemon.hits = COMMIT_HITS
    assert await codeweir(daemon, "search", "fix race", "-m", "commits") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:4] == [
        "alpha  4b27d4a5fd  2024-03-02  Alice Liddell  5.441",
        "    net/http: fix race in the connection pool",
        "    src/net/http/transport.go, src/net/http/pool.go, src/net/http/pool_test.go",
        "",
    ]
    assert lines[4] == "1 result in 3.5 ms (commits)"


LONG_LINE = "    response = await client.fetch(url, headers=default_headers, timeout=ParseDuration(settings.timeout))  # retried"


async def test_snippet_lines_are_cut_to_the_terminal_at_token_boundaries_around_the_match(daemon, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "50")
    first = "def handler(request):\n"
    start = len(first) + LONG_LINE.index("ParseDuration")
    daemon.hits = (attrs.evolve(HITS[0], snippet=first + LONG_LINE, matches=((start, start + len("ParseDuration")),)),)
    assert await codeweir(daemon, "search", "ParseDuration") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "    def handler(request):"
    shown = lines[2]
    assert len(shown) <= 50 and shown.startswith(f"    {ELLIPSIS}") and shown.endswith(ELLIPSIS) and "ParseDuration" in shown
    middle = shown[5:-1]
    at = LONG_LINE.index(middle)  # a piece of the line as it is
    end = at + len(middle)
    assert not (LONG_LINE[at - 1].isalnum() and middle[0].isalnum())  # no identifier cut at either end
    assert not (middle[-1].isalnum() and LONG_LINE[end].isalnum())


async def test_search_json_prints_one_hit_per_line(daemon, capsys):
    assert await codeweir(daemon, "search", "parse", "--json", "--mode", "lexical") == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert [json.loads(line) for line in lines] == [protocol.converter.unstructure(hit) for hit in HITS]
    assert "semantic: 40% embedded" in captured.err


async def test_a_daemon_error_exits_1_with_its_message(daemon, capsys):
    assert await codeweir(daemon, "search", "unbalanced(") == 1
    assert capsys.readouterr().err == "codeweir: invalid query: unbalanced parenthesis at column 10\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["search", "x", "-n", "0"], "limit: must be between 1 and 1000, got 0"),
        (["search", "x", "--mode", "fuzzy"], "invalid choice: 'fuzzy'"),
        (["sync"], "give a repository name or --all"),
        (["sync", "alpha", "--all"], "not both"),
        (["wait", "--timeout", "-5"], "timeout: must be at least 0"),
        (["search"], "the following arguments are required: QUERY"),
    ],
)
async def test_usage_errors_exit_2_and_say_what_is_wrong(daemon, capsys, argv, message):
    assert await codeweir(daemon, *argv) == 2
    assert message in capsys.readouterr().err
    assert daemon.calls == []


def test_no_command_is_a_usage_error(capsys):
    assert cli.main([]) == 2
    assert "COMMAND" in capsys.readouterr().err


def test_an_unreachable_daemon_exits_3_and_says_how_to_start_it(tmp_path, capsys):
    assert cli.main(["status", "--socket", str(tmp_path / "absent.sock")]) == 3
    err = capsys.readouterr().err
    assert err.startswith("codeweir: the codeweir daemon is not running") and HOW_TO_START in err
    assert err.count("\n") == 1


def test_the_socket_comes_from_the_environment(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CODEWEIR_SOCKET", str(tmp_path / "from-env.sock"))
    assert cli.main(["status"]) == 3
    assert "from-env.sock" in capsys.readouterr().err


async def test_the_socket_comes_from_the_config_file(daemon, tmp_path, capsys):
    config = tmp_path / "codeweir.toml"
    config.write_text(f'socket = "{daemon.path}"\n')
    assert await trio.to_thread.run_sync(cli.main, ["status", "--config", str(config)]) == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [(None, "config file not found"), ("socket = [", "invalid TOML"), ("sockett = 'x'", "sockett")],
)
def test_a_bad_config_exits_2_with_its_message(tmp_path, capsys, monkeypatch, text, message):
    monkeypatch.delenv("CODEWEIR_SOCKET", raising=False)
    config = tmp_path / "codeweir.toml"
    if text is not None:
        config.write_text(text)
    assert cli.main(["status", "--config", str(config)]) == 2
    assert message in capsys.readouterr().err


async def test_sync_without_wait_prints_the_queued_job(daemon, capsys):
    assert await codeweir(daemon, "sync", "alpha", "--full") == 0
    assert "queued" in capsys.readouterr().out
    assert daemon.calls == [("sync", protocol_params.SyncParams(repo="alpha", full=True))]


async def test_sync_all_quiet_is_silent_on_success(daemon, capsys):
    assert await codeweir(daemon, "sync", "--all", "--quiet") == 0
    assert capsys.readouterr() == ("", "")


async def test_quiet_failure_is_one_line_on_stderr(tmp_path, capsys):
    assert cli.main(["sync", "--all", "--quiet", "--socket", str(tmp_path / "absent.sock")]) == 3
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1


async def test_sync_wait_json_prints_one_object_per_event(daemon, capsys):
    assert await codeweir(daemon, "sync", "alpha", "--wait", "--json") == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["type"] for e in events] == ["progress"] * 6 + ["result"]
    assert [(e["data"]["stage"], e["data"]["done"]) for e in events[:6]] == [
        ("scan", 0),
        ("scan", 3),
        ("index", 0),
        ("index", 3),
        ("embed", 0),
        ("embed", 3),
    ]
    assert events[-1]["data"] == {"jobs": [{"id": "j1", "repo": "alpha", "state": "completed"}]}


async def test_sync_wait_draws_a_bar_per_stage(daemon, capsys):
    assert await codeweir(daemon, "sync", "alpha", "--wait") == 0
    out = capsys.readouterr().out
    assert "alpha indexing files" in out and "3/3" in out and "alpha embedding chunks" in out and "3/12" in out
    assert "completed" in out


async def test_a_failed_sync_exits_1_with_the_reason(daemon, capsys):
    assert await codeweir(daemon, "sync", "broken", "--wait") == 1
    assert "codeweir: sync of broken failed: path /src/broken does not exist" in capsys.readouterr().err


async def test_cancel_says_which_syncs_it_cancelled_and_what_becomes_of_them(daemon, capsys, monkeypatch):
    monkeypatch.setattr(cli.time, "time", lambda: NOW)
    assert await codeweir(daemon, "cancel", "alpha") == 0
    assert capsys.readouterr().out.splitlines() == [
        "cancelled the running sync job j11 (alpha) after 3m 10s: it stops at its next step; what it wrote stays",
        "cancelled the queued sync job j12 (alpha): it will not run",
    ]


async def test_cancel_tells_a_repository_from_a_job(daemon, capsys):
    assert await codeweir(daemon, "cancel", "alpha") == 0
    assert await codeweir(daemon, "cancel", "j1") == 0
    assert await codeweir(daemon, "cancel", "j404") == 0
    assert "nothing queued or running for j404" in capsys.readouterr().out
    assert [params for method, params in daemon.calls] == [
        protocol_params.CancelParams(repo="alpha"),
        protocol_params.CancelParams(job="j1"),
        protocol_params.CancelParams(job="j404"),
    ]


async def test_wait_exits_0_when_indexed_and_1_on_timeout(daemon, capsys):
    assert await codeweir(daemon, "wait", "alpha", "--timeout", "5") == 0
    assert await codeweir(daemon, "wait", "slow", "--timeout", "5") == 1
    assert "timed out after 5 s: slow is not fully indexed yet" in capsys.readouterr().err


async def test_wait_says_the_index_is_ready_or_which_jobs_it_still_waits_for(daemon, capsys, monkeypatch):
    monkeypatch.setattr(cli.time, "time", lambda: NOW)
    assert await codeweir(daemon, "wait") == 0
    assert capsys.readouterr().out == "every repository is fully indexed\n"
    assert await codeweir(daemon, "wait", "slow", "--timeout", "5") == 1
    assert capsys.readouterr().out.splitlines() == [
        "slow is not fully indexed yet",
        "  job j12 (a-repository-with-a-rather-long-name) queued for 5.0s",
        "  job j11 (go-std) running for 3m 10s",
    ]


async def test_hooks_install_finds_the_repository_in_the_running_daemons_config(daemon, capsys, tmp_path):
    # The daemon runs with a config this user's CLI does not have (XDG_CONFIG_HOME holds none).
    repo = make_repo(tmp_path / "alpha", {"a.py": "x = 1\n"})
    daemon.paths["alpha"] = str(repo.root)
    assert await codeweir(daemon, "hooks", "install", "alpha") == 0
    hooks = repo.root / ".git" / "hooks"
    assert capsys.readouterr().out.splitlines() == [
        f"installed git hooks for alpha in {hooks}: post-commit, post-merge, post-checkout, post-rewrite",
        f"after each commit, merge, checkout and rebase they ask the daemon at {daemon.path} to sync it",
    ]
    assert str(daemon.path) in (hooks / "post-commit").read_text()
    assert await codeweir(daemon, "hooks", "install", "alpha", "--json") == 0
    assert json.loads(capsys.readouterr().out) == {"repo": "alpha", "installed": [str(hooks / name) for name in HOOK_NAMES]}


async def test_hooks_install_of_a_repository_the_daemon_lacks_names_the_ones_it_has(daemon, capsys):
    assert await codeweir(daemon, "hooks", "install", "gamma") == 2
    assert capsys.readouterr().err == (
        "codeweir: no repository named 'gamma' in the running daemon's config (configured: alpha, beta)\n"
    )


def test_hooks_install_with_no_daemon_answering_reads_the_config_file(tmp_path, capsys):
    repo = make_repo(tmp_path / "proj", {"a.py": "x = 1\n"})
    config = tmp_path / "config.toml"
    socket = tmp_path / "absent.sock"
    config.write_text(f'socket = "{socket}"\n[[repository]]\nname = "proj"\npath = "{repo.root}"\n')
    assert cli.main(["hooks", "install", "proj", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert f"installed git hooks for proj in {repo.root / '.git' / 'hooks'}" in out
    assert f"note: no daemon answers at {socket}: the repository is from {config}" in " ".join(out.split())
    assert str(socket) in (repo.root / ".git" / "hooks" / "post-commit").read_text()


async def interrupt_a_followed_sync(daemon: Daemon, tmp_path, *extra: str) -> tuple[int, str]:
    stderr = tmp_path / "stderr"
    with stderr.open("wb") as err:
        argv = [
            sys.executable,
            "-m",
            "codeweir.cli.main",
            "sync",
            "endless",
            "--wait",
            "--socket",
            str(daemon.path),
        ]
        process = await trio.lowlevel.open_process([*argv, *extra], stdout=subprocess.DEVNULL, stderr=err)
        await daemon.following.wait()
        process.send_signal(signal.SIGINT)
        code = await process.wait()
    await daemon.left.wait()  # the daemon noticed the client leave
    return code, stderr.read_text()


async def test_ctrl_c_detaches_from_a_followed_sync(daemon, tmp_path):
    code, err = await interrupt_a_followed_sync(daemon, tmp_path)
    assert code == 130 and "detached: the sync goes on in the daemon" in err
    assert [method for method, _ in daemon.calls] == ["sync"]


async def test_ctrl_c_with_cancel_on_interrupt_cancels_the_job(daemon, tmp_path):
    code, err = await interrupt_a_followed_sync(daemon, tmp_path, "--cancel-on-interrupt")
    assert code == 130 and "cancelled 1 job(s)" in err
    assert daemon.calls[-1] == ("cancel", protocol_params.CancelParams(repo="endless"))


def test_model_build_checks_the_configured_model_and_says_what_it_runs_on(tmp_path, capsys, default_model_dir):
    config = tmp_path / "config.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\n[model]\npath = "{default_model_dir}"\n')
    assert cli.main(["model", "build", "--config", str(config), "--json"]) == 0
    built = json.loads(capsys.readouterr().out)
    assert built["dim"] == 384 and built["provider"] == "CPUExecutionProvider"
    assert built["directory"] == str(default_model_dir)


def test_model_build_with_a_broken_model_dir_exits_1_naming_the_problem(tmp_path, capsys):
    (tmp_path / "m").mkdir()
    config = tmp_path / "config.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\n[model]\npath = "{tmp_path / "m"}"\n')
    assert cli.main(["model", "build", "--config", str(config)]) == 1
    assert "model.onnx" in capsys.readouterr().err


def test_importing_the_cli_loads_neither_rich_nor_the_client_nor_the_protocol():
    """Parse workers import the daemon's __main__ module, codeweir.cli.main: its import stays cheap."""
    heavy = [
        "rich",
        "cattrs",
        "codeweir.cli.render",
        "codeweir.cli.render_hits",
        "codeweir.cli.progress_bars",
        "codeweir.client",
        "codeweir.protocol",
        "codeweir.protocol_params",
        "codeweir.protocol_results",
        "codeweir.config",
    ]
    code = f"import sys, codeweir.cli.main; print([name for name in {heavy!r} if name in sys.modules])"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


@pytest.fixture
async def queued_behind(nursery, tmp_path):
    """The daemon's real sync handler and job runner, with repository a's sync running (until its
    gate opens) and one event set once a `queued` progress event has gone out to a client."""
    config = parse_config(
        {"state_dir": str(tmp_path / "state"), "repositories": [{"name": "a", "path": "a"}, {"name": "b", "path": "b"}]},
        base_dir=tmp_path,
    )
    syncs = Syncs()
    syncs.progress["b"] = [{"stage": "scan", "done": 2, "total": None}, {"stage": "index", "done": 2, "total": 2}]
    queued_sent = trio.Event()
    async with running(syncs) as runner:
        send, _ = trio.open_memory_channel(0)
        stages = handlers.Stages(send, send, trio.CapacityLimiter(1), trio.CapacityLimiter(1), None)
        daemon = handlers.Daemon(config, None, None, stages, runner, stop=lambda: None, embedding=None)

        async def sync(params, notify):
            async def noting(method, event):
                await notify(method, event)
                if event["stage"] == "queued":
                    queued_sent.set()

            return await daemon.sync(params, noting)

        path = tmp_path / "codeweir.sock"
        await nursery.start(serve_unix, path, {**daemon.handlers(), "sync": sync}, ServerConfig())
        runner.submit(SyncRequest("a"))

        async def follow(*argv: str) -> int:
            return await trio.to_thread.run_sync(cli.main, ["sync", "b", "--wait", *argv, "--socket", str(path)])

        async def release() -> None:
            await queued_sent.wait()
            syncs.gate("a").set()
            syncs.gate("b").set()

        yield follow, release


async def test_sync_wait_json_on_a_queued_job_prints_what_it_waits_behind_then_its_stages(queued_behind, capsys, nursery):
    follow, release = queued_behind
    nursery.start_soon(release)
    assert await follow("--json") == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0] == {
        "type": "progress",
        "data": {"job": "j2", "repo": "b", "stage": "queued", "behind": [{"job": "j1", "repo": "a", "state": "running"}]},
    }
    assert [line["data"]["stage"] for line in lines[1:-1]] == ["scan", "index", "end"]
    assert lines[-1]["data"]["jobs"][0]["state"] == "completed"


async def test_sync_wait_on_a_queued_job_ends_with_its_stage_bars_not_its_queued_line(queued_behind, capsys, nursery):
    follow, release = queued_behind
    nursery.start_soon(release)
    assert await follow() == 0
    out = capsys.readouterr().out
    assert "b scanning" in out and "b indexing files" in out and "b: job j2 completed" in out
    assert "queued" not in out
