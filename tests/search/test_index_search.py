from __future__ import annotations

import hashlib
import os
import shutil

import trio
import trio_parallel

from codeweir.index.store import Store
from codeweir.protocol_params import SearchParams
from codeweir.records import Chunk, FileRecord
from codeweir.search.filters import Filters, request_filters, visible
from codeweir.search.index_search import IndexSearch, SearchWorkers, read_draft_text
from codeweir.search.query import parse_query
from tests.gitrepo import make_repo


def record(path: str, name: str) -> FileRecord:
    body = f"def {name}(text):\n    return text\n"
    chunk = Chunk(1, 2, 0, len(body), name, "function", name, body)
    digest = hashlib.sha1(f"{path}{name}".encode()).hexdigest()
    return FileRecord("proj", path, digest, "python", (chunk,), (digest[:32],))


def search_of(store: Store, text: str, mode: str = "lexical") -> IndexSearch:
    query, params = parse_query(text), SearchParams(query=text, mode=mode)
    filters = visible(store, request_filters(query, params))
    return IndexSearch(str(store.read_directory), store.index_opened, store.commits, mode, query, params, filters)


async def found(workers: SearchWorkers, store: Store, text: str, mode: str = "lexical") -> list[str]:
    hits, _ = await workers.run(search_of(store, text, mode))
    return sorted(hit.path for hit in hits)


async def test_a_worker_process_answers_from_the_last_commit_of_the_index_the_daemon_writes(tmp_path):
    store = Store(tmp_path / "index")
    store.write_file(record("alpha.py", "parse_alpha"))
    store.commit()
    async with trio_parallel.open_worker_context() as context:
        workers = SearchWorkers(context, trio.CapacityLimiter(1))
        assert await context.run_sync(os.getpid) != os.getpid()
        assert await found(workers, store, "parse_alpha") == ["alpha.py"]
        assert await found(workers, store, "sym:parse_alpha", "symbol") == ["alpha.py"]
        store.write_file(record("beta.py", "parse_beta"))
        assert await found(workers, store, "parse_beta") == []  # not committed yet
        store.commit()
        assert await found(workers, store, "parse_beta") == ["beta.py"]
    store.close()


async def test_a_worker_reads_the_new_index_once_another_has_taken_the_directory(tmp_path):
    first = Store(tmp_path / "index")
    first.write_file(record("alpha.py", "parse_alpha"))
    first.commit()
    async with trio_parallel.open_worker_context() as context:
        workers = SearchWorkers(context, trio.CapacityLimiter(1))
        assert await found(workers, first, "parse_alpha") == ["alpha.py"]
        first.close()
        shutil.rmtree(tmp_path / "index")
        second = Store(tmp_path / "index")
        second.write_file(record("beta.py", "parse_beta"))
        second.commit()
        assert second.index_opened != first.index_opened
        assert await found(workers, second, "parse_alpha") == []
        assert await found(workers, second, "parse_beta") == ["beta.py"]
    second.close()


async def test_a_filter_the_daemon_worked_out_narrows_the_workers_search(tmp_path):
    store = Store(tmp_path / "index")
    store.write_file(record("src/alpha.py", "parse_alpha"))
    store.write_file(record("tests/alpha_test.py", "parse_alpha"))
    store.commit()
    search = search_of(store, "parse_alpha path:src/**")
    assert search.filters != Filters()
    async with trio_parallel.open_worker_context() as context:
        hits, _ = await SearchWorkers(context, trio.CapacityLimiter(1)).run(search)
    assert [hit.path for hit in hits] == ["src/alpha.py"]
    store.close()


def test_a_drafts_file_is_read_as_it_is_now_and_none_that_is_gone_or_of_no_configured_repository(tmp_path):
    repo = make_repo(tmp_path / "r", {"src/mod0.py": "x = 0\n"})
    repos = {"r": repo.config("r")}
    assert read_draft_text(repos, "r", "src/mod0.py") == "x = 0"
    assert read_draft_text(repos, "other", "src/mod0.py") is None
    repo.remove("src/mod0.py")
    assert read_draft_text(repos, "r", "src/mod0.py") is None
