from hypothesis import given
from hypothesis import strategies as st

from codeweir.index.membership import MAIN, Membership, Visibility, version_key

views = st.sampled_from([MAIN, "v1", "v2"])
paths = st.sampled_from(["a.py", "b.py", "c/d.py"])
blobs = st.sampled_from(["b1", "b2", "b3"])
changes = st.lists(st.tuples(views, paths, st.one_of(st.none(), blobs)), max_size=30)


@given(changes)
def test_a_version_is_reported_gone_exactly_when_no_view_holds_it_any_more(steps):
    membership = Membership()
    held: set[tuple[str, str]] = set()  # versions ever written and not yet reported gone
    for view, path, blob in steps:
        before = membership.written("r", view).get(path)
        gone = membership.set("r", view, path, blob)
        if blob is not None:
            held.add((path, blob))
        if gone is not None:
            assert gone == before and not membership.holds("r", path, gone)
            held.discard((path, gone))
    assert held == {(p, b) for v in (MAIN, "v1", "v2") for p, b in membership.written("r", v).items()}


def test_readers_see_committed_views_only():
    membership = Membership()
    membership.set("r", "v1", "a.py", "b1")
    assert membership.files("r", "v1") == {} and membership.views("r") == []
    membership.commit()
    assert membership.files("r", "v1") == {"a.py": "b1"}
    membership.set("r", "v1", "a.py", None)
    membership.rollback()
    membership.commit()
    assert membership.files("r", "v1") == {"a.py": "b1"}


def test_the_main_view_hides_versions_only_refs_hold_and_a_ref_hides_the_main_views_own():
    membership = Membership({"r": {MAIN: {"a.py": "b1", "b.py": "b2"}, "v1": {"a.py": "b1", "b.py": "b9", "c.py": "b3"}}})
    assert membership.visibility(None) == Visibility(hidden=(version_key("r", "b.py", "b9"), version_key("r", "c.py", "b3")))
    assert membership.visibility("r", ("v1",)) == Visibility(hidden=(version_key("r", "b.py", "b2"),))
    assert membership.visibility(None, (MAIN, "v1")) == Visibility()
    assert membership.holders("r", "a.py", "b1") == (MAIN, "v1")


def test_a_ref_filter_leaves_out_repositories_without_that_ref():
    membership = Membership({"r": {MAIN: {"a.py": "b1"}, "v1": {"a.py": "b2"}}, "s": {MAIN: {"x.py": "b5"}}})
    assert membership.visibility(None, ("v1",)) == Visibility(hidden=(version_key("r", "a.py", "b1"),), repos_without=("s",))
