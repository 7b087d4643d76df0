import pytest
from hypothesis import given
from hypothesis import strategies as st

from codeweir.globs import PathScope
from codeweir.ingest.plan import Plan, plan_sync, plan_views
from codeweir.records import TrackedFile

paths = st.sampled_from(["a.py", "b.py", "src/c.py", "src/d/e.py", "src/d/f.go", "docs/g.md", "h"])
blob_ids = st.sampled_from(["1" * 40, "2" * 40, "3" * 40])
indexed_maps = st.dictionaries(paths, blob_ids)
current_lists = st.dictionaries(paths, blob_ids).map(lambda files: [TrackedFile(p, b, len(p)) for p, b in files.items()])
path_sets = st.sets(st.sampled_from(["a.py", "src", "src/d", "docs/", "missing", "src/c.py"]))


def f(path: str, blob: str = "1" * 40) -> TrackedFile:
    return TrackedFile(path, blob, 1)


@given(indexed_maps, current_lists)
def test_every_current_file_is_indexed_or_unchanged_and_changed_ones_are_indexed(indexed, current) -> None:
    plan = plan_sync(indexed, current)
    assert len(plan.index) + plan.unchanged == len(current)
    assert {x.path for x in plan.index} == {x.path for x in current if indexed.get(x.path) != x.blob}
    assert [x.path for x in plan.index] == sorted(x.path for x in plan.index)


@given(indexed_maps, current_lists)
def test_delete_is_indexed_paths_minus_current_paths(indexed, current) -> None:
    plan = plan_sync(indexed, current)
    assert plan.delete == tuple(sorted(set(indexed) - {x.path for x in current}))


@given(indexed_maps, current_lists)
def test_full_reindexes_every_current_file(indexed, current) -> None:
    plan = plan_sync(indexed, current, full=True)
    assert [x.path for x in plan.index] == sorted(x.path for x in current)
    assert plan.unchanged == 0
    assert plan.delete == plan_sync(indexed, current).delete


@given(indexed_maps, current_lists, path_sets)
def test_only_paths_restricts_index_and_delete_to_those_paths(indexed, current, only) -> None:
    partial = plan_sync(indexed, current, only_paths=only)
    whole = plan_sync(indexed, current)
    scope = PathScope.of(only)
    assert partial.index == tuple(x for x in whole.index if x.path in scope)
    assert partial.delete == tuple(p for p in whole.delete if p in scope)
    assert partial.unchanged == sum(1 for x in current if x.path in scope) - len(partial.index)


def test_nothing_changed_plans_nothing() -> None:
    current = [f("a.py"), f("b.py")]
    assert plan_sync({"a.py": "1" * 40, "b.py": "1" * 40}, current) == Plan((), (), 2)


def test_changed_blob_new_file_and_deleted_file() -> None:
    plan = plan_sync({"a.py": "1" * 40, "gone.py": "1" * 40}, [f("b.py"), f("a.py", "2" * 40)])
    assert plan == Plan((f("a.py", "2" * 40), f("b.py")), ("gone.py",), 0)


def test_only_paths_directory_deletes_files_below_it() -> None:
    indexed = {"src/a.py": "1" * 40, "src/sub/b.py": "1" * 40, "srcx.py": "1" * 40}
    assert plan_sync(indexed, [], only_paths=["src"]).delete == ("src/a.py", "src/sub/b.py")


def test_a_path_listed_twice_in_current_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match="more than once: a.py"):
        plan_sync({}, [f("a.py"), f("b.py"), f("a.py", "2" * 40)])


view_names = st.sampled_from(["", "v1", "v2"])


@given(st.dictionaries(view_names, indexed_maps), st.dictionaries(view_names, current_lists), st.booleans())
def test_views_plan_parses_each_new_version_once_and_only_adopts_versions_the_index_has(indexed, current, full) -> None:
    plan = plan_views(indexed, current, full=full)
    existing = {(p, b) for files in indexed.values() for p, b in files.items()}
    parsed = [(v.file.path, v.file.blob) for v in plan.parse]
    assert len(parsed) == len(set(parsed))
    assert full or not set(parsed) & existing
    assert all(version in existing for _, files in plan.adopt for version in files) and not (full and plan.adopt)
    for version in plan.parse:  # read from a ref's tree where one holds it, the worktree only when none does
        assert version.read_from in version.views and (version.read_from or version.views == ("",))
    # Afterwards every view holds exactly its current files.
    after = {view: dict(indexed.get(view, {})) for view in current}
    for view, files in plan.adopt:
        after[view].update(files)
    for version in plan.parse:
        for view in version.views:
            after[view][version.file.path] = version.file.blob
    for view, path in plan.leave:
        del after[view][path]
    assert after == {view: {f.path: f.blob for f in files} for view, files in current.items()}
