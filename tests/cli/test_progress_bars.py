"""How a followed sync shows: a line per queued job until its first stage's bar replaces it."""

import io

from rich.console import Console

from codeweir.cli.progress_bars import SyncProgress


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
