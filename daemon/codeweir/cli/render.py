"""How the CLI shows results to people: a console that escapes what it prints, any result as
tables, the status, jobs and repos tables, and the other commands' answers in sentences (search
hits in cli/render_hits.py, a sync's progress bars in cli/progress_bars.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from rich import box
from rich.console import Console
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from codeweir.cli.terminal import printable


class TerminalConsole(Console):
    """A rich Console that shows the control characters of whatever it prints (paths, snippets,
    symbols, messages from the daemon) as escapes, rather than sending them to the terminal (see
    cli/terminal.py); its own styles and cursor moves still go out. Text is escaped as it is laid
    out, so a table cell keeps its width."""

    def render(self, renderable: Any, options: Any = None) -> Iterator[Segment]:
        for segment in super().render(renderable, options):
            if segment.control is None and segment.text:
                shown = printable(segment.text)
                if shown is not segment.text:
                    segment = Segment(shown, segment.style)
            yield segment


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def print_table(console: Console, rows: list[dict[str, Any]], title: str | None = None) -> None:
    columns: list[str] = []
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    table = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        table.add_column(column.replace("_", " "))
    for row in rows:
        table.add_row(*(_cell(row.get(column)) for column in columns))
    console.print(table)


def print_value(console: Console, value: Any, title: str | None = None) -> None:
    """Any result object, readably: scalars as key/value lines, lists of objects as tables."""
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        print_table(console, value, title)
        return
    if not isinstance(value, dict):
        console.print(f"{title}: {_cell(value)}" if title else _cell(value), soft_wrap=True, highlight=False)
        return
    scalars = {k: v for k, v in value.items() if not isinstance(v, (dict, list)) or not v}
    if title:
        console.print(Text(title, style="bold"))
    if scalars:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="cyan")
        grid.add_column()
        for key, item in scalars.items():
            grid.add_row(key.replace("_", " "), _cell(item))
        console.print(grid)
    for key, item in value.items():
        if key not in scalars:
            print_value(console, item, key.replace("_", " "))


def counts_text(counts: dict[str, int]) -> str:
    """A job's counts but its zeros: `260 files, 12 indexed, 248 unchanged, skipped: 3 binary`."""
    parts = [f"{counts[key]:,} {key}" for key in ("files", "indexed", "deleted", "unchanged", "commits") if counts.get(key)]
    # status_* counts say what became of the files read; all but "indexed" were skipped.
    skipped = [
        f"{n:,} {key.removeprefix('status_')}"
        for key, n in counts.items()
        if key.startswith("status_") and key != "status_indexed" and n
    ]
    if skipped:
        parts.append(f"skipped: {', '.join(skipped)}")
    return ", ".join(parts)


def job_summary(job: dict[str, Any]) -> str:
    """A job in one line for people: `proj: job j3 completed in 2.4 s: 260 files, 12 indexed, ...`."""
    line = f"{job.get('repo', '?')}: job {job.get('id', '?')} {job.get('state', '?')}"
    started, ended = job.get("started"), job.get("ended")
    if isinstance(started, (int, float)) and isinstance(ended, (int, float)):
        line += f" in {ended - started:.1f} s"
    counts = counts_text(job.get("counts") or {})
    return f"{line}: {counts}" if counts else line


# -- the jobs and status tables: made to fit 80 columns, with more beside them from WIDE on -------

WIDE = 100
STATE_STYLES = {"completed": "green", "failed": "red", "cancelled": "yellow", "running": "cyan", "queued": "dim"}


def _number(value: Any) -> float | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def duration(seconds: float) -> str:
    """A span in at most two units: `0.4s`, `42s`, `2m 05s`, `3h 10m`, `2d 04h`."""
    if seconds < 10:
        return f"{max(seconds, 0.0):.1f}s"
    whole = int(seconds)
    for unit, size, smaller, smaller_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60), ("m", 60, "s", 1)):
        if whole >= size:
            return f"{whole // size}{unit} {whole % size // smaller_size:02d}{smaller}"
    return f"{whole}s"


def ago(then: Any, now: float) -> str:
    """A past moment in one unit, `5s ago`, `2m ago`, `3h ago`, `4d ago`; '' when unknown."""
    if _number(then) is None:
        return ""
    seconds = max(0.0, now - then)
    unit, size = next(((u, n) for u, n in (("d", 86400), ("h", 3600), ("m", 60)) if seconds >= n), ("s", 1))
    return f"{int(seconds // size)}{unit} ago"


