"""ranking: reciprocal rank fusion, hybrid search's order, where a chunk sits, and the order of
definitions found by name."""

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from codeweir.facets import TOOL_WEIGHT, is_tool_code, lexical_factor, source_weight
from codeweir.protocol_results import SearchHit
from codeweir.search.ranking import (
    INTERNAL,
    PRIVATE,
    PUBLIC,
    Definition,
    definition_score,
    fuse_hybrid,
    is_attribute,
    publicity,
    rank_definitions,
    reciprocal_rank_fusion,
)


def _hit(path: str) -> SearchHit:
    return SearchHit(
        repo="r", path=path, start_line=1, end_line=2, kind="function", language="python", score=0.0, snippet="", blob="b"
    )


def _paths(hits: list[SearchHit]) -> list[str]:
    return [h.path for h in hits]


def test_rrf_rewards_agreement_between_rankings():
    fused = reciprocal_rank_fusion([[_hit("a"), _hit("b"), _hit("c")], [_hit("c"), _hit("b"), _hit("d")]], 4)
    # c: 1/61 + 1/63, b: 2/62, a: 1/61, d: 1/63.
    assert [h.path for h in fused] == ["c", "b", "a", "d"]
    assert fused[1].score == pytest.approx(2 / 62, abs=1e-6)  # scores are rounded to 6 places


def test_a_lighter_ranking_sways_the_fused_order_less():
    heavy, light = [_hit("a"), _hit("b")], [_hit("b"), _hit("a")]
    assert _paths(reciprocal_rank_fusion([heavy, light], 2, k=5, weights=(1.0, 0.5))) == ["a", "b"]
    assert _paths(reciprocal_rank_fusion([heavy, light], 2, k=5, weights=(0.5, 1.0))) == ["b", "a"]


def test_fusion_keeps_two_versions_of_one_file_apart():
    main, release = _hit("a"), attrs.evolve(_hit("a"), blob="b2")
    fused = reciprocal_rank_fusion([[main, release], [release]], 5)
    assert [h.blob for h in fused] == ["b2", "b"]


def test_rankings_and_weights_must_pair_up():
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([[_hit("a")], [_hit("b")]], 2, weights=(1.0,))


@given(st.lists(st.lists(st.sampled_from("abcdefgh"), unique=True, max_size=6), min_size=1, max_size=3))
def test_fusion_lists_each_hit_once_best_first(rankings):
    fused = fuse_hybrid(*([[_hit(p) for p in r] for r in rankings] + [[]] * (3 - len(rankings))), limit=20)
    assert sorted(_paths(fused)) == sorted({p for r in rankings for p in r})
    assert [h.score for h in fused] == sorted((h.score for h in fused), reverse=True)


def test_a_hit_first_in_two_rankings_leads_the_hybrid_order():
    fused = fuse_hybrid([_hit("lexical"), _hit("both")], [_hit("both"), _hit("semantic")], [], limit=3)
    assert _paths(fused)[0] == "both"


# -- where a chunk sits ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, tool",
    [
        ("cmd/go/main.go", True),
        ("src/cmd/compile/internal/noder/reader.go", True),
        ("scripts/manage_translations.py", True),
        ("django/core/management/commands/runserver.py", False),  # a library's own commands
        ("go/build/build.go", False),
        ("bufio/bufio.go", False),
    ],
)
def test_tool_code_is_a_repositorys_commands_scripts_and_benchmarks(path, tool):
    assert is_tool_code(path) is tool


def test_source_outweighs_tool_code_which_outweighs_tests_vendored_and_generated_code():
    weights = [
        source_weight((), "bufio/bufio.go"),
        source_weight((), "cmd/go/main.go"),
        source_weight(("test",), "cmd/go/go_test.go"),
        source_weight(("vendored",), "vendor/golang.org/x/net/http2/hpack/hpack.go"),
        source_weight(("minified",), "static/app.min.js"),
    ]
    assert weights == [2.0, TOOL_WEIGHT, 1.4, 1.2, 1.0]
    assert lexical_factor((), "bufio/bufio.go") == 4.0 and lexical_factor(("test",), "x_test.go") == pytest.approx(1.96)


