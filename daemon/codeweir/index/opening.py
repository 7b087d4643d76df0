"""Opening the index at start: finishing a swap a crash cut short, claiming the directory for this
code's versions or starting (or resuming) a rebuild beside it, and loading which views hold which
versions.

A damaged index (Tantivy cannot open or read it) found here is moved aside
(`index.damaged-<time>`, the latest one kept for inspection) and a new one is opened, which
every repository's next sync fills again; a damaged rebuild starts over.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import tantivy

from codeweir.errors import StoreError
from codeweir.host.memory import release_mapped_pages
from codeweir.index.disk import (
    DAMAGED_SUFFIX,
    META_FILE,
    claim_versions,
    failure_reason,
    finish_swap,
    is_damage,
    prepare_rebuild,
    read_versions,
    sibling,
    tantivy_failure,
)
from codeweir.index.membership import Membership, loaded
from codeweir.index.schema import SCHEMA, VERSIONS, documents, first, open_index

# Member documents read between two releases of the index pages they map (see _load_membership).
MEMBERS_PER_RELEASE = 2048

log = logging.getLogger(__name__)


@attrs.frozen
class Opened:
    """The index as found at start."""

    rebuilding: bool  # written with other versions: rebuilt beside it
    index: tantivy.Index  # the one searches read
    target: tantivy.Index  # the one written to: the rebuild, while one runs, else `index`
    membership: Membership  # which views hold which file versions in `target`
    damage: str | None  # why it was found damaged, while it is built again; else None


def open_indexes(directory: Path, rebuild_directory: Path) -> Opened:
    """Open the index in `directory` (and its rebuild in `rebuild_directory`, if its versions are
    not this code's), setting aside what is damaged; a StoreError where it cannot be opened."""
    try:
        finish_swap(directory, rebuild_directory)
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot open the index at {directory}: {failure_reason(exc)}") from None
    rebuilding, damage, tries_left = False, None, 3
    while True:
        tries_left -= 1
        try:
            rebuilding = not claim_versions(directory, VERSIONS)
            if rebuilding:
                target = open_index(prepare_rebuild(rebuild_directory, VERSIONS))
                index = _open_old(directory, rebuild_directory, target)
            else:
                shutil.rmtree(rebuild_directory, ignore_errors=True)  # one for versions now gone
                index = target = open_index(directory)
            return Opened(rebuilding, index, target, _load_membership(target, directory, rebuild_directory), damage)
        except BaseException as exc:
            if not tantivy_failure(exc):
                raise
            if not is_damage(exc) or not tries_left:
                raise StoreError(f"cannot open the index at {directory}: {failure_reason(exc)}") from None
            damage = _set_aside(directory, rebuild_directory, rebuilding, failure_reason(exc))


def _set_aside(directory: Path, rebuild_directory: Path, rebuilding: bool, reason: str) -> str:
    """Tantivy could not open or read the index written to: replace it by an empty one. Returns
    the damage to report."""
    if rebuilding:  # the old index still serves; the rebuild starts over
        shutil.rmtree(rebuild_directory, ignore_errors=True)
        log.error("the index rebuild in %s is damaged (%s): it starts over", rebuild_directory, reason)
        return f"the rebuild was found damaged ({reason}) and starts over"
    for old in directory.parent.glob(directory.name + DAMAGED_SUFFIX + "*"):
        shutil.rmtree(old, ignore_errors=True)  # only the latest one is kept
    kept = sibling(directory, DAMAGED_SUFFIX + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    try:
        os.rename(directory, kept)
        directory.mkdir()
    except OSError as exc:
        raise StoreError(
            f"the index at {directory} is damaged ({reason}) and cannot be moved aside: {failure_reason(exc)}"
        ) from None
    log.error(
        "the index at %s is damaged (%s): moved to %s for inspection; a new index is filled by syncing every repository again",
        directory,
        reason,
        kept,
    )
    return f"found damaged at start ({reason}), moved to {kept}; every repository is indexed again"


def _open_old(directory: Path, rebuild_directory: Path, target: tantivy.Index) -> tantivy.Index:
    found = read_versions(directory / META_FILE)
    try:
        index = open_index(directory)
    except BaseException as exc:  # another schema, or damaged: this code cannot read it
        if not tantivy_failure(exc):
            raise
        log.warning(
            "index at %s (versions %s) cannot be read (%s): searches answer from the rebuild as it grows",
            directory,
            found,
            failure_reason(exc),
        )
        return target
    log.warning(
        "index at %s has versions %s, want %s: rebuilding in %s; searches read the old index meanwhile",
        directory,
        found,
        VERSIONS,
        rebuild_directory,
    )
    return index


def _load_membership(target: tantivy.Index, directory: Path, rebuild_directory: Path) -> Membership:
    target.reload()
    docs = documents(target, tantivy.Query.term_query(SCHEMA, "doc_kind", "member"))

    def members() -> Iterator[tuple[str, str, str, str]]:
        for i, d in enumerate(docs, 1):
            # The member documents are spread over every block of the store: read at once, the
            # kernel's took the daemon's RSS from 520 to 830 MiB for a moment.
            if i % MEMBERS_PER_RELEASE == 0:
                release_mapped_pages(directory, rebuild_directory)
            yield first(d, "repo"), first(d, "view"), first(d, "path"), first(d, "blob")

    membership = loaded(members())
    release_mapped_pages(directory, rebuild_directory)
    return membership
