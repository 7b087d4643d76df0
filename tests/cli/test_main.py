import io
import json
import signal
import subprocess
import sys

import pytest
import trio
from rich.console import Console

from codeweir import protocol
from codeweir.cli import main as cli
from codeweir.cli.render import SyncProgress, highlighted, print_jobs, print_status
from codeweir.client import HOW_TO_START
from codeweir.config import ServerConfig, parse_config
from codeweir.errors import RequestError
from codeweir.service import handlers
from codeweir.service.scheduler import SyncRequest
from codeweir.service.server import serve_unix
from tests.service.test_jobs import Syncs, running

HITS = (
    protocol.SearchHit(
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
    protocol.SearchHit(
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


class Daemon:
    """Handlers standing in for the daemon, recording what the CLI asked for."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.following = trio.Event()
        self.left = trio.Event()

    async def status(self, params, notify):
        return STATUS

    async def repos(self, params, notify):
        return {"repos": [{"name": "alpha", "path": "/src/alpha"}, {"name": "beta", "path": "/src/beta"}]}

    async def jobs(self, params, notify):
        return JOBS

    async def reload(self, params, notify):
        return {"repos": 2}

    async def search(self, params, notify):
        self.calls.append(("search", params))
        if params.query == "unbalanced(":
            raise RequestError("invalid query: unbalanced parenthesis at column 10")
        return protocol.SearchResult(results=HITS, took_ms=3.5, mode=params.mode, notes=("semantic: 40% embedded",))

    async def sync(self, params, notify):
        self.calls.append(("sync", params))
        job = {"id": "j1", "repo": params.repo or "alpha"}
        if not params.wait:
            return {"jobs": [{**job, "state": "queued"}]}
        if params.repo == "broken":
            return {"jobs": [{**job, "state": "failed", "error": "path /src/broken does not exist"}]}
        for stage, total in (("scan", None), ("index", 3), ("embed", 12)):
            await notify(
                protocol.PROGRESS,
                protocol.Progress(job="j1", repo=job["repo"], stage=stage, done=0, total=total),
            )
            await notify(
                protocol.PROGRESS,
                protocol.Progress(job="j1", repo=job["repo"], stage=stage, done=3, total=total),
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
        return {"cancelled": ["j1"] if params.job == "j1" or params.repo in ("alpha", "endless") else []}

    async def wait(self, params, notify):
        return {"done": params.repo != "slow"}

    def handlers(self) -> dict:
        return {name: getattr(self, name) for name in protocol.PARAMS}


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


async def test_jobs_and_reload_print_tables(daemon, capsys):
    assert await codeweir(daemon, "jobs") == 0
    assert await codeweir(daemon, "reload") == 0
    out = capsys.readouterr().out
    assert "j11" in out and "running" in out and "repos" in out


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
    assert params == protocol.SearchParams(query="parse duration", repo="alpha", limit=5, path="*.go")


def test_matched_terms_are_bold_at_the_offsets_the_daemon_sends():
    text = highlighted("a <b>b</b> [c]", [[2, 5], [11, 12], [40, 50], "junk"])
    assert text.plain == "a <b>b</b> [c]"  # raw text: nothing in it is markup
    assert [(span.start, span.end) for span in text.spans] == [(2, 5), (11, 12)] and "bold" in str(text.spans[0].style)


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
    assert daemon.calls == [("sync", protocol.SyncParams(repo="alpha", full=True))]


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


async def test_cancel_tells_a_repository_from_a_job(daemon, capsys):
    assert await codeweir(daemon, "cancel", "alpha") == 0
    assert await codeweir(daemon, "cancel", "j1") == 0
    assert await codeweir(daemon, "cancel", "j404") == 0
    assert "nothing queued or running for j404" in capsys.readouterr().out
    assert [params for method, params in daemon.calls] == [
        protocol.CancelParams(repo="alpha"),
        protocol.CancelParams(job="j1"),
        protocol.CancelParams(job="j404"),
    ]


async def test_wait_exits_0_when_indexed_and_1_on_timeout(daemon, capsys):
    assert await codeweir(daemon, "wait", "alpha", "--timeout", "5") == 0
    assert await codeweir(daemon, "wait", "slow", "--timeout", "5") == 1
    assert "timed out after 5 s: slow is not fully indexed yet" in capsys.readouterr().err


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
    assert daemon.calls[-1] == ("cancel", protocol.CancelParams(repo="endless"))


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
    heavy = ["rich", "cattrs", "codeweir.cli.render", "codeweir.client", "codeweir.protocol", "codeweir.config"]
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
        stages = handlers.Stages(send, send, trio.CapacityLimiter(1), trio.CapacityLimiter(1))
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


def rendered(bars: SyncProgress, width: int) -> list[str]:
    console = Console(file=io.StringIO(), width=width)
    console.print(bars.progress.get_renderable())
    return console.file.getvalue().splitlines()


def test_a_queued_job_is_a_line_naming_what_it_waits_behind_until_its_first_stage_replaces_it():
    bars = SyncProgress(Console(file=io.StringIO(), width=80))
    bars.update({"job": "j3", "repo": "go-std", "stage": "index", "done": 1234, "total": 8176})
    queued = {
        "job": "j4",
        "repo": "django",
        "stage": "queued",
        "behind": [{"job": "j3", "repo": "go-std", "state": "running"}, {"job": "j2", "repo": "rxjs", "state": "queued"}],
    }
    bars.update(queued)
    lines = rendered(bars, 80)
    assert lines[0] == "django queued behind j3 (repo go-std, running) and 1 more"
    assert lines[1].startswith("go-std indexing files") and "1234/8176" in lines[1]
    bars.update({**queued, "behind": [], "retry_in_s": 12.5})
    assert rendered(bars, 80)[0] == "django queued; backing off after failures, next try in 12.5 s"
    bars.update({"job": "j4", "repo": "django", "stage": "scan", "done": 0, "total": None})
    lines = rendered(bars, 80)
    assert not any("queued" in line for line in lines) and any(line.startswith("django scanning") for line in lines)
    assert all(len(line) <= 80 for line in lines)


def render(print_table, result: dict, width: int) -> list[str]:
    console = Console(file=io.StringIO(), width=width)
    print_table(console, result, NOW)
    lines = console.file.getvalue().splitlines()
    assert all(len(line) <= width for line in lines), "\n".join(lines)
    return lines


def row(lines: list[str], first: str) -> str:
    return next(line for line in lines if line.startswith(first))


def test_status_fits_80_columns_with_coverage_per_repository_and_the_details_below():
    lines = render(print_status, STATUS, 80)
    assert row(lines, "daemon").split() == ["daemon", "codeweir", "0.1.0,", "pid", "4242,", "up", "2h", "03m"]
    words = " ".join(" ".join(lines).split())  # cells wrapped onto the next lines, read on
    assert "model all-MiniLM-L6-v2-int8 on CPUExecutionProvider, filling, 28,944 vectors" in words
    assert row(lines, "queue").split() == ["queue", "1", "running,", "1", "queued"]
    assert row(lines, "repo").split() == ["repo", "files", "chunks", "embedded", "synced", "state"]
    assert row(lines, "go-std ").split() == ["go-std", "8,176/8,176", "67,312", "42%", "2m", "ago", "ok"]
    long = row(lines, "a-repository-with-a-rat")  # cut short, never wrapped
    assert "0/0" in long and "never" in long and "backing off" in long
    assert "go-std: 15 files skipped: 12 binary, 3 too_large" in words
    assert "x86asm/tables.go: the worker reading and chunking it timed out" in "".join(lines)
    assert "(3 failed syncs in a row)" in words


def test_status_at_120_columns_also_shows_head_and_path():
    lines = render(print_status, STATUS, 120)
    assert row(lines, "repo").split() == ["repo", "files", "chunks", "embedded", "synced", "head", "path", "state"]
    assert "4b27d4a5fd" in row(lines, "go-std ") and "/srv/git/go.git" in row(lines, "go-std ")


def test_jobs_fit_80_columns_with_relative_times_and_durations():
    lines = render(print_jobs, JOBS, 80)
    assert row(lines, "job").split() == ["job", "repo", "state", "since", "took", "result"]
    assert row(lines, "j12").split()[2:] == ["queued", "5s", "ago"]
    assert row(lines, "j11").split()[2:] == ["running", "3m", "ago", "3m", "10s"]
    assert row(lines, "j10").split()[1:] == ["go-std", "completed", "1h", "ago", "3.5s", "8,176", "files,", "1", "indexed"]
    assert row(lines, "j9").split()[2:6] == ["failed", "1d", "ago", "1.0s"]
    assert " ".join(" ".join(lines).split()).endswith("no such directory")  # the error, wrapped in its column


def test_jobs_at_120_columns_also_show_what_each_covers():
    lines = render(print_jobs, JOBS, 120)
    assert row(lines, "job").split() == ["job", "repo", "state", "covers", "since", "took", "result"]
    assert "full resync" in row(lines, "j11") and "1 path, interactive" in row(lines, "j10")