def _table() -> Table:
    # Rules under the header only: borders would cost each column three characters.
    return Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True, header_style="bold")


def _job_covers(job: dict[str, Any]) -> str:
    paths = job.get("paths")
    covers = "full resync" if job.get("full") else f"{len(paths)} path{'s' * (len(paths) != 1)}" if paths else "changes"
    return f"{covers}, interactive" if job.get("priority") == "interactive" else covers


def print_jobs(console: Console, result: dict[str, Any], now: float) -> None:
    """`codeweir jobs`: queued, running and recent jobs, one row each, in the daemon's order."""
    jobs = [job for job in result.get("jobs") or [] if isinstance(job, dict)]
    if not jobs:
        console.print("no sync jobs queued, running or recent", style="dim")
        return
    wide = console.width >= WIDE
    table = _table()
    table.add_column("job", no_wrap=True)
    table.add_column("repo", no_wrap=True, overflow="ellipsis", max_width=24)
    table.add_column("state", no_wrap=True)
    if wide:
        table.add_column("covers", no_wrap=True)
    table.add_column("since", no_wrap=True)
    table.add_column("took", no_wrap=True, justify="right")
    table.add_column("result", overflow="fold")
    for job in jobs:
        state = str(job.get("state", "?"))
        started, ended = _number(job.get("started")), _number(job.get("ended"))
        since = {"queued": job.get("created"), "running": started}.get(state, ended)
        took = duration((ended if ended is not None else now) - started) if started is not None else ""
        if job.get("error"):
            outcome = Text(str(job["error"]), style="red")
        else:
            outcome = Text(counts_text(job.get("counts") or {}))
        row: list[str | Text] = [
            str(job.get("id", "?")),
            str(job.get("repo", "?")),
            Text(state, style=STATE_STYLES.get(state, "")),
        ]
        if wide:
            row.append(_job_covers(job))
        table.add_row(*row, ago(since, now), took, outcome)
    console.print(table)


def _model_line(model: dict[str, Any]) -> str:
    if model.get("state") == "disabled":
        return "disabled: lexical search only"
    line = f"{model.get('model') or '?'} on {model.get('provider') or '?'}, {model.get('state', '?')}"
    line += f", {model.get('vectors', 0):,} vectors"
    rate, eta = _number(model.get("rate_per_s")), _number(model.get("eta_s"))
    if _number(model.get("waiting")) and rate:  # embedding: how fast, and how long to go at that pace
        line += f", {model['waiting']:,} to go at {rate:g}/s" + (f", about {duration(eta)} left" if eta is not None else "")
    if model.get("serving") and model["serving"] != model.get("model"):
        line += f"; searches use {model['serving']} until {model.get('model')} covers the index"
    return f"{line}: {model['error']}" if model.get("error") else line


def _index_line(index: dict[str, Any], repos: int) -> str:
    versions = ", ".join(f"{name} {version}" for name, version in (index.get("versions") or {}).items())
    line = f"{index.get('directory', '?')} ({versions})"
    if index.get("rebuilding"):
        line += f"; rebuilding: {len(index.get('rebuilt_repos') or [])} of {repos} repositories done"
    return line


def _embedded(repo: dict[str, Any], model_on: bool) -> str:
    chunks = _number(repo.get("chunks")) or 0
    if not model_on:
        return "off"
    if not chunks:
        return "-"
    return f"{int((_number(repo.get('chunks_embedded')) or 0) * 100 // chunks)}%"  # 100% only when all are


def _repo_state(repo: dict[str, Any]) -> Text:
    backoff = repo.get("backoff")
    if isinstance(backoff, dict):
        return Text(f"backing off, retry in {duration(_number(backoff.get('retry_in_s')) or 0.0)}", style="yellow")
    if repo.get("error"):
        return Text("error", style="red")
    return Text("ok", style="green")


