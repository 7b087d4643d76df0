"""Commit history: real git repositories walked with pygit2, indexed in a real Tantivy index."""

import subprocess
from datetime import UTC, datetime

import numpy as np
import pytest
import trio

from codeweir import protocol
from codeweir.config import parse_config
from codeweir.embedded_text import commit_text, content_hash
from codeweir.errors import RepoError
from codeweir.git.history import plan_walk, walk_commits
from codeweir.index.membership import MAIN
from codeweir.index.store import Store
from codeweir.index.vectors import VectorStore
from codeweir.search.commits import (
    CommitFilters,
    CommitVisibility,
    commit_visibility,
    search_commits,
    search_commits_by_meaning,
)
from codeweir.search.query import parse_query
from codeweir.service.daemon import run_daemon
from tests.gitrepo import make_repo
from tests.index_reading import commits_of
from tests.service.test_daemon import Conn


def epoch(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp())


def commit(repo, message: str, files: dict, *, author="Test Author <author@example.com>", date="2024-01-01T00:00:00Z"):
    repo.write_files(files)
    repo.git("add", "-A")
    repo.git("commit", "-q", "--allow-empty", "-m", message, f"--author={author}", f"--date={date}")
    return repo.head()


@pytest.fixture
def history(tmp_path):
    repo = make_repo(tmp_path / "r")
    shas = [
        commit(repo, "Initial import", {"a.py": "1\n", "docs/x.md": "# x\n"}, date="2024-01-10T00:00:00Z"),
        commit(repo, "Fix race in the scheduler\n\nThe lock was taken twice.", {"sched/run.py": "2\n"},
               author="Alice Smith <alice@example.org>", date="2024-03-05T12:00:00Z"),
        commit(repo, "Add parse_duration helper", {"utils/time.py": "3\n", "a.py": "4\n"}, date="2024-06-01T00:00:00Z"),
    ]  # fmt: skip
    return repo, shas


def walk_all(repo_config, head, since=None, batch=500):
    return [record for records in walk_commits(repo_config, head, since, batch) for record in records]


def test_a_walk_gives_every_commit_newest_first_with_what_it_changed(history):
    repo, shas = history
    records = walk_all(repo.config(), repo.head())
    assert [r.sha for r in records] == shas[::-1]
    fix = records[1]
    assert fix.author == "Alice Smith <alice@example.org>" and fix.date == epoch(2024, 3, 5, 12)
    assert fix.message == "Fix race in the scheduler\n\nThe lock was taken twice." and fix.paths == ("sched/run.py",)
    assert set(records[0].paths) == {"a.py", "utils/time.py"}
    assert set(records[2].paths) == {"a.py", "docs/x.md"}  # a root commit: everything it added


def test_commits_come_in_batches(history):
    repo, shas = history
    assert [len(batch) for batch in walk_commits(repo.config(), repo.head(), None, batch=2)] == [2, 1]


def test_a_resync_walks_only_the_new_commits(history):
    repo, shas = history
    plan = plan_walk(repo.config(), shas[-1])
    assert (plan.head, plan.since, plan.rewritten) == (shas[-1], shas[-1], False)
    new = commit(repo, "Later work", {"b.py": "5\n"})
    plan = plan_walk(repo.config(), shas[-1])
    assert (plan.head, plan.since, plan.rewritten) == (new, shas[-1], False)
    assert [r.sha for r in walk_all(repo.config(), plan.head, plan.since)] == [new]


def test_a_rewritten_history_is_walked_again_from_scratch(history):
    repo, shas = history
    repo.git("commit", "-q", "--amend", "-m", "Add parse_duration helpers")
    plan = plan_walk(repo.config(), shas[-1])
    assert plan.rewritten and plan.since is None
    assert len(walk_all(repo.config(), plan.head, plan.since)) == 3


def test_an_unborn_branch_has_no_commits(tmp_path):
    repo = make_repo(tmp_path / "empty")
    plan = plan_walk(repo.config(), None)
    assert plan.head == "" and walk_all(repo.config(), plan.head) == []


def test_a_bare_repository_is_walked_from_its_ref(history, tmp_path):
    repo, shas = history
    bare = repo.clone_bare(tmp_path / "bare.git")
    assert plan_walk(bare.config(ref="main"), None).head == shas[-1]
    with pytest.raises(RepoError, match="does not name a commit"):
        plan_walk(bare.config(ref="nope"), None)


def test_a_long_history_is_walked_in_bounded_batches(tmp_path):
    repo = make_repo(tmp_path / "long")
    n = 3000
    stream = "".join(
        f"commit refs/heads/main\ncommitter C <c@x> {1_700_000_000 + i} +0000\ndata {len(f'c{i}')}\nc{i}\n"
        f"M 100644 inline f.txt\ndata {len(str(i))}\n{i}\n\n"
        for i in range(n)
    )
    subprocess.run(["git", "-C", str(repo.root), "fast-import", "--quiet"], input=stream.encode(), check=True)
    sizes = [len(batch) for batch in walk_commits(repo.config(), repo.head(), None, batch=256)]
    assert sum(sizes) == n and max(sizes) == 256


