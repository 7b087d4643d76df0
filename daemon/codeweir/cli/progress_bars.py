"""How `codeweir sync --wait` shows a sync as it runs: a line per queued job, then a rich
progress bar per stage of each job once it starts."""

from __future__ import annotations

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
from rich.text import Text

STAGE_LABELS = {
    "scan": "scanning",
    "drafts": "reading files (searchable first)",
    "index": "indexing files",
    "commits": "indexing commits",
    "embed": "embedding chunks",
}


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

    def get_renderables(self) -> Iterator[Any]:
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
