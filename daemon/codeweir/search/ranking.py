"""Ranking, pure: fusing rankings (reciprocal rank fusion, hybrid search's lists and
constants), where a chunk sits (source, tool code, tests...), and the order of definitions found
by name (`rank_definitions`).

Hybrid search fuses three rankings: chunks with every query word (lexical), chunks by
meaning (semantic), and definitions named with the query's words. Measured by
bench/bench_retrieval.py on django (docstring sentences as queries, and function names): fusing
lexical and semantic alone at k = 60 ranked below semantic on the sentences (lexical, needing
every word, finds nothing useful for them) and below lexical on the names. A sentence usually
names what its function is called ("Close the connection" -> `close`), which the third list
catches; a small k lets each list's first hits lead.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable, Sequence
from itertools import groupby
from pathlib import PurePosixPath
from typing import Any, TypeVar

import attrs

from codeweir.facets import TOOL_WEIGHT
from codeweir.protocol_results import SearchHit

RRF_K = 60
HYBRID_RRF_K = 5
# lexical, semantic, definitions: names share words with many queries, so they sway the order less.
HYBRID_WEIGHTS = (1.0, 1.0, 0.75)
Ranked = TypeVar("Ranked", bound=attrs.AttrsInstance)  # a hit: a chunk's, or a commit's


def fuse_hybrid(
    lexical: Sequence[SearchHit], semantic: Sequence[SearchHit], definitions: Sequence[SearchHit], limit: int
) -> list[SearchHit]:
    """Hybrid search's order: see the module's docstring for why these lists and constants."""
    return reciprocal_rank_fusion([lexical, semantic, definitions], limit, k=HYBRID_RRF_K, weights=HYBRID_WEIGHTS)


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[Ranked]],
    limit: int,
    k: int = RRF_K,
    identity: Callable[[Ranked], Hashable] = lambda hit: (hit.repo, hit.path, hit.blob, hit.start_line),  # type: ignore[attr-defined]
    weights: Sequence[float] | None = None,
) -> list[Ranked]:
    """Fuse ranked lists: each hit (the same one by `identity`) scores sum(weight / (k + rank))
    over the lists (weights 1 unless given); the first list's hit object wins."""
    scores: dict[Hashable, float] = {}
    best: dict[Hashable, Ranked] = {}
    for ranking, weight in zip(rankings, weights or [1.0] * len(rankings), strict=True):
        for rank, hit in enumerate(ranking, start=1):
            key = identity(hit)
            scores[key] = scores.get(key, 0.0) + weight / (k + rank)
            best.setdefault(key, hit)
    order = sorted(scores, key=lambda key: -scores[key])[:limit]
    return [attrs.evolve(best[key], score=round(scores[key], 6)) for key in order]  # type: ignore[misc]


# -- definitions by name (pure) ------------------------------------------------------------

TIERS = ("exact", "prefix", "fuzzy")  # how the name matched: equal (in any case), a prefix, a near miss
PUBLIC, INTERNAL, PRIVATE = 0, 1, 2


def publicity(language: str, path: str, module: Sequence[str], symbol_path: str, symbol: str) -> int:
    """PUBLIC, INTERNAL (Go: exported from an `internal/` package) or PRIVATE: Go names are
    exported when capitalised (a method also needs an exported type); elsewhere a name, an
    enclosing definition or a module starting with `_` (dunders aside) is private."""
    enclosing = symbol_path[: len(symbol_path) - len(symbol)].rstrip(".").split(".")
    if language == "go":
        owner = enclosing[-1] if enclosing[-1] else "X"
        if not (symbol[:1].isupper() and owner[:1].isupper()):
            return PRIVATE
        return INTERNAL if "internal" in PurePosixPath(path).parts[:-1] else PUBLIC
    names = (*module, *enclosing, symbol)
    private = any(n[:1] in ("_", "#") and not (n.startswith("__") and n.endswith("__")) for n in names if n)
    return PRIVATE if private else PUBLIC


# A Python method read as an attribute: `@property`, `@cached_property`, `@x.setter`...
_ATTRIBUTE_DECORATOR = re.compile(r"\s*@(\w+\.)*(property|cached_property|classproperty|setter|getter|deleter)\b")


def is_attribute(language: str, kind: str, symbol: str, content: str) -> bool:
    """Whether a definition is an attribute of its class (a property) rather than a callable."""
    if language != "python" or kind != "method":
        return False
    definition = re.compile(rf"\s*(async\s+)?def\s+{re.escape(symbol)}\b")
    decorators: list[str] = []
    for line in content.split("\n"):
        if definition.match(line):
            return any(_ATTRIBUTE_DECORATOR.match(d) for d in decorators)
        decorators.append(line)
    return False


@attrs.frozen
class Definition:
    """A symbol search's candidate, with what ranks it; `hit` carries it through unread."""

    tier: int  # index in TIERS
    exact_case: bool  # the name as typed, capitals and all
    attribute: bool  # a property, not the definition of a callable or type
    publicity: int  # PUBLIC, INTERNAL or PRIVATE
    weight: float  # source_weight
    repo: str
    path: str
    start_line: int
    hit: Any = attrs.field(eq=False, default=None)

    @property
    def key(self) -> tuple[Any, ...]:
        """The order before references: name match, case, definition over attribute, public over
        private, source over tool code, tests, vendored and generated code."""
        return (self.tier, not self.exact_case, self.attribute, self.publicity, -self.weight)

    @property
    def place(self) -> tuple[str, str, int]:
        return (self.repo, self.path, self.start_line)


# How many of a group of equals have their references counted; the rest follow in place order.
MAX_COUNTED = 500


def rank_definitions(
    candidates: Iterable[Definition], limit: int, references: Callable[[Definition], int]
) -> list[tuple[Definition, int]]:
    """The first `limit` candidates, each with its reference count, in order: by `key`, then the
    most referenced first, then by repository, path and line. References are counted only for the
    groups of equals that reach into the first `limit`."""
    ordered = sorted(candidates, key=lambda d: (d.key, d.place))
    ranked: list[tuple[Definition, int]] = []
    for _, equals in groupby(ordered, key=lambda d: d.key):
        if len(ranked) >= limit:
            break
        group = list(equals)
        counted = [(d, references(d) if i < MAX_COUNTED else 0) for i, d in enumerate(group)]
        ranked.extend(sorted(counted, key=lambda pair: -pair[1]))  # stable: place order among ties
    return ranked[:limit]


# The parts of a symbol hit's score, each worth more than all the parts below it together, so
# the score orders hits as `rank_definitions` does and `explain` shows why.
NAME_SCORES = (120.0, 60.0, 0.0)  # exact, prefix, fuzzy
CASE_SCORE = 30.0
DEFINITION_SCORE = 15.0
PUBLICITY_SCORES = (10.0, 5.0, 0.0)
WEIGHT_SCORES = {2.0: 4.0, TOOL_WEIGHT: 3.0, 1.4: 2.0, 1.2: 1.0, 1.0: 0.0}


def definition_score(d: Definition, references: int) -> dict[str, float]:
    """The parts of a symbol hit's score (their sum), and the reference count they came from."""
    return {
        "name": NAME_SCORES[d.tier],
        "case": CASE_SCORE if d.exact_case else 0.0,
        "definition": 0.0 if d.attribute else DEFINITION_SCORE,
        "public": PUBLICITY_SCORES[d.publicity],
        "source": WEIGHT_SCORES.get(d.weight, 0.0),
        "references": min(round(references / (references + 10), 4), 0.9999),  # below 1
    }
