"""Reloading the config (the `reload` request, SIGHUP): re-read it and apply what changed to the
running daemon's repositories; and deleting the documents of repositories no longer configured.

A broken config is rejected and the old one stays in force. Added repositories are watched and
synced, changed ones resynced (by blob id, like any sync: a ref added costs only what it does
not share), removed ones stop being watched and lose their documents.
The socket, state dir, limits and model are taken when the daemon starts: changing them is
named, not applied.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import trio

from codeweir.config import Config, load_config
from codeweir.errors import Busy, CodeweirError, ConfigError, RequestError, StoreError
from codeweir.index.writes import DeleteRepo, write_one
from codeweir.service import systemd
from codeweir.service.scheduler import Job, SyncRequest
from codeweir.service.state import DaemonState, RepoState

if TYPE_CHECKING:  # the daemon's watchers, passed in: no import chain through the watching
    from codeweir.service.watchers import Watchers

log = logging.getLogger(__name__)


class Reloader:
    def __init__(
        self,
        state: DaemonState,
        watchers: Watchers,
        config_path: Path | None,
        *,
        started_in: Path | None,
        model_installed: Callable[[], None] = lambda: None,
    ) -> None:
        self.state = state
        # Told at every reload: `codeweir model install` reloads the daemon once the model is in place.
        self.model_installed = model_installed
        self.watchers = watchers
        # Re-read on reload; with no config file, the embedded default over `started_in`.
        self.config_path = config_path
        self.started_in = started_in
        self._lock = trio.Lock()

    def reload_soon(self) -> None:
        """SIGHUP: reload in the background, so that signals are still handled meanwhile."""
        if self.state.services is None:
            log.warning("SIGHUP before the daemon is ready: ignored")
            return
        self.state.services.start_soon(self._reload_logged, name="reload")

    async def _reload_logged(self) -> None:
        try:
            await self.reload()
        except CodeweirError:
            pass  # logged by reload; the old config stays in force

    async def reload(self) -> dict[str, Any]:
        """Re-read the config and apply it; returns what changed. Tells systemd (RELOADING=1, then READY=1)."""
        self.model_installed()
        async with self._lock:
            systemd.notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")
            try:
                new = await trio.to_thread.run_sync(functools.partial(load_config, self.config_path, started_in=self.started_in))
            except ConfigError as exc:
                log.error("reload rejected, the old config stays in force: %s", exc)
                systemd.notify("READY=1", f"STATUS=reload rejected: {exc}")
                raise RequestError(f"reload rejected, the old config stays in force: {exc}", code=-32000) from None
            changes, ending = self._apply(new)
            for job in ending:
                await self.state.runner.wait(job.id)  # a removed repository's last files land before its deletion
            await self.delete_repos(changes["removed"])
            log.info("config reloaded: %s", changes)
            systemd.notify("READY=1", f"STATUS=config reloaded: {len(self.state.config.repositories)} repositories")
            return changes

    def _apply(self, new: Config) -> tuple[dict[str, list[str]], list[Job]]:
        """Switch to `new`'s repositories; returns what changed and the running syncs being cancelled."""
        state, runner = self.state, self.state.runner
        old = {r.name: r for r in state.config.repositories}
        now = {r.name: r for r in new.repositories}
        removed = sorted(old.keys() - now.keys())
        added = sorted(now.keys() - old.keys())
        changed = sorted(n for n in old.keys() & now.keys() if old[n] != now[n])
        # The socket, state dir, limits and model are taken when the daemon starts.
        restart = [
            f.name
            for f in attrs.fields(Config)
            if f.name not in ("repositories", "log_level") and getattr(new, f.name) != getattr(state.config, f.name)
        ]
        if restart:
            log.warning("reload: changes to %s take effect when the daemon restarts", ", ".join(restart))
        if new.log_level != state.config.log_level:
            logging.getLogger().setLevel(new.log_level.upper())
        state.config = attrs.evolve(state.config, repositories=new.repositories, log_level=new.log_level)
        ending = []
        for name in removed + changed:
            self.watchers.stop(name)
            ending += runner.cancel(repo=name)
            state.repo_states.pop(name, None)
            runner.backoff.succeeded(name)  # forget old failures: a new config deserves a fresh try
        for name in added + changed:
            state.repo_states[name] = RepoState()
            self.watchers.start(now[name])
            try:
                runner.submit(SyncRequest(name))
            except Busy as exc:
                log.warning("reload: sync of %s not queued: %s", name, exc)
        changes = {"added": added, "removed": removed, "changed": changed, "restart_needed": restart}
        return changes, [job for job in ending if job.request.repo in removed]

    async def delete_repos(self, names: list[str]) -> None:
        """Delete every document of these repositories, in one commit each."""
        for name in names:
            try:
                await write_one(self.state.stages.writes, name, lambda tracker: DeleteRepo(tracker, name))
            except StoreError as exc:
                raise StoreError(f"repository {name!r}: its documents could not be deleted: {exc}") from None

    async def forget_unconfigured(self) -> None:
        """At start: delete the documents of repositories removed from the config while the daemon was down."""
        configured = self.state.configured()
        if stale := [name for name in self.state.store.repos() if name not in configured]:
            log.info("deleting the documents of repositories no longer configured: %s", ", ".join(stale))
            await self.delete_repos(stale)