# -- the index ------------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path, history):
    repo, _ = history
    store = Store(tmp_path / "index")
    store.write_commits("r", walk_all(repo.config(), repo.head()))
    store.commit()
    return store


def find(store, text="", **filters):
    return [h.summary for h in search_commits(store, text, CommitFilters(**filters), 10)]


def test_commits_are_found_by_the_words_of_their_messages(store):
    assert find(store, "race") == ["Fix race in the scheduler"]
    assert find(store, "lock twice") == ["Fix race in the scheduler"]
    assert find(store, "parse duration") == ["Add parse_duration helper"]


def test_commits_are_found_by_changed_paths_author_and_sha(store, history):
    _, shas = history
    assert find(store, "sched") == ["Fix race in the scheduler"]
    assert find(store, path="utils/**") == ["Add parse_duration helper"]
    assert find(store, shas[0][:8]) == ["Initial import"]
    assert find(store, authors=("alice",)) == ["Fix race in the scheduler"]
    assert find(store, not_authors=("alice",)) == ["Add parse_duration helper", "Initial import"]


def test_without_words_commits_come_newest_first_and_dates_filter(store):
    assert find(store) == ["Add parse_duration helper", "Fix race in the scheduler", "Initial import"]
    assert find(store, after=epoch(2024, 3, 5, 12)) == ["Add parse_duration helper", "Fix race in the scheduler"]
    assert find(store, before=epoch(2024, 3, 5, 12)) == ["Initial import"]
    assert find(store, after=epoch(2024, 2, 1), before=epoch(2024, 5, 1)) == ["Fix race in the scheduler"]


def test_a_commit_hit_is_flat_on_the_wire(store, history):
    _, shas = history
    (hit,) = search_commits(store, "race", CommitFilters(), 10)
    assert protocol.converter.unstructure(hit) == {
        "repo": "r",
        "sha": shas[1],
        "author": "Alice Smith <alice@example.org>",
        "date": "2024-03-05T12:00:00+00:00",
        "summary": "Fix race in the scheduler",
        "paths": ["sched/run.py"],
        "score": hit.score,
        "snippet": "Fix race in the scheduler\n\nThe lock was taken twice",  # tantivy ends a snippet at a word
        "matches": [[4, 8]],  # "race": raw text and offsets, never markup
    }


def test_writing_a_commit_again_replaces_it(store, history):
    repo, _ = history
    store.write_commits("r", walk_all(repo.config(), repo.head()))
    store.commit()
    assert len(find(store)) == 3


def test_deleting_a_repositorys_commits(store):
    store.delete_commits("r")
    store.commit()
    assert find(store) == []


def test_each_commit_is_stored_with_the_vector_key_of_its_message(store, history):
    _, shas = history
    stored = {c.sha: c for c in commits_of(store, "r")}
    assert stored[shas[0]].content_hash == content_hash(commit_text("Initial import"))


# -- by ref --------------------------------------------------------------------------------------


@pytest.fixture
def branched(tmp_path, history):
    """The history on main, a release branch from its first commit with a fix of its own, and
    main moved on; indexed from both views' commits, as a sync of a repository with refs is."""
    repo, shas = history
    release = commit_on(repo, "release", shas[0], "Backport the race fix to the release", {"sched/run.py": "2b\n"})
    tip = commit(repo, "Main moves on after the release", {"b.py": "5\n"}, date="2024-07-01T00:00:00Z")
    store = Store(tmp_path / "index")
    store.write_commits("r", walk_all(repo.config(), tip))
    store.write_commits("r", walk_all(repo.config(), release, tip))
    store.set_member("r", MAIN, "a.py", repo.git("rev-parse", "main:a.py"))
    store.set_member("r", "release", "a.py", repo.git("rev-parse", "release:a.py"))
    store.set_repo_meta("r", {"views": {MAIN: tip, "release": release}})
    store.commit()
    return repo, store


def commit_on(repo, branch: str, start: str, message: str, files: dict) -> str:
    repo.git("checkout", "-q", "-b", branch, start)
    sha = commit(repo, message, files, date="2024-02-01T00:00:00Z")
    repo.git("checkout", "-q", "main")
    return sha


def by_ref(store, git_repo, text="", **filters):
    wanted = commit_visibility(store, CommitFilters(**filters), lambda name: git_repo.config(name) if name == "r" else None)
    return [h.summary for h in search_commits(store, text, wanted, 10)]


MAIN_HISTORY = ["Main moves on after the release", "Add parse_duration helper", "Fix race in the scheduler", "Initial import"]


def test_without_ref_commit_search_sees_the_history_of_the_main_view_only(branched):
    repo, store = branched
    assert by_ref(store, repo) == MAIN_HISTORY
    assert by_ref(store, repo, "race") == ["Fix race in the scheduler"]


