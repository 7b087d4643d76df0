"""What hits and search answers look like as the converter sends them: flat, in field order, optional fields only when set."""

import json

import attrs

from codeweir import protocol, protocol_results
from tests.test_protocol import only_event


def test_a_hit_names_the_refs_holding_its_version():
    hit = protocol_results.SearchHit(repo="r", path="a.go", start_line=1, end_line=2, score=1.0, snippet="x", blob="b")
    assert protocol.converter.unstructure(hit)["refs"] == []
    assert protocol.converter.unstructure(attrs.evolve(hit, refs=("main", "v1")))["refs"] == ["main", "v1"]


def test_hits_carry_facets_and_staleness_and_explain_only_when_asked():
    hit = protocol_results.SearchHit(repo="r", path="a_test.go", start_line=1, end_line=2, score=2.8, snippet="x", blob="b")
    plain = protocol.converter.unstructure(attrs.evolve(hit, facets=("test",), stale=True))
    assert plain["facets"] == ["test"] and plain["stale"] is True and "explain" not in plain
    explained = protocol.converter.unstructure(attrs.evolve(hit, explain={"words": 1.4, "facet": 2.0}))
    assert explained["explain"] == {"words": 1.4, "facet": 2.0}
    assert only_event(protocol.request(1, "search", {"query": "x", "explain": True})).params.explain


def test_a_hit_is_flat_with_its_fields_in_order_and_no_nulls():
    hit = protocol_results.SearchHit(
        repo="r", path="README.md", start_line=1, end_line=3, kind="section", language="markdown", score=1.0,
        snippet="x", blob="b",
    )  # fmt: skip
    exact = attrs.evolve(hit, line=2, column=5, explain={"match": 1.0})
    result = protocol_results.SearchResult(results=(hit, exact), took_ms=1.0, mode="regex")
    plain, matched = json.loads(protocol.response(1, result))["result"]["results"]
    fields = ["repo", "path", "start_line", "end_line", "symbol", "kind", "language", "score", "snippet", "matches", "blob"]
    assert list(plain) == [*fields, "refs", "facets", "stale"]
    assert list(matched) == [*fields, "refs", "line", "column", "facets", "stale", "explain"]
    assert plain["symbol"] == "" and None not in plain.values()


def test_a_commits_result_is_a_list_of_flat_commits():
    commit = protocol_results.CommitHit(
        repo="r", sha="ab12", author="A <a@x>", date="2024-01-01T00:00:00+00:00", summary="Fix", paths=("a.go",),
        score=1.0, snippet="Fix", matches=((0, 3),),
    )  # fmt: skip
    answer = json.loads(protocol.response(1, protocol_results.SearchResult(results=(commit,), took_ms=1.0, mode="commits")))
    assert answer["result"]["results"] == [{**attrs.asdict(commit), "paths": ["a.go"], "matches": [[0, 3]]}]