def _repo_notes(repo: dict[str, Any]) -> Iterator[Text]:
    """What the table has no room for: the error, files skipped and files that failed, and why."""
    name = str(repo.get("name", "?"))
    backoff: dict[str, Any] = repo["backoff"] if isinstance(repo.get("backoff"), dict) else {}
    if repo.get("error") or backoff.get("reason"):
        failures = f" ({backoff['failures']} failed syncs in a row)" if backoff.get("failures", 0) > 1 else ""
        yield Text(f"{name}: {repo.get('error') or backoff['reason']}{failures}", style="red")
    skipped = {reason: n for reason, n in (repo.get("files_skipped") or {}).items() if n}
    if skipped:
        reasons = ", ".join(f"{n:,} {reason}" for reason, n in sorted(skipped.items()))
        yield Text(f"{name}: {sum(skipped.values()):,} files skipped: {reasons}", style="yellow")
    for failed in repo.get("file_errors") or []:
        yield Text(f"{name}: {failed.get('path')}: {failed.get('error') or failed.get('status')}", style="dim")
    if unmatched := repo.get("refs_unmatched"):
        yield Text(f"{name}: refs naming no branch or tag (yet): {', '.join(map(str, unmatched))}", style="yellow")


def print_status(console: Console, status: dict[str, Any], now: float) -> None:
    """`codeweir status`: the daemon, model, index and queue, then a row per repository."""
    daemon, queue = status.get("daemon") or {}, status.get("queue") or {}
    repos = [repo for repo in status.get("repos") or [] if isinstance(repo, dict)]
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="cyan", no_wrap=True)
    grid.add_column(overflow="fold")
    uptime = _number(daemon.get("uptime_s"))
    grid.add_row(
        "daemon",
        f"codeweir {daemon.get('version', '?')}, pid {daemon.get('pid', '?')}"
        + (f", up {duration(uptime)}" if uptime is not None else ""),
    )
    grid.add_row("socket", str(daemon.get("socket", "?")))
    grid.add_row("state dir", str(daemon.get("state_dir", "?")))
    grid.add_row("model", _model_line(status.get("model") or {}))
    grid.add_row("index", _index_line(status.get("index") or {}, len(repos)))
    grid.add_row("queue", f"{queue.get('running', 0)} running, {queue.get('queued', 0)} queued")
    console.print(grid)
    if not repos:
        console.print("no repositories configured", style="dim")
        return
    wide = console.width >= WIDE
    model_on = (status.get("model") or {}).get("state") != "disabled"
    table = _table()
    table.add_column("repo", no_wrap=True, overflow="ellipsis", max_width=24)
    table.add_column("files", no_wrap=True, justify="right")
    table.add_column("chunks", no_wrap=True, justify="right")
    table.add_column("embedded", no_wrap=True, justify="right")
    table.add_column("synced", no_wrap=True)
    if wide:
        table.add_column("head", no_wrap=True)
        table.add_column("path", overflow="fold")
    table.add_column("state", overflow="fold")
    for repo in repos:
        total = repo.get("files_total") if repo.get("files_total") is not None else repo.get("files_seen", 0)
        row = [
            str(repo.get("name", "?")),
            f"{repo.get('files_indexed', 0):,}/{total:,}",
            f"{repo.get('chunks', 0):,}",
            _embedded(repo, model_on),
            ago(repo.get("synced_at"), now) or "never",
        ]
        if wide:
            row += [str(repo.get("head") or "")[:10], str(repo.get("path", ""))]
        table.add_row(*row, _repo_state(repo))
        for ref in repo.get("refs") or []:  # the refs indexed beside it, each a row below it
            chunks = ref.get("chunks")
            embedded = ref.get("chunks_embedded")
            row = [
                f"  @{ref.get('name', '?')}",
                f"{ref.get('files', 0):,}",
                "" if chunks is None else f"{chunks:,}",
                f"{embedded * 100 // max(chunks or 1, 1)}%" if model_on and embedded is not None else "",
                "",
            ]
            if wide:
                row += [str(ref.get("commit") or "")[:10], ""]
            table.add_row(*row, "")
    console.print(table)
    for repo in repos:
        for note in _repo_notes(repo):
            console.print(note, overflow="fold")


# -- short answers: cancel, wait, reload, hooks, repos ----------------------------------------------


def _job_of(job: Any) -> str:
    return f"job {job.get('id', '?')} ({job.get('repo', '?')})" if isinstance(job, dict) else f"job {job}"


