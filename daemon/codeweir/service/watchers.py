"""The per-repository watch tasks: one watcher for each configured repository, each in its own
cancel scope so that a reload can stop it. The watching itself is watch.py's."""

from __future__ import annotations

from collections.abc import Iterator

import trio

from codeweir.config import RepoConfig
from codeweir.service.state import DaemonState
from codeweir.service.watch import watch_repository


class Watchers:
    def __init__(self, state: DaemonState) -> None:
        self.state = state
        self._scopes: dict[str, trio.CancelScope] = {}

    def __iter__(self) -> Iterator[str]:
        """The names of the repositories being watched."""
        return iter(list(self._scopes))

    def __contains__(self, name: object) -> bool:
        return name in self._scopes

    def start_all(self) -> None:
        """Watch every configured repository (the daemon serves: state.services is set)."""
        for repo in self.state.config.repositories:
            self.start(repo)

    def start(self, repo: RepoConfig) -> None:
        if self.state.services is None:
            return  # not serving yet: start_all will start it
        scope = self._scopes[repo.name] = trio.CancelScope()
        self.state.services.start_soon(self._watch, repo, scope, name=f"watch {repo.name}")

    def stop(self, name: str) -> None:
        scope = self._scopes.pop(name, None)
        if scope is not None:
            scope.cancel()

    async def _watch(self, repo: RepoConfig, scope: trio.CancelScope) -> None:
        try:
            with scope:
                # The runner's submit as of now, not of the daemon's start.
                await watch_repository(repo, self.state.runner.submit)
        finally:
            if self._scopes.get(repo.name) is scope:
                del self._scopes[repo.name]
