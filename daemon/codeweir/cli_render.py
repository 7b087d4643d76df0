"""How the CLI shows results to people: rich tables, progress bars and highlighted hits."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

STAGE_LABELS = {
    "scan": "scanning",
    "index": "indexing files",
    "commits": "indexing commits",
    "embed": "embedding chunks",
}
_MARK = re.compile(r"<b>(.*?)</b>", re.DOTALL)


def highlighted(snippet: str) -> Text:
    """The daemon marks matched terms <b>…</b> in an HTML-escaped snippet: show them bold."""
    text = Text()
    position = 0
    for match in _MARK.finditer(snippet):
        text.append(html.unescape(snippet[position : match.start()]))
        text.append(html.unescape(match.group(1)), style="bold red")
        position = match.end()
    text.append(html.unescape(snippet[position:]))
    return text


def print_hits(console: Console, hits: list[dict[str, Any]]) -> None:
    for hit in hits:
        header = Text()
        header.append(f"{hit.get('repo', '')}/", style="dim")
        header.append(str(hit.get("path", "")), style="magenta")
        line = hit.get("line")
        where = (
            f":{line}:{hit.get('column', 1)}"
            if line is not None
            else f":{hit.get('start_line')}-{hit.get('end_line')}"
        )
        header.append(where, style="green")
        if hit.get("symbol"):
            header.append(f"  {hit['symbol']}", style="bold yellow")
            if hit.get("kind"):
                header.append(f" ({hit['kind']})", style="yellow")
        score = hit.get("score")
        if isinstance(score, (int, float)):
            header.append(f"  {score:.3f}", style="dim")
        console.print(header, soft_wrap=True)
        for piece in highlighted(str(hit.get("snippet", "")).rstrip("\n")).split("\n"):
            console.print(Text("    ") + piece, soft_wrap=True)
        console.print()


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


class RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:,.0f}/s" if task.speed else "", style="cyan")


class BarsAndWaiting(Progress):
    """Rich's progress bars, under a line per queued job: a line spans the width, where a bar's
    description would squeeze every bar beside it."""

    def __init__(self, *columns: ProgressColumn, console: Console) -> None:
        # Replaced, never changed in place: the refresh thread reads it.
        self.waiting: dict[str, str] = {}
        super().__init__(*columns, console=console)

    def get_renderables(self) -> Iterator[Text | Table]:
        for line in self.waiting.values():
            yield Text(line, style="yellow")
        yield from super().get_renderables()


def waiting_line(event: dict[str, Any]) -> str:
    """A queued job in one line: `b queued behind j3 (repo a, running) and 1 more`."""
    line = f"{event.get('repo', '')} queued"
    behind = event.get("behind") or []
    if behind:
        first = behind[0]
        line += f" behind {first.get('job')} (repo {first.get('repo')}, {first.get('state')})"
        if len(behind) > 1:
            line += f" and {len(behind) - 1} more"
    if event.get("retry_in_s") is not None:
        line += f"; backing off after failures, next try in {event['retry_in_s']:g} s"
    return line


class SyncProgress:
    """A line per queued job, then a progress bar per (job, stage) once it starts, fed by the
    daemon's `progress` notifications."""

    def __init__(self, console: Console) -> None:
        self.progress = BarsAndWaiting(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            RateColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        self.tasks: dict[tuple[str, str], TaskID] = {}

    def __enter__(self) -> SyncProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.progress.stop()

    def update(self, event: dict[str, Any]) -> None:
        job, stage = str(event.get("job", "")), str(event.get("stage", ""))
        waiting = {key: line for key, line in self.progress.waiting.items() if key != job}
        if stage == "queued":
            waiting[job] = waiting_line(event)
        self.progress.waiting = waiting  # a job that started (or ended) waits no more
        if stage in ("queued", "end"):
            return  # not stages: no bar (the job's summary line says how it ended)
        key = (job, stage)
        if key not in self.tasks:
            label = STAGE_LABELS.get(key[1], key[1])
            self.tasks[key] = self.progress.add_task(f"{event.get('repo', '')} {label}", total=None)
        self.progress.update(self.tasks[key], completed=event.get("done") or 0, total=event.get("total"))


def job_summary(job: dict[str, Any]) -> str:
    """A job in one line for people: `proj: job j3 completed in 2.4 s: 260 files, 12 indexed, ...`."""
    line = f"{job.get('repo', '?')}: job {job.get('id', '?')} {job.get('state', '?')}"
    started, ended = job.get("started"), job.get("ended")
    if isinstance(started, (int, float)) and isinstance(ended, (int, float)):
        line += f" in {ended - started:.1f} s"
    counts = job.get("counts") or {}
    parts = [f"{counts[key]:,} {key}" for key in ("files", "indexed", "deleted", "unchanged", "commits") if key in counts]
    # status_* counts say what became of the files read; all but "indexed" were skipped.
    skipped = [f"{n:,} {key.removeprefix('status_')}" for key, n in counts.items()
               if key.startswith("status_") and key != "status_indexed" and n]
    if skipped:
        parts.append(f"skipped: {', '.join(skipped)}")
    return f"{line}: {', '.join(parts)}" if parts else line
