"""The Tantivy index: the writer's operations and the reader (its schema: index/schema.py; its
directories and damage: index/disk.py; opening it: index/opening.py; each version's chunks and
where they sit: index/chunk_tables.py).

Tantivy is the truth for what is indexed. Documents of a few kinds share one index:
`file` (one per file version: repository, path, blob id), `chunk` (a version's pieces), `draft`
(a version's text's trigrams, until its chunks are written: ingest/drafts.py), `member`
(a view of a repository, its worktree or a ref, holds a version at a path: see
index/membership.py), `commit`, and `repo` (per-repository metadata). A version is written
once, whatever the views holding it, and deleted by its key (`version_key`) in the commit
where the last view holding it lets it go, so a file doc and its chunks always agree.

The index records the schema and chunker versions it was written with. An index of other
versions is rebuilt in the background: a new index grows in a directory beside it while
searches read the old one, and replaces it (two renames, finished at the next open if a
crash falls between them) once every repository has been synced into it.

A damaged index (a file truncated, garbled or missing: Tantivy cannot open or read it, or a
file's checksum, in the footer Tantivy writes, does not match) is never fatal. Found at open,
it is moved aside and a new one opened (index/opening.py). Found later, by a read or by
`verify()`, it is reported (`on_damage`) and the daemon has the writer start a rebuild
(`start_rebuild`): searches read the rebuild as it grows, and it replaces the damaged index
once every repository is synced into it.

Every method here blocks (Tantivy calls, disk); the daemon calls them through
`trio.to_thread.run_sync` with a limiter of their own. Only the writer task calls the
writing methods.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import numpy as np
import tantivy

from codeweir.errors import StoreError
from codeweir.host.durable import fsync
from codeweir.host.memory import release_free_memory, release_mapped_pages
from codeweir.host.priority import start_in_background
from codeweir.index.chunk_hashes import ChunkHashChange, ChunkHashes
from codeweir.index.chunk_tables import ChunkTables, StoredTable, Table, encode_table
from codeweir.index.digest_counts import DigestCounts
from codeweir.index.disk import (
    OS_MESSAGE,
    REBUILD_SUFFIX,
    RETIRED_SUFFIX,
    failure_reason,
    is_damage,
    prepare_rebuild,
    sibling,
    tantivy_failure,
    verify_directory,
    why_writes_fail,
)
from codeweir.index.membership import (
    MAIN,
    Membership,
    Placement,
    Visibility,
    chunk_keys,
    version_key,
)
from codeweir.index.opening import open_indexes
from codeweir.index.schema import (
    SCHEMA,
    VERSIONS,
    ChunkDoc,
    commit_document,
    commit_key,
    documents,
    draft_document,
    fast_hashes,
    file_document,
    first,
    member_document,
    member_key,
    module_path,
    open_index,
    query_all,
    repo_document,
    repo_key,
    scope,
)
from codeweir.records import CommitRecord, Draft, FileRecord

log = logging.getLogger(__name__)

# Tantivy flushes a segment whenever its heap fills; at its 15 MB minimum a full index of
# go-std spent 10 of its 38 CPU seconds merging them again (3.9 s at 48 MB, for ~30 MiB more).
WRITER_HEAP_BYTES = 48_000_000
_INDEX_OPENINGS = itertools.count(1)  # numbers each index a store has searches read, in this process


class Store:
    """One Tantivy index in `directory`, with the writer opened lazily by the writer task.

    While `rebuilding`, searches read the old index and writes (and `membership`, which the
    sync planner and searches read) go to the rebuild.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._rebuild_directory = sibling(directory, REBUILD_SUFFIX)
        opened = open_indexes(directory, self._rebuild_directory)
        self.rebuilding = opened.rebuilding
        self.index, self._target = opened.index, opened.target
        # Why the index was found damaged, while it is built again (for status); else None.
        self.damage = opened.damage
        # Bumped by each rebuild after damage: what a sync planned against the index before it
        # is not written to the new one (see writes.SyncTracker.generation).
        self.generation = 0
        # Told, from any thread, when a read finds the index in a directory damaged (and why):
        # the daemon has it rebuilt.
        self.on_damage: Callable[[Path, str], None] | None = None
        self._writer: tantivy.IndexWriter | None = None
        self.commits = 0  # made by this store: merges follow them (host/memory.ReleaseCadence)
        # Which views hold which file versions in the index written to (committed, for readers).
        self.membership = opened.membership
        # Versions' chunks and where they sit; and the chunk documents written since the last
        # commit, by home version.
        self._tables: ChunkTables[ChunkDoc] = ChunkTables()
        # repo -> the versions drafted and not written since (by their key's hash): writing one
        # deletes its draft. A hash that collides asks one delete in vain.
        self._drafted: dict[str, set[int]] = {}
        # What each commit changes in the chunks' content hashes, for the embed backlog's
        # coverage, from the first time it reads them (`chunk_hash_counts`).
        self._hashes_lock = threading.Lock()  # a commit, and that read, hold it
        self._hashes = ChunkHashes()

    @property
    def index(self) -> tantivy.Index:
        """The index searches read: this one, or its rebuild where this one is damaged. Each set
        numbers it anew (`index_opened`): a search worker (search/index_search.py) opens it again,
        as after a rebuild's swap the same directory holds another index."""
        return self._index

    @index.setter
    def index(self, index: tantivy.Index) -> None:
        self._index, self.index_opened = index, next(_INDEX_OPENINGS)

    # -- versions -------------------------------------------------------------------------

    def finish_rebuild(self) -> None:
        """Make the rebuild, now holding every repository, the index that searches read.

        Commits what is written, then swaps the directories with two renames; an open after a
        crash between them completes the swap (see `finish_swap`). The writer task calls this.
        """
        if not self.rebuilding:
            return
        self.commit()
        self.close()
        retired = sibling(self.directory, RETIRED_SUFFIX)
        try:
            os.rename(self.directory, retired)
            os.rename(self._rebuild_directory, self.directory)
            fsync(self.directory.parent)
            self.index = self._target = open_index(self.directory)
            shutil.rmtree(retired)
        except (OSError, ValueError) as exc:
            raise StoreError(f"cannot replace the index at {self.directory} by its rebuild: {failure_reason(exc)}") from None
        damaged, self.damage = self.damage, None
        self.rebuilding = False
        if damaged is not None:
            log.info("index rebuilt after damage: %s holds every repository again", self.directory)
        else:
            log.info("index rebuilt: %s now has versions %s", self.directory, VERSIONS)

    def start_rebuild(self, reason: str, damaged: Path) -> None:
        """After `damaged` (this index's directory or its rebuild's) was found damaged while
        serving: searches read a new index, which replaces the damaged one (`finish_rebuild`)
        once every repository is synced into it again. The writer task calls this."""
        if self.rebuilding and damaged != self._rebuild_directory:
            self.index = self._target  # the old index is damaged: the rebuild serves as it grows
            self.damage = reason
            return
        # Searches go on reading an old index a rebuild for new versions replaces, unless it is
        # the damaged one (or there is none beside the rebuild).
        reads_damaged = not self.rebuilding or self.index is self._target
        self.rollback()  # what it held was written to the damaged index
        try:
            shutil.rmtree(self._rebuild_directory, ignore_errors=True)
            target = open_index(prepare_rebuild(self._rebuild_directory, VERSIONS))
        except (OSError, ValueError) as exc:
            raise StoreError(f"cannot start rebuilding the damaged index at {self.directory}: {failure_reason(exc)}") from None
        with self._hashes_lock:  # the chunks written to the damaged index are not in the new one
            self._hashes.all_dropped()
            self._hashes.committed()
        # The event loop reads these without a lock, in the order a sync does: the generation,
        # then what the index holds; the rebuild's bookkeeping, the generation then `rebuilding`.
        self.membership = Membership()
        if reads_damaged:
            self.index = target
        self._target = target
        self.generation += 1
        self.rebuilding = True
        self.damage = reason
        log.warning("rebuilding the index in %s; searches read it as it grows", self._rebuild_directory)

    # -- damage -----------------------------------------------------------------------------

    @property
    def read_directory(self) -> Path:
        """The directory of the index searches read."""
        return self._rebuild_directory if self.rebuilding and self.index is self._target else self.directory

    @property
    def written_directory(self) -> Path:
        """The directory of the index written to (the rebuild, while one runs)."""
        return self._rebuild_directory if self.rebuilding else self.directory

    def damage_error(self, exc: BaseException, what: str) -> StoreError | None:
        """When `exc`, raised by reading the index, says it is damaged: the error to answer with,
        after telling `on_damage` (which has it rebuilt). None for any other error."""
        while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
            exc = exc.exceptions[0]
        if isinstance(exc, StoreError) or not (tantivy_failure(exc) and is_damage(exc)):
            return None
        reason = f"{what} failed: {failure_reason(exc)}"
        if self.on_damage is not None:
            self.on_damage(self.read_directory, reason)
        return StoreError(f"the index is damaged ({reason}); it is being rebuilt from the repositories, try again later")

    @contextmanager
    def _reading(self, what: str) -> Iterator[None]:
        try:
            yield
        except BaseException as exc:
            if (error := self.damage_error(exc, what)) is None:
                raise
            raise error from None

    def verify(self) -> tuple[Path, str] | None:
        """Check every file of the index (and of its rebuild) against the checksum in the footer
        Tantivy writes: the first damaged directory found, with what is wrong, or None. Reads
        the whole index (1.5 GB/s): run it in a thread."""
        for directory in (self.directory, self._rebuild_directory) if self.rebuilding else (self.directory,):
            if (problem := verify_directory(directory)) is not None:
                return directory, problem
        return None

    # -- reading --------------------------------------------------------------------------

    def searcher(self) -> tantivy.Searcher:
        return self.index.searcher()

    def written_searcher(self) -> tantivy.Searcher:
        """A searcher of the index being written, as of its last commit: during a rebuild, the
        rebuild (which searches read once it is complete), else the one searches read."""
        return self._target.searcher()

    def reload(self) -> None:
        self.index.reload()

    def chunk_hash_counts(self, *, stop: Callable[[], bool] = lambda: False) -> dict[str, DigestCounts] | None:
        """repo -> content hash -> how many chunk documents have it, as of the last commit (of the
        rebuild, if one runs), read from the chunks' fast columns: the caller's to keep. From
        here on each commit records what it changed, for `take_chunk_hash_changes`; what was
        recorded before is dropped. None if `stop()` turns true meanwhile."""
        with self._hashes_lock, self._reading("reading the chunks' content hashes"):
            self._target.reload()
            searcher = self._target.searcher()
            counts = {}
            for repo, _ in searcher.terms_with_prefix("repo", ""):
                found = []
                for addresses in fast_hashes(searcher, query_all([("doc_kind", "chunk"), ("repo", repo)])):
                    if stop():
                        return None
                    found.append(np.array(searcher.fast_field_values("hash_high", addresses), np.uint64))
                if found and len(held := DigestCounts(np.concatenate(found))):
                    counts[repo] = held
            self._hashes.load(set(counts))
            self.release_pages()
            return counts

    def view_chunk_hashes(self, repo: str, view: str) -> list[str]:
        """The content hash of each chunk of the versions `view` holds, as of the last commit."""
        with self._reading(f"reading the chunks of {repo} {view}"):
            tables = [self._table(version_key(repo, path, blob)) for path, blob in self.membership.files(repo, view).items()]
        return [placement.content_hash for table in tables for placement in table.values()]

    def visibility(self, repo: str | None, refs: tuple[str, ...] = ()) -> Visibility:
        """What a search over `repo` (None: all) that sees the views `refs` (none: the main
        view) leaves out, and where it places the chunks it sees (see membership.Visibility)."""
        with self._reading("reading the chunks of versions"):
            return self._tables.visibility(self.membership, self._stored_table, repo, refs)

    def known_visibility(self, repo: str | None, refs: tuple[str, ...] = ()) -> Visibility | None:
        """`visibility` where known without reading the index (since the last commit); else None."""
        base = self.membership.known_visibility(repo, refs)
        return None if base is None else self._tables.known_visibility(base, repo, refs)

    def take_chunk_hash_changes(self) -> list[ChunkHashChange]:
        """What the commits since the last call (or `chunk_hash_counts`) changed. Cheap, never blocks."""
        return self._hashes.take_changes()

    def file_blobs(self, repo: str, view: str = MAIN) -> Mapping[str, str]:
        """path -> blob id of every file of `repo`'s `view` in the last commit (of the rebuild, if one runs)."""
        return self.membership.files(repo, view)

    def repos(self) -> list[str]:
        return self.membership.repos()

    def term(self, field: str, value: str) -> tantivy.Query:
        return tantivy.Query.term_query(SCHEMA, field, value)

    def count(self, *pairs: tuple[str, str]) -> int:
        query = tantivy.Query.boolean_query([(tantivy.Occur.Must, self.term(f, v)) for f, v in pairs])
        with self._reading("counting documents"):
            return self.searcher().search(query, limit=1, count=True).count

    def repo_meta(self, repo: str) -> dict:
        """The metadata of `repo` in the index written to: what it holds (during a rebuild, too)."""
        with self._reading(f"reading the metadata of {repo}"):
            for doc in documents(self._target, self.term("file_key", repo_key(repo))):
                return json.loads(first(doc, "meta", "{}"))
        return {}

    def file_status(self, repo: str, view: str = MAIN) -> dict[str, int]:
        """How many files of `repo`'s `view` are in each status ("indexed", "binary", "error", ...):
        counted from the term dictionary, leaving out the versions the view does not hold (reading
        each file document instead took the kernel's 78,000 and mapped 760 MiB of the index)."""
        hidden = self.membership.visibility(repo, () if view == MAIN else (view,)).hidden
        clauses = [(tantivy.Occur.Must, self.term("doc_kind", "file")), (tantivy.Occur.Must, self.term("repo", repo))]
        if hidden:
            clauses.append((tantivy.Occur.MustNot, tantivy.Query.term_set_query(SCHEMA, "file_key", list(hidden))))
        with self._reading(f"reading the files of {repo}"):
            found = self.searcher().terms_with_prefix("status", "", filter_query=tantivy.Query.boolean_query(clauses))
        return {status: n for status, n in found if n}

    def file_errors(self, repo: str, limit: int) -> list[dict[str, str]]:
        """Up to `limit` file versions of `repo` that could not be read or chunked, with why, by path."""
        query = query_all([("doc_kind", "file"), ("repo", repo)])
        failed = tantivy.Query.boolean_query([(tantivy.Occur.Should, self.term("status", s)) for s in ("unreadable", "error")])
        searcher = self.searcher()
        with self._reading(f"reading the file errors of {repo}"):
            hits = searcher.search(
                tantivy.Query.boolean_query([(tantivy.Occur.Must, query), (tantivy.Occur.Must, failed)]), limit=limit
            ).hits
            docs = [searcher.doc(address) for _, address in hits]
        return sorted(
            ({"path": first(d, "path"), "status": first(d, "status"), "error": first(d, "error")} for d in docs),
            key=lambda e: e["path"],
        )

    # -- writing (the writer task only) ----------------------------------------------------

    @property
    def writer(self) -> tantivy.IndexWriter:
        if self._writer is None:
            try:
                # A small arena: memory stays flat whatever the repository's size; the writer
                # flushes a segment when it fills, which costs little at our commit cadence.
                # Its merge threads start with it, at background priority.
                writer = start_in_background(partial(self._target.writer, heap_size=WRITER_HEAP_BYTES, num_threads=1))
                # Files a killed process wrote for a commit it never finished are not in the
                # index's meta; left there, a later commit that names its deletes alike (same
                # segment, same opstamp, as a resumed sync reaches) fails on "FileAlreadyExists".
                writer.garbage_collect_files()
                self._writer = writer
            except ValueError as exc:
                raise self._write_failure("opening the index writer", exc) from None
        return self._writer

    @contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """Translate a failed write (disk full, read-only, I/O error) into a StoreError; the
        writer task then rolls back, so nothing committed is touched."""
        try:
            yield
        except (OSError, ValueError) as exc:
            raise self._write_failure(what, exc) from None

    def _write_failure(self, what: str, exc: BaseException) -> StoreError:
        """The error for a failed write, with the OS's reason even where Tantivy's message has none
        ("An index writer was killed" after its thread met a full disk): a probe write finds it."""
        reason = failure_reason(exc)
        written = self._rebuild_directory if self.rebuilding else self.directory
        if not OS_MESSAGE.search(str(exc)) and (found := why_writes_fail(written)):
            reason = f"{found} ({reason})"
        return StoreError(f"{what} failed in {self.directory}: {reason}")

    def write_file(self, record: FileRecord, views: Sequence[str] = (MAIN,)) -> None:
        """Write one file version, held from now on by `views` at its path. Its chunks that a
        version of the path still held after this write has alike are not written again."""
        with self._writing(f"writing {record.repo}/{record.path}"):
            self._write_file(record, views)
            for view in views:
                self._set_member(record.repo, view, record.path, record.blob)

    def write_drafts(self, drafts: Iterable[Draft]) -> None:
        """Write each version's draft (ingest/drafts.py), until its chunks are written."""
        for draft in drafts:
            with self._writing(f"writing the draft of {draft.repo}/{draft.path}"):
                key = version_key(draft.repo, draft.path, draft.blob)
                drafted = self._drafted.setdefault(draft.repo, set())
                if hash(key) in drafted:
                    self.writer.delete_documents_by_term("file_key", key)
                self.writer.add_document(draft_document(draft, key))
                drafted.add(hash(key))

    def delete_drafts(self, repo: str) -> None:
        """Drop every draft of `repo` left (versions written since, or no longer wanted)."""
        with self._writing(f"deleting the drafts of {repo}"):
            self.writer.delete_documents_by_query(query_all([("doc_kind", "draft"), ("repo", repo)]))
        self._drafted.pop(repo, None)

    @property
    def drafting(self) -> bool:
        """Whether drafts written by this store may stand, their versions not written since."""
        return any(list(self._drafted.values()))  # a copy made in one call: the writer's thread changes it

    def has_drafts(self, repo: str) -> bool:
        """Whether the index written to holds drafts of `repo`, as of its last commit."""
        query = query_all([("doc_kind", "draft"), ("repo", repo)])
        with self._reading(f"counting the drafts of {repo}"):
            return self._target.searcher().search(query, limit=1, count=True).count > 0

    def set_member(self, repo: str, view: str, path: str, blob: str | None) -> None:
        """`view` of `repo` holds the version `blob` (already written) at `path` from now on;
        None: no file there. A version no view holds any more is deleted."""
        with self._writing(f"{'adding' if blob else 'removing'} {repo}/{path} in {view or 'the main view'}"):
            self._set_member(repo, view, path, blob)

    def _set_member(self, repo: str, view: str, path: str, blob: str | None) -> None:
        held = self.membership.written(repo, view).get(path)
        if held == blob:
            return
        key = member_key(repo, view, path)
        if held is not None:  # a delete costs a look into every segment at the commit: none in vain
            self.writer.delete_documents_by_term("file_key", key)
        if blob is not None:
            self.writer.add_document(member_document(repo, view, path, blob, key))
        if (orphan := self.membership.set(repo, view, path, blob)) is not None:
            self._drop_version(repo, path, orphan)

    def _held(self, repo: str, path: str) -> dict[str, str]:
        """view -> the blob it holds at `path`, as written, for the views of `repo` that hold one."""
        views = self.membership.written_views(repo)
        return {view: blob for view, files in views.items() if (blob := files.get(path)) is not None}

    def _write_file(self, record: FileRecord, views: Sequence[str]) -> None:
        repo, path, blob = record.repo, record.path, record.blob
        key = version_key(repo, path, blob)
        keys = chunk_keys(repo, path, record.content_hashes)
        placements = [
            Placement(blob, c.start_line, c.end_line, c.start_byte, c.end_byte, h)
            for c, h in zip(record.chunks, record.content_hashes, strict=True)
        ]
        held = self._held(repo, path)
        tables = {other: self._table(version_key(repo, path, other)) for other in set(held.values())}
        # Written again (a full sync): every chunk is written afresh, here. Else the chunks of the
        # versions that stay (held by views this write does not move) are kept where they are.
        again = blob in tables
        staying = set() if again else {other for view, other in held.items() if view not in views}
        shared = {chunk_id for other in staying for chunk_id in tables[other]}
        # The chunks a document may exist for (a delete costs a look into every segment at the
        # commit: none is asked in vain): those of the path's versions held so far.
        existing = {chunk_id for table in tables.values() for chunk_id in table}
        writer = self.writer
        drafted = self._drafted.get(repo, set())
        if again or hash(key) in drafted:  # the version's file document, or its draft
            writer.delete_documents_by_term("file_key", key)
            drafted.discard(hash(key))
        writer.add_document(file_document(record, key, encode_table(placements)))
        module = module_path(record.language, path, record.chunks)
        split = record.words or (None,) * len(keys)
        for chunk, content_hash, chunk_id, words in zip(record.chunks, record.content_hashes, keys, split, strict=True):
            if chunk_id in shared:
                continue
            if chunk_id in existing:
                writer.delete_documents_by_term("chunk_key", chunk_id)
            else:
                self._hashes.written(repo, content_hash, 1)
            parts = scope(module, chunk.symbol_path, chunk.symbol) if chunk.symbol else []
            made = ChunkDoc(repo, path, record.language, record.facets, chunk, content_hash, tuple(parts))
            writer.add_document(made.document(key, chunk_id, blob, words))
            self._tables.homed(chunk_id, key, made)
        self._tables.written(key, dict(zip(keys, placements, strict=True)))

    def _drop_version(self, repo: str, path: str, blob: str) -> None:
        """No view holds this version any more: its file document and the chunks no version left
        holds go; a chunk it was home to that another version holds moves home there."""
        key = version_key(repo, path, blob)
        table = self._table(key)
        live = {other: self._table(version_key(repo, path, other)) for other in set(self._held(repo, path).values())}
        moving: dict[str, str] = {}  # chunk key -> the blob of the version it moves home to
        for chunk_id, placement in table.items():
            if (home := next((b for b, t in live.items() if chunk_id in t), None)) is not None:
                moving[chunk_id] = home
            else:
                self._hashes.written(repo, placement.content_hash, -1)
        homed = self._chunks_homed_at(key) if moving else {}
        self.writer.delete_documents_by_term("file_key", key)  # the file document, and the chunks home here
        for chunk_id in table.keys() - moving.keys():
            self.writer.delete_documents_by_term("chunk_key", chunk_id)
        for chunk_id, made in homed.items():
            if chunk_id in moving:
                home = version_key(repo, path, moving[chunk_id])
                placement = live[moving[chunk_id]][chunk_id]
                moved = made.placed(placement)
                self.writer.add_document(moved.document(home, chunk_id, placement.blob))
                self._tables.homed(chunk_id, home, moved)
        self._tables.dropped(key)

    def _chunks_homed_at(self, key: str) -> dict[str, ChunkDoc]:
        """The chunk documents whose home is the version `key`: written since the last commit, or committed."""
        homed = self._tables.pending_homed_at(key)
        query = query_all([("doc_kind", "chunk"), ("file_key", key)])
        for doc in documents(self._target, query):
            chunk_id = first(doc, "chunk_key")
            if self._tables.pending_home(chunk_id) in (None, key):  # else written again since, elsewhere
                homed.setdefault(chunk_id, ChunkDoc.of(doc))
        return homed

    def _table(self, key: str) -> Table:
        """The chunks of the version `key` and where they sit: as written, committed or not."""
        return self._tables.table(key, self._stored_table)

    def _stored_table(self, key: str) -> StoredTable | None:
        """The file document of the version `key` in the index written to, for its chunk table."""
        for doc in documents(self._target, query_all([("doc_kind", "file"), ("file_key", key)])):
            return first(doc, "repo"), first(doc, "path"), first(doc, "blob"), first(doc, "chunks", b"")
        return None

    def write_commits(self, repo: str, commits: Iterable[CommitRecord]) -> None:
        """Add commit documents; one already indexed is replaced, so a resumed walk is harmless."""
        with self._writing(f"writing commits of {repo}"):
            for commit in commits:
                key = commit_key(repo, commit.sha)
                self.writer.delete_documents_by_term("file_key", key)
                self.writer.add_document(commit_document(repo, commit, key))

    def delete_commits(self, repo: str) -> None:
        """Drop every commit of `repo` (its history was rewritten)."""
        query = query_all([("doc_kind", "commit"), ("repo", repo)])
        with self._writing(f"deleting commits of {repo}"):
            self.writer.delete_documents_by_query(query)

    def delete_repo(self, repo: str) -> None:
        with self._writing(f"deleting repository {repo}"):
            self.writer.delete_documents_by_term("repo", repo)
            self.writer.delete_documents_by_term("file_key", repo_key(repo))
        self.membership.drop_repo(repo)
        self._hashes.repo_dropped(repo)
        self._drafted.pop(repo, None)

    def set_repo_meta(self, repo: str, meta: Mapping) -> None:
        key = repo_key(repo)
        self.writer.delete_documents_by_term("file_key", key)
        self.writer.add_document(repo_document(repo, meta, key))

    def commit(self) -> None:
        """Make everything written so far visible to searches, atomically."""
        with self._hashes_lock:
            try:
                # Tantivy starts the next indexing threads from the committing thread: at background
                # priority they, like the merges, yield the CPU to searches.
                start_in_background(self.writer.commit)
            except (OSError, ValueError) as exc:
                self.rollback()
                raise self._write_failure("commit", exc) from None
            self._hashes.committed()
        self._target.reload()
        self._tables.committed()
        self.membership.commit()
        self.commits += 1
        release_free_memory()
        self.release_pages()

    def release_pages(self) -> None:
        """Drop from the daemon's RSS the index pages Tantivy has read through mmap: after a
        commit, a read of every document of a kind, and whenever the daemon finds more of them
        resident (service/daemon.py) for what merges and searches read. Cheap; they stay in the
        page cache."""
        release_mapped_pages(self.directory, self._rebuild_directory)

    def rollback(self) -> None:
        """Drop uncommitted writes. The writer is dropped too and reopened on next use: after a
        failed write or commit (disk full, read-only) its state is not to be trusted."""
        self.membership.rollback()
        self._tables.rolled_back()
        self._hashes.rolled_back()
        writer, self._writer = self._writer, None
        if writer is not None:
            # wait_merging_threads consumes the writer and frees the index's writer lock, even
            # where a traceback still holds the Python object.
            for end in (writer.rollback, writer.wait_merging_threads):
                try:
                    end()
                except ValueError:
                    pass

    def close(self) -> None:
        if self._writer is not None:
            self._writer.wait_merging_threads()
            self._writer = None