def cancelled_lines(result: dict[str, Any], target: str, now: float) -> list[str]:
    """`codeweir cancel`: a sentence per job it cancelled, or why there was nothing to cancel."""
    jobs = result.get("cancelled") or []
    if not jobs:
        return [f"nothing queued or running for {target}"]
    lines = []
    for job in jobs:
        started = _number(job.get("started")) if isinstance(job, dict) else None
        if isinstance(job, dict) and job.get("state") == "running":
            since = f" after {duration(now - started)}" if started is not None else ""
            lines.append(f"cancelled the running sync {_job_of(job)}{since}: it stops at its next step; what it wrote stays")
        elif isinstance(job, dict) and job.get("state") == "queued":
            lines.append(f"cancelled the queued sync {_job_of(job)}: it will not run")
        else:
            lines.append(f"cancelled {_job_of(job)}")
    return lines


def wait_lines(result: dict[str, Any], repo: str | None, now: float, *, what: str = "indexed") -> list[str]:
    """`codeweir wait`: whether the repository (or every one) is `what` (indexed; indexed and
    embedded), why it never will be, or the jobs still pending when the wait timed out."""
    subject = repo or "every repository"
    vectors = result.get("vectors") if isinstance(result.get("vectors"), dict) else {}
    embedded = f" ({vectors.get('chunks_embedded', 0):,} of {vectors.get('chunks', 0):,} chunks embedded)" if vectors else ""
    if result.get("error"):  # the vectors waited for will not come
        return [f"{subject} is indexed, but not embedded{embedded}: {result['error']}"]
    if result.get("done"):
        return [f"{subject} is fully {what}{embedded}"]
    lines = [f"{subject} is not fully {what} yet{embedded}"]
    for job in result.get("pending") or []:
        if not isinstance(job, dict):
            continue
        state = str(job.get("state", "?"))
        since = _number(job.get("started") if state == "running" else job.get("created"))
        lines.append(f"  {_job_of(job)} {state}" + (f" for {duration(now - since)}" if since is not None else ""))
    return lines


def reload_lines(result: dict[str, Any]) -> list[str]:
    """`codeweir reload`: what the new config changed, a sentence each."""
    names = {key: ", ".join(str(name) for name in result.get(key) or []) for key in ("added", "removed", "changed")}
    lines = []
    if names["added"]:
        lines.append(f"added {names['added']}: watched and syncing now")
    if names["changed"]:
        lines.append(f"changed {names['changed']}: resyncing in full")
    if names["removed"]:
        lines.append(f"removed {names['removed']}: no longer watched, and gone from the index")
    if result.get("restart_needed"):
        changed = ", ".join(str(name) for name in result["restart_needed"])
        lines.append(f"{changed}: changed in the config, applied when the daemon restarts")
    return ["config reloaded" + (": no repository changed" if not any(names.values()) else ""), *lines]


def hooks_lines(result: dict[str, Any], hooks_dir: str, socket: str) -> list[str]:
    """`codeweir hooks install`: where the hooks went and what they do."""
    names = ", ".join(path.rsplit("/", 1)[-1] for path in result.get("installed") or [])
    return [
        f"installed git hooks for {result.get('repo', '?')} in {hooks_dir}: {names}",
        f"after each commit, merge, checkout and rebase they ask the daemon at {socket} to sync it",
    ]


def print_repos(console: Console, result: dict[str, Any], now: float) -> None:
    """`codeweir repos`: a row per configured repository, its path whole."""
    repos = [repo for repo in result.get("repos") or [] if isinstance(repo, dict)]
    if not repos:
        console.print("no repositories configured", style="dim")
        return
    table = _table()
    table.add_column("repo", no_wrap=True, overflow="ellipsis", max_width=24)
    table.add_column("path", overflow="fold")
    table.add_column("ref", no_wrap=True)
    table.add_column("files", overflow="fold")
    table.add_column("state", overflow="fold")
    for repo in repos:
        globs = [f"+{glob}" for glob in repo.get("include") or []] + [f"-{glob}" for glob in repo.get("exclude") or []]
        state = Text(str(repo["error"]), style="red") if repo.get("error") else Text("ok", style="green")
        table.add_row(
            str(repo.get("name", "?")),
            str(repo.get("path", "")),
            str(repo.get("ref") or "worktree"),
            " ".join(globs) or "all",
            state,
        )
    console.print(table)