def test_with_ref_commit_search_sees_the_commits_reachable_from_that_ref(branched):
    repo, store = branched
    assert by_ref(store, repo, refs=("release",)) == ["Backport the race fix to the release", "Initial import"]
    assert by_ref(store, repo, "race", refs=("release",)) == ["Backport the race fix to the release"]


def test_a_ref_the_repository_lacks_leaves_out_its_whole_history(branched):
    repo, store = branched
    assert by_ref(store, repo, refs=("v9",)) == []
    assert by_ref(store, repo, repo="r", refs=("v9",)) == []


def test_commit_refs_merge_from_the_query_and_the_request():
    filters = CommitFilters.of(parse_query("fix ref:release"), repo=None, path=None)
    assert filters.refs == ("release",)
    assert CommitFilters.of(parse_query("fix"), repo=None, path=None, refs=("release",)).refs == ("release",)


def test_a_repository_with_only_its_main_view_is_searched_without_a_walk(store, history):
    repo, shas = history
    store.set_member("r", MAIN, "a.py", repo.git("rev-parse", "main:a.py"))
    store.set_repo_meta("r", {"views": {MAIN: shas[-1]}})
    store.commit()
    unwalkable = commit_visibility(store, CommitFilters(), lambda name: None)
    assert unwalkable.visibility == CommitVisibility()
    assert len(search_commits(store, "", unwalkable, 10)) == 3


def test_commit_search_by_meaning_sees_only_the_commits_of_the_views_searched(tmp_path, branched):
    repo, store = branched
    vectors = VectorStore(tmp_path / "vectors", "m", 8)
    stored = commits_of(store, "r")
    rng = np.random.default_rng(7)
    rows = rng.standard_normal((len(stored), 8)).astype(np.float32)
    vectors.add([c.content_hash for c in stored], rows / np.linalg.norm(rows, axis=1, keepdims=True))
    for refs, seen in (((), MAIN_HISTORY), (("release",), ["Backport the race fix to the release", "Initial import"])):
        wanted = commit_visibility(store, CommitFilters(refs=refs), lambda name: repo.config(name))
        hits = search_commits_by_meaning(store, vectors, rows[0] / np.linalg.norm(rows[0]), wanted, 10)
        assert sorted(h.summary for h in hits) == sorted(seen)


# -- through the daemon ----------------------------------------------------------------------------


@pytest.fixture
async def served(tmp_path, history, nursery):
    """The history as a bare repository indexed at its ref (polled every 30 s: only the test's
    own syncs index it)."""
    repo, _ = history
    bare = repo.clone_bare(tmp_path / "proj.git")
    config = parse_config(
        {
            "state_dir": str(tmp_path / "state"),
            "socket": str(tmp_path / "run" / "codeweir.sock"),
            "repositories": [{"name": "proj", "path": str(bare.root), "ref": "main"}],
            "limits": {"files_in_flight": 2, "parse_workers": 1},
            "model": {"enabled": False},
        },
        base_dir=tmp_path,
    )
    daemon = await nursery.start(run_daemon, config)
    async with await trio.open_unix_socket(config.socket) as stream:
        yield Conn(stream), bare
    daemon.shutdown()


async def sync(conn) -> dict:
    reply = await conn.call("sync", {"repo": "proj", "wait": True})
    (job,) = reply["result"]["jobs"]
    assert job["state"] == "completed", job
    return job["counts"]


async def test_a_sync_indexes_the_history_and_a_resync_only_new_commits(served, history):
    conn, bare = served
    repo, _ = history
    await sync(conn)  # the daemon's first sync may have indexed them already
    assert (await conn.call("wait", {"repo": "proj"}))["result"]["done"]
    everything = await conn.call("search", {"query": "author:example", "mode": "commits"})
    assert len(everything["result"]["results"]) == 3
    assert (await sync(conn))["commits"] == 0
    commit(repo, "Speed up the scheduler", {"sched/run.py": "6\n"}, author="Bob <bob@example.org>", date="2024-07-01T00:00:00Z")
    repo.git("push", "-q", str(bare.root), "main")
    assert (await sync(conn))["commits"] == 1
    reply = await conn.call("search", {"query": "scheduler -author:bob", "mode": "commits"})
    assert [h["summary"] for h in reply["result"]["results"]] == ["Fix race in the scheduler"]
    reply = await conn.call("search", {"query": "after:2024-06-15", "mode": "commits"})
    assert [h["summary"] for h in reply["result"]["results"]] == ["Speed up the scheduler"]


async def test_a_rewritten_history_replaces_the_indexed_one(served, history):
    conn, bare = served
    repo, _ = history
    await sync(conn)
    repo.git("commit", "-q", "--amend", "-m", "Add parse_duration helpers, amended")
    repo.git("push", "-q", "--force", str(bare.root), "main")
    assert (await sync(conn))["commits"] == 3
    reply = await conn.call("search", {"query": "parse duration", "mode": "commits"})
    assert [h["summary"] for h in reply["result"]["results"]] == ["Add parse_duration helpers, amended"]
