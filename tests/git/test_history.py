"""History walks for searches by ref: real git repositories, branches diverging."""

import pytest

from codeweir.git.history import reachable_only_from
from tests.gitrepo import make_repo


@pytest.fixture
def branches(tmp_path):
    """main: a - b - d; release: a - c (branched at a)."""
    repo = make_repo(tmp_path / "r", {"a.py": "a\n"})
    a = repo.head()
    repo.write("b.py", "b\n")
    b = repo.commit("b")
    repo.git("checkout", "-q", "-b", "release", a)
    repo.write("c.py", "c\n")
    c = repo.commit("c")
    repo.git("checkout", "-q", "main")
    repo.write("d.py", "d\n")
    d = repo.commit("d")
    return repo, {"a": a, "b": b, "c": c, "d": d}


def test_the_commits_only_other_tips_reach_are_those_not_reachable_from_the_wanted_ones(branches):
    repo, sha = branches
    assert reachable_only_from(repo.config(), [sha["c"]], [sha["d"]]) == {sha["c"]}
    assert reachable_only_from(repo.config(), [sha["d"]], [sha["c"]]) == {sha["b"], sha["d"]}
    assert reachable_only_from(repo.config(), [sha["c"], sha["d"]], [sha["b"]]) == {sha["c"], sha["d"]}
    assert reachable_only_from(repo.config(), [sha["b"]], [sha["d"]]) == set()


def test_no_wanted_tip_leaves_out_all_the_others_reach_and_a_missing_tip_is_passed_over(branches):
    repo, sha = branches
    missing = "0" * 40
    assert reachable_only_from(repo.config(), [sha["c"]], ["", missing]) == {sha["a"], sha["c"]}
    assert reachable_only_from(repo.config(), [missing, ""], [sha["d"]]) == set()


def test_a_walk_is_cached_per_set_of_tips(branches):
    repo, sha = branches
    first = reachable_only_from(repo.config(), [sha["c"]], [sha["d"]])
    assert reachable_only_from(repo.config(), [sha["c"]], [sha["d"]]) is first
    assert reachable_only_from(repo.config(), [sha["c"], sha["c"]], [sha["d"]]) is first
