"""A large sync's first pass: each file's whole text as a draft, searchable by exact and regex
search before its chunks are written, and gone once they are (real repositories, parse workers
and Tantivy)."""

from __future__ import annotations

from contextlib import asynccontextmanager

from hypothesis import given
from hypothesis import strategies as st

from codeweir.git.scan import blob_id
from codeweir.index.schema import query_all
from codeweir.index.store import Store
from codeweir.ingest.drafts import DRAFT_BATCH_BYTES, DRAFT_BATCH_FILES, draft_batches
from codeweir.protocol_params import SearchParams
from codeweir.records import Draft, TrackedFile
from codeweir.search.filters import Filters
from codeweir.search.index_search import DRAFTS_NOTE, plan_search
from codeweir.search.patterns import Substring
from codeweir.search.query import parse_query
from codeweir.search.regex import ReadDraft, search_regex
from tests.gitrepo import GitRepo, make_repo
from tests.ingest.test_pipeline import FILES, pipeline


def count(store, kind: str) -> int:
    return store.searcher().search(query_all([("doc_kind", kind)]), limit=1, count=True).count


def texts(held: dict[tuple[str, str], str]) -> ReadDraft:
    """Drafts' files as `held` has them, by (repository, path)."""
    return lambda repo, path: held.get((repo, path))


def worktree(repo: GitRepo, name: str) -> ReadDraft:
    """Drafts' files as the worktree of `repo` (indexed as `name`) has them."""
    return lambda repo_name, path: repo.path(path).read_text() if repo_name == name and repo.path(path).exists() else None


@asynccontextmanager
async def synced(tmp_path, *drafts: Draft):
    """FILES synced as repository "r", then `drafts` written and committed beside its chunks:
    the store, the sync, the repository, and a reader of the drafts' files (their texts)."""
    repo = make_repo(tmp_path / "r", FILES)
    async with pipeline(tmp_path / "index") as (store, sync):
        await sync(repo, "r")
        store.write_drafts(drafts)
        store.commit()
        yield store, sync, repo, texts({(draft.repo, draft.path): draft.text for draft in drafts})


def found(store, pattern: str, read: ReadDraft, **filters) -> list[tuple[str, int, str]]:
    hits = search_regex(store, [pattern], Filters(**filters), 50, case_sensitive=True, read_draft=read).hits
    return sorted((hit.path, hit.line, hit.kind) for hit in hits)


@given(st.lists(st.integers(0, 3 * DRAFT_BATCH_BYTES), max_size=300))
def test_draft_batches_keep_the_files_in_order_each_batch_within_its_bounds(sizes):
    files = [TrackedFile(f"f{i}", "0" * 40, size) for i, size in enumerate(sizes)]
    batches = draft_batches(files)
    assert [file for batch in batches for file in batch] == files
    for batch in batches:
        assert 1 <= len(batch) <= DRAFT_BATCH_FILES
        assert sum(file.size for file in batch[:-1]) < DRAFT_BATCH_BYTES  # only its last file may cross


async def test_a_large_sync_answers_regex_search_from_drafts_before_any_chunk_is_written(tmp_path):
    repo = make_repo(tmp_path / "r", {**FILES, "logo.png": b"\x89PNG\0\0binary"})
    seen_before_chunks = []

    def search_once(path: str) -> None:  # the first file on its way to a parse worker
        if not seen_before_chunks:
            seen_before_chunks.append((count(store, "chunk"), found(store, r"return request \+ [0-7]$", read)))

    read = worktree(repo, "r")
    async with pipeline(tmp_path / "index", before_read=search_once) as (store, sync):
        result = await sync(repo, "r", draft_min_files=len(FILES))
        chunks, hits = seen_before_chunks[0]
        assert chunks == 0
        # Each file's line, at its place in the file, found in its draft (which has no kind).
        assert hits == [(path, 2, "") for path in sorted(FILES)]
        assert result.drafted == len(FILES)  # the binary file has no text to draft
        assert count(store, "draft") == 0
        assert found(store, r"return request \+ [0-7]$", read) == [(path, 2, "function") for path in sorted(FILES)]


