"""ARCHITECTURE.md stays true to the package, and the package keeps its shape."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "daemon" / "codeweir"
MAP = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
MAX_CHAIN = 9  # modules in the longest chain of (run-time) imports: cli.main through mcp and client to protocol_params


def _code_map_places() -> list[str]:
    table = MAP.split("## Code map", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    return [name for row in rows for name in re.findall(r"`([\w/.]+)`", row.split("|")[1])]


def test_every_place_in_the_code_map_exists():
    missing = [p for p in _code_map_places() if not (PACKAGE / p).exists()]
    assert missing == []


def test_every_subpackage_and_shared_module_is_in_the_code_map():
    places = set(_code_map_places())
    subpackages = {f"{p.name}/" for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    shared = {p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    assert (subpackages | shared) - places == set()


def test_every_module_path_the_map_names_exists():
    named = set(re.findall(r"`((?:\w+/)?\w+\.py)", MAP))
    assert sorted(p for p in named if not (PACKAGE / p).exists()) == []


def test_every_init_is_empty():
    assert [str(p) for p in PACKAGE.rglob("__init__.py") if p.read_text().strip()] == []


def longest_import_chain() -> tuple[str, ...]:
    graph = grimp.build_graph("codeweir", exclude_type_checking_imports=True)

    @functools.cache
    def longest(module: str) -> tuple[str, ...]:
        below = [longest(m) for m in graph.find_modules_directly_imported_by(module) if m.startswith("codeweir.")]
        return (module, *max(below, key=len, default=()))

    return max((longest(m) for m in graph.modules if m.startswith("codeweir")), key=len)


def test_the_longest_chain_of_imports_is_short():
    chain = longest_import_chain()
    assert len(chain) <= MAX_CHAIN, " -> ".join(chain)
