"""The first pass of a large sync: every file's whole text, as a draft, before any chunk.

Chunking is most of a full index's work (tree-sitter and the walk of its trees in the parse
workers, then every chunk's fields in Tantivy): the kernel's took minutes where `cindex` takes
seconds. So a sync with many files to read first reads each of them and writes one `draft`
document (index/schema.py: its text's distinct trigrams, no words or symbols), commits, and only
then hands the files to the parse workers, as zoekt's content index is searchable before
anything else is derived from it. Exact and regex search find drafts (search/regex.py), matching
the file as it is now;
each is deleted in the commit that writes its version's chunks (index/store.py), and whatever
is left of a repository's drafts at the end of a sync, by `DeleteDrafts`.

Drafts are of the versions the main view takes, and only searches of the main view see them.
They are read as the parse workers read files (ingest/parse.py's `read_drafts`), in the daemon's
threads: there is nothing to parse. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence

from codeweir.records import TrackedFile

# Files read in one thread call, and one write: a call's round trip is paid once for them.
DRAFT_BATCH_FILES = 64
DRAFT_BATCH_BYTES = 1 << 20


def draft_batches(files: Sequence[TrackedFile]) -> list[list[TrackedFile]]:
    """`files` in order, cut into batches of DRAFT_BATCH_FILES files or DRAFT_BATCH_BYTES. Pure."""
    batches: list[list[TrackedFile]] = []
    size = DRAFT_BATCH_BYTES
    for file in files:
        if size >= DRAFT_BATCH_BYTES or len(batches[-1]) >= DRAFT_BATCH_FILES:
            batches.append([])
            size = 0
        batches[-1].append(file)
        size += file.size
    return batches
