"""Hits marked stale where their file has changed since it was indexed (git/freshness.py says
which), as the view the search saw them in has it now."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from codeweir.errors import CodeweirError
from codeweir.git.freshness import stale_paths
from codeweir.index.membership import MAIN
from codeweir.protocol_results import SearchHit

if TYPE_CHECKING:
    from codeweir.config import RepoConfig

log = logging.getLogger(__name__)


def mark_stale(hits: list[SearchHit], refs: tuple[str, ...], repo_of: Callable[[str], RepoConfig | None]) -> list[SearchHit]:
    """Flag hits whose file has changed since it was indexed where the search saw it: in the
    repository (its worktree or ref) without refs; else on a wanted ref holding it, which
    now holds another version (or none) at its path. Blocking: run in a thread."""
    indexed: dict[tuple[str, str], dict[str, str]] = {}  # (repo, view) -> path -> blob
    for hit in hits:
        for view in [ref for ref in hit.refs if ref in refs] if refs else [MAIN]:
            indexed.setdefault((hit.repo, view), {})[hit.path] = hit.blob
    stale: set[tuple[str, str, str]] = set()
    for (name, view), blobs in indexed.items():
        repo = repo_of(name)
        if repo is None:
            continue
        try:
            paths = stale_paths(repo, blobs, view)
        except CodeweirError as exc:  # the repository is unreadable now: its hits stay unflagged
            log.warning("checking freshness: %s", exc)
            continue
        stale.update((name, path, blobs[path]) for path in paths)
    return [attrs.evolve(h, stale=True) if (h.repo, h.path, h.blob) in stale else h for h in hits]