@pytest.mark.parametrize(
    "language, path, module, symbol_path, expected",
    [
        ("go", "bufio/bufio.go", ("bufio",), "NewReader", PUBLIC),
        ("go", "bufio/bufio.go", ("bufio",), "Reader.ReadString", PUBLIC),
        ("go", "internal/pkgbits/decoder.go", ("internal", "pkgbits"), "NewReader", INTERNAL),
        ("go", "internal/pkgbits/decoder.go", ("internal", "pkgbits"), "pkgReader.newReader", PRIVATE),
        ("go", "go/internal/gcimporter/ureader.go", ("go", "internal", "gcimporter"), "pkgReader.NewThing", PRIVATE),
        ("python", "django/db/models/query.py", ("django", "db", "models", "query"), "QuerySet.filter", PUBLIC),
        ("python", "django/db/models/query.py", ("django", "db", "models", "query"), "QuerySet.__init__", PUBLIC),
        ("python", "django/db/models/query.py", ("django", "db", "models", "query"), "QuerySet._filter_or_exclude", PRIVATE),
        ("python", "django/utils/_os.py", ("django", "utils", "_os"), "safe_join", PRIVATE),
    ],
)
def test_public_names_are_exported_or_without_a_leading_underscore(language, path, module, symbol_path, expected):
    assert publicity(language, path, module, symbol_path, symbol_path.rsplit(".", 1)[-1]) == expected


def test_a_python_property_is_an_attribute_and_a_method_is_not():
    prop = "    @property\n    def model(self):\n        return self.__dict__['model']"
    setter = "    # Set the model of the base field too.\n    @model.setter\n    def model(self, model):\n        pass"
    method = "    @classmethod\n    def model(cls):\n        return cls._model"
    assert is_attribute("python", "method", "model", prop) and is_attribute("python", "method", "model", setter)
    assert not is_attribute("python", "method", "model", method)
    assert not is_attribute("go", "method", "model", prop)


# -- definitions by name --------------------------------------------------------------------------


def _definition(path: str, tier: int = 0, exact_case: bool = True, attribute: bool = False, publicity: int = PUBLIC,
                weight: float = 2.0, line: int = 1) -> Definition:  # fmt: skip
    return Definition(tier, exact_case, attribute, publicity, weight, "r", path, line)


def test_definitions_rank_by_name_case_role_publicity_source_references_then_place():
    expected = [
        _definition("a/exact_most_referenced.go"),
        _definition("b/exact_less_referenced.go"),
        _definition("c/exact_same_references.go", line=1),
        _definition("c/exact_same_references.go", line=9),
        _definition("z/exact_test.go", weight=1.4),
        _definition("a/exact_internal.go", publicity=INTERNAL),
        _definition("a/exact_private.go", publicity=PRIVATE),
        _definition("a/exact_attribute.py", attribute=True),
        _definition("a/other_case.go", exact_case=False),
        _definition("a/prefix.go", tier=1),
        _definition("a/fuzzy.go", tier=2),
    ]
    references = {"a/exact_most_referenced.go": 9, "b/exact_less_referenced.go": 5}
    ranked = rank_definitions(reversed(expected), 20, lambda d: references.get(d.path, 1))
    assert [d for d, _ in ranked] == expected
    scores = [sum(definition_score(d, count).values()) for d, count in ranked]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == len(scores) - 1  # the two equals tie


@given(
    st.lists(
        st.tuples(st.integers(0, 2), st.booleans(), st.booleans(), st.integers(0, 2),
                  st.sampled_from([2.0, TOOL_WEIGHT, 1.4, 1.2, 1.0]), st.integers(0, 10_000)),
        min_size=1, max_size=12,
    )
)  # fmt: skip
def test_a_definitions_score_orders_hits_as_the_ranking_does(rows):
    candidates = [_definition(f"p{i}.go", *row[:5]) for i, row in enumerate(rows)]
    references = {f"p{i}.go": row[5] for i, row in enumerate(rows)}
    ranked = rank_definitions(candidates, len(candidates), lambda d: references[d.path])
    scores = [sum(definition_score(d, count).values()) for d, count in ranked]
    assert scores == sorted(scores, reverse=True)


def test_references_are_counted_only_for_the_equals_that_reach_the_limit():
    counted = []
    candidates = [_definition(f"exact{i}.go") for i in range(3)] + [_definition(f"prefix{i}.go", tier=1) for i in range(50)]
    ranked = rank_definitions(candidates, 2, lambda d: counted.append(d.path) or 0)
    assert [d.path for d, _ in ranked] == ["exact0.go", "exact1.go"]
    assert sorted(counted) == ["exact0.go", "exact1.go", "exact2.go"]
