"""What the daemon's parts share: the config in force, what each repository's last sync found,
and the pipeline's channels and limiters (made by run_daemon() and passed in).

The request handlers read it; syncs record their results in it; a reload replaces its config.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
import trio

from codeweir.config import Config, RepoConfig
from codeweir.service.jobs import JobRunner

if TYPE_CHECKING:
    from codeweir.index.store import Store
    from codeweir.search.index_search import SearchWorkers


@attrs.define
class RepoState:
    """What the last finished sync of a repository found."""

    total: int | None = None
    skipped: dict[str, int] = attrs.Factory(dict)
    head: str = ""
    views: dict[str, str] = attrs.Factory(dict)  # each ref `refs` names -> its commit
    unmatched: tuple[str, ...] = ()  # `refs` patterns that named no ref
    synced_at: float | None = None
    error: str | None = None


@attrs.define(eq=False)
class Stages:
    """The shared pipeline's channels and limiters, made by run_daemon()."""

    files: trio.MemorySendChannel
    writes: trio.MemorySendChannel
    git_limiter: trio.CapacityLimiter
    search_limiter: trio.CapacityLimiter
    search_workers: SearchWorkers


@attrs.define(eq=False)
class DaemonState:
    """One per daemon, shared by reference: the handlers, syncs, watchers and reload all see one config."""

    config: Config  # the config in force: a reload replaces it
    store: Store
    stages: Stages
    runner: JobRunner
    # Per configured repository; a reload adds and drops entries with the repositories.
    repo_states: dict[str, RepoState] = attrs.field()
    # Where watchers and background reloads run, once the daemon serves (None until then).
    services: trio.Nursery | None = None

    @repo_states.default
    def _one_per_repository(self) -> dict[str, RepoState]:
        return {r.name: RepoState() for r in self.config.repositories}

    def repo(self, name: str) -> RepoConfig | None:
        """The configured repository of a name, as of now (reloads change it)."""
        return self.config.repo(name)

    def configured(self) -> set[str]:
        return {r.name for r in self.config.repositories}

    def repo_state(self, name: str) -> RepoState:
        """What the last sync of `name` found; an empty state for one not synced yet."""
        return self.repo_states.get(name, RepoState())