async def test_a_small_sync_writes_no_drafts(tmp_path):
    repo = make_repo(tmp_path / "r", FILES)
    drafts_seen = []
    async with pipeline(tmp_path / "index", before_read=lambda path: drafts_seen.append(count(store, "draft"))) as (store, sync):
        result = await sync(repo, "r", draft_min_files=len(FILES) + 1)
        assert (result.drafted, set(drafts_seen)) == (0, {0})


async def test_only_searches_of_the_main_view_see_drafts_whatever_the_repository_filter(tmp_path):
    async with synced(tmp_path, Draft("new", "a.py", "1" * 40, "python", "def fresh_draft():\n    pass\n")) as (
        store,
        _,
        _,
        read,
    ):
        assert found(store, "fresh_draft", read) == [("a.py", 1, "")]
        assert found(store, "fresh_draft", read, repo="new") == [("a.py", 1, "")]  # a repository with no view yet
        assert found(store, "fresh_draft", read, repo="r") == []
        assert found(store, "fresh_draft", read, refs=("main",)) == []
        assert found(store, "fresh_draft", texts({})) == []  # its file gone since


async def test_drafts_a_sync_left_behind_are_gone_after_the_next_and_never_double_a_line(tmp_path):
    # What a sync cut short leaves: a draft of a version written since, and of one no view takes.
    left = [
        Draft("r", "src/mod0.py", blob_id(FILES["src/mod0.py"].encode()), "python", FILES["src/mod0.py"]),
        Draft("r", "gone.py", "2" * 40, "python", "def handler_gone(request):\n    return request\n"),
    ]
    async with synced(tmp_path, *left) as (store, sync, repo, read):
        assert store.file_blobs("r")["src/mod0.py"] == left[0].blob
        assert count(store, "draft") == 2
        # A line both a draft and a chunk of one version hold is one hit.
        assert [hit[0] for hit in found(store, "def handler_", read)] == sorted([*FILES, "gone.py"])
        await sync(repo, "r")
        assert count(store, "draft") == 0
        assert [hit[0] for hit in found(store, "def handler_", read)] == sorted(FILES)


async def test_words_find_drafts_after_the_chunks_hits_a_line_of_each_while_drafts_stand(tmp_path):
    text = "# Parse the REQUEST first\nvalue = 1\nrequest_parser = make_parser()\n"
    async with synced(tmp_path, Draft("r", "new/parse.py", "3" * 40, "python", text)) as (store, sync, repo, read):

        def lexical(words: str):
            return plan_search(store, "lexical", parse_query(words), SearchParams(query=words), read_draft=read)()

        hits, notes = lexical("parse request")
        assert [(hit.path, hit.line) for hit in hits] == [("new/parse.py", 1)]
        assert notes == [DRAFTS_NOTE]
        hits, notes = lexical("handler request")
        assert sorted(hit.path for hit in hits) == sorted(FILES)  # no draft holds "handler"
        assert notes == []
        await sync(repo, "r")  # the draft's version is in no view: it goes
        assert not store.drafting


def test_a_draft_is_found_by_what_its_text_holds_in_any_case_and_any_script(tmp_path):
    store = Store(tmp_path / "index")
    text = "Grüße aus Köln\nnaïve_café(1)\n"
    store.write_drafts([Draft("r", "a.txt", "4" * 40, "text", text)])
    store.commit()
    read = texts({("r", "a.txt"): text})
    assert found(store, r"naïve_caf[é]\(1", read) == [("a.txt", 2, "")]
    hits = search_regex(store, [Substring("KÖLN", case_sensitive=False)], Filters(), 10, case_sensitive=False, read_draft=read)
    assert [(hit.line, hit.column) for hit in hits.hits] == [(1, 11)]
    assert found(store, "Köln!", read) == []
