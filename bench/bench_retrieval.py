"""Retrieval quality of lexical, semantic and hybrid search, on documented functions of a real corpus.

    .venv/bin/python bench/bench_retrieval.py [/work/corpora/django] [--dirs django/db django/utils django/http]
        [--queries 300] [--seed 7] [--models fp32 int8] [--context codeweir|bare|header|words] [--depth 50]

The corpus's HEAD (only --dirs) is exported into a temp git repository. Its documented Python
functions and methods whose docstring's first sentence has at least 5 words (and is no other
function's first sentence) are candidates; a seeded sample of --queries of them has its
docstring blanked in the copy, line numbers kept (the docstring's lines become empty lines,
or `pass` and empty lines where it was the whole body). Each query is that first sentence
(without the query language's `"`, `:` and leading `-`); its target is the chunk of the
function's file whose line range holds the `def` line. A second set, the guard, queries the
names of the sampled functions that no other function shares.

A real daemon indexes the copy with the model enabled and the bench waits until every chunk
is embedded. Each query then runs in each mode through the socket with limit 10; printed
per set and mode: MRR@10, recall@10 and p50 latency. The fusion study takes each query's
lexical and semantic lists --depth deep through the socket and its definitions list (hybrid
search's third) from the stopped daemon's index, and fuses them offline with
semantic.reciprocal_rank_fusion at other constants, weights and depths.

--context swaps what the model sees for a chunk (embed_text.document_text) in the daemon for one
of the alternatives below, to compare them. --models fp32 int8 evaluates both models on the
same queries and prints them side by side, with the embedding rate and the daemon's CPU time
per vector (which other load on the machine changes less than the rate).
"""

from __future__ import annotations

import argparse
import ast
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import attrs

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "daemon"))

from bench_django_index import DEFAULT_MODEL_CACHE, IndexRun, config_extra, index_with_vectors, prebuilt_model  # noqa: E402
from daemon_run import Daemon  # noqa: E402

import codeweir.embedded_text  # noqa: E402
from codeweir.index.store import Store  # noqa: E402
from codeweir.protocol import converter  # noqa: E402
from codeweir.protocol_results import SearchHit  # noqa: E402
from codeweir.search.filters import Filters  # noqa: E402
from codeweir.search.ranking import HYBRID_RRF_K, HYBRID_WEIGHTS, reciprocal_rank_fusion  # noqa: E402
from codeweir.search.semantic import search_definitions  # noqa: E402

MODES = ("lexical", "semantic", "hybrid")
LIMIT = 10
MIN_WORDS = 5
# What the query language would read as syntax (a quote opens a literal, `key:` a filter, a
# leading `-` excludes): a person typing the sentence as a query would leave these out.
QUERY_SYNTAX = re.compile(r"[\"`:]|(?<!\S)-")


def _camel_words(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).replace("_", " ").strip().lower()


def _header_text(*, language: str, symbol_path: str, kind: str, content: str) -> str:
    header = " ".join(part for part in (language, kind, symbol_path) if part)
    return f"{header}\n{content}" if header else content


def _bare_text(*, language: str, symbol_path: str, kind: str, content: str) -> str:
    return content


def _words_text(*, language: str, symbol_path: str, kind: str, content: str) -> str:
    words = " ".join(_camel_words(part) for part in symbol_path.split("."))
    header = " ".join(part for part in (language, kind, words) if part)
    return f"{header}\n{content}" if header else content


# Alternatives to codeweir's own embed_text.document_text: "header" is language, kind and symbol
# path on a line above the content; "words" spells the symbol path as lower-case words
# (QuerySet.bulk_create -> "query set bulk create"); "bare" is the content alone.
CONTEXTS: dict[str, Callable[..., str]] = {"header": _header_text, "bare": _bare_text, "words": _words_text}


def install_context(name: str) -> None:
    """In the daemon's processes (its parse workers too): every codeweir module that bound
    embed_text.document_text, and every one that will, gets the alternative instead."""
    original = codeweir.embedded_text.document_text
    for module in list(sys.modules.values()):
        if module.__name__.startswith("codeweir") and getattr(module, "document_text", None) is original:
            module.document_text = CONTEXTS[name]


@attrs.frozen
class Target:
    path: str
    def_line: int
    name: str
    query: str  # the docstring's first sentence
    unique_name: bool  # no other function in the copy has this name

    def found_at(self, hits: Sequence[dict]) -> int | None:
        """1-based rank of the first hit whose chunk holds the def line, if any in the list."""
        for rank, hit in enumerate(hits, start=1):
            if hit["path"] == self.path and hit["start_line"] <= self.def_line <= hit["end_line"]:
                return rank
        return None


def first_sentence(docstring: str) -> str | None:
    """The docstring's first sentence (of its first paragraph), if it has MIN_WORDS words."""
    paragraph = " ".join(docstring.strip().split("\n\n")[0].split())
    sentence = re.split(r"(?<=[.!?])\s", paragraph, maxsplit=1)[0]
    return sentence if len(sentence.split()) >= MIN_WORDS else None


def _functions(source: str) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    return [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]


def documented_functions(source: str) -> list[tuple[ast.FunctionDef | ast.AsyncFunctionDef, str]]:
    """(function, its first sentence) for every function or method whose docstring has one."""
    return [
        (node, sentence) for node in _functions(source) if (doc := ast.get_docstring(node)) and (sentence := first_sentence(doc))
    ]


def blank_docstrings(source: str, nodes: Sequence[ast.FunctionDef | ast.AsyncFunctionDef]) -> str | None:
    """`source` with these functions' docstrings blanked, line numbers kept; None if one shares a line."""
    lines = source.split("\n")
    for node in nodes:
        doc = node.body[0]
        first, last = doc.lineno - 1, doc.end_lineno - 1
        start = lines[first].encode()[: doc.col_offset].decode()
        end = lines[last].encode()[doc.end_col_offset :].decode()
        if start.strip() or end.strip():
            return None
        lines[first] = start + "pass" if len(node.body) == 1 else ""
        for i in range(first + 1, last + 1):
            lines[i] = ""
    blanked = "\n".join(lines)
    ast.parse(blanked)  # the copy must stay valid Python, or its chunks would change
    return blanked


def prepare_corpus(corpus: Path, dirs: Sequence[str], dest: Path, count: int, seed: int) -> list[Target]:
    """Export HEAD's `dirs` into `dest` as a fresh repository, blank a sample's docstrings; the targets."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(corpus), "archive", "HEAD", "--", *dirs], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    sources = {str(p.relative_to(dest)): p.read_text(encoding="utf-8") for p in sorted(dest.rglob("*.py"))}
    functions = {path: documented_functions(text) for path, text in sources.items()}
    # A sentence that starts several docstrings names no single target.
    repeated = Counter(s for found in functions.values() for _, s in found)
    names = Counter(node.name for text in sources.values() for node in _functions(text))
    candidates = [(path, node, s) for path, found in functions.items() for node, s in found if repeated[s] == 1]
    sample = random.Random(seed).sample(candidates, min(count, len(candidates)))
    by_file: dict[str, list] = {}
    for path, node, sentence in sample:
        by_file.setdefault(path, []).append((node, sentence))
    targets = []
    for path, chosen in sorted(by_file.items()):
        blanked = blank_docstrings(sources[path], [node for node, _ in chosen])
        if blanked is None:
            continue
        (dest / path).write_text(blanked, encoding="utf-8")
        targets += [Target(path, node.lineno, node.name, sentence, names[node.name] == 1) for node, sentence in chosen]
    git = ["git", "-C", str(dest), "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "corpus with blanked docstrings"], check=True)
    print(f"{len(candidates)} documented functions in {', '.join(dirs)}; {len(targets)} queries (seed {seed})")
    return targets


def query_text(sentence: str) -> str:
    return " ".join(QUERY_SYNTAX.sub(" ", sentence).split())


@attrs.frozen
class ModeResult:
    ranks: list[int | None]
    seconds: list[float]

    @property
    def mrr(self) -> float:
        return statistics.fmean(1 / r if r else 0.0 for r in self.ranks)

    @property
    def recall(self) -> float:
        return statistics.fmean(r is not None for r in self.ranks)

    @property
    def p50_ms(self) -> float:
        return 1000 * statistics.median(self.seconds)


Queries = list[tuple[str, Target]]


def query_sets(targets: Sequence[Target]) -> dict[str, Queries]:
    """The docstring sentences (the evaluation), and the function names (a guard: a fusion that
    gained on sentences by losing what lexical search does best would show here)."""
    return {
        "sentences": [(query_text(t.query), t) for t in targets],
        "names": [(t.name, t) for t in targets if t.unique_name],
    }


def run_mode(client, queries: Queries, mode: str, limit: int) -> tuple[ModeResult, list[list[dict]]]:
    ranks, seconds, lists = [], [], []
    for text, target in queries:
        t = time.perf_counter()
        hits = client.call("search", {"query": text, "mode": mode, "limit": limit})["results"]
        seconds.append(time.perf_counter() - t)
        lists.append(hits)
        ranks.append(target.found_at(hits[:LIMIT]))
    return ModeResult(ranks, seconds), lists


def as_hits(results: Sequence[dict]) -> list[SearchHit]:
    return [converter.structure(r, SearchHit) for r in results]


@attrs.frozen
class DeepLists:
    """Each query's lexical, semantic and definitions rankings, --depth deep."""

    lexical: list[list[SearchHit]]
    semantic: list[list[SearchHit]]
    definitions: list[list[SearchHit]]


# (label, k, weights of lexical, semantic, definitions, depth); the first is hybrid search before
# the definitions list, the one marked * is hybrid search now (semantic.fuse_hybrid).
FUSIONS = [
    ("lexical + semantic", 60, (1.0, 1.0, 0.0), 30),
    ("lexical + semantic", 5, (1.0, 1.0, 0.0), 30),
    *[("+ definitions", k, (1.0, 1.0, w), 30) for k in (2, 5, 10, 60) for w in (0.5, 0.75, 1.0)],
    ("+ definitions", HYBRID_RRF_K, HYBRID_WEIGHTS, 10),
    ("+ definitions", HYBRID_RRF_K, HYBRID_WEIGHTS, 50),
]


def fusion_study(sets: dict[str, Queries], deep: dict[str, DeepLists]) -> None:
    """MRR@10 / recall@10 of reciprocal rank fusion over the deep lists, offline, per choice."""
    print("\nfusion study (offline, semantic.reciprocal_rank_fusion over the lists): MRR@10 / recall@10")
    print(f"{'lists':20} {'k':>3} {'weights':>15} {'depth':>5} " + " ".join(f"{name:>15}" for name in sets))
    for label, k, weights, depth in FUSIONS:
        cells = []
        for name, queries in sets.items():
            lists = deep[name]
            ranks = []
            for (_, target), *rankings in zip(queries, lists.lexical, lists.semantic, lists.definitions, strict=True):
                fused = reciprocal_rank_fusion([r[:depth] for r in rankings], LIMIT, k=k, weights=weights)
                ranks.append(target.found_at([converter.unstructure(h) for h in fused]))
            result = ModeResult(ranks, [0.0])
            cells.append(f"{result.mrr:.3f} / {result.recall:.3f}")
        now = "*" if (k, weights, depth) == (HYBRID_RRF_K, HYBRID_WEIGHTS, 30) else " "
        print(f"{label:20} {k:>3} {weights!s:>15} {depth:>5} " + " ".join(f"{c:>15}" for c in cells) + now)


def definitions_lists(state_dir: Path, queries: Queries, depth: int) -> list[list[SearchHit]]:
    """The hybrid's third list, from the stopped daemon's index (no search mode serves it alone)."""
    store = Store(state_dir / "index")
    return [search_definitions(store, text, Filters(), depth) for text, _ in queries]


@attrs.frozen
class Evaluation:
    run: IndexRun
    results: dict[str, dict[str, ModeResult]]  # query set -> mode -> result
    deep: dict[str, DeepLists] | None


def evaluate(corpus: Path, sets: dict[str, Queries], args, *, quantized: bool) -> Evaluation:
    """Index `corpus` with a fresh daemon, wait for every vector, run every query in every mode."""
    extra = config_extra(prebuilt_model(args.model_cache), quantized=quantized)
    daemon = Daemon({"corpus": corpus}, model=True, extra=extra)
    deep = None
    try:
        run = index_with_vectors(daemon)
        print(
            f"\n{run.chunks} chunks, {run.vectors} embedded by {run.model['model']} ({args.context} context): "
            f"lexical {run.lexical_s:.1f} s, embedded {run.embedded_s:.1f} s, {run.embed_rate:.1f} chunks/s, "
            f"{run.cpu_ms_per_vector:.0f} ms of daemon CPU per vector"
        )
        with daemon.client() as client:
            results = {
                name: {mode: run_mode(client, queries, mode, LIMIT)[0] for mode in MODES} for name, queries in sets.items()
            }
            if args.depth:
                fetched = {
                    name: [run_mode(client, queries, mode, args.depth)[1] for mode in ("lexical", "semantic")]
                    for name, queries in sets.items()
                }
    finally:
        daemon.stop()
    if args.depth:
        deep = {
            name: DeepLists(
                [as_hits(x) for x in lexical],
                [as_hits(x) for x in semantic],
                definitions_lists(daemon.tmp / "state", sets[name], args.depth),
            )
            for name, (lexical, semantic) in fetched.items()
        }
    return Evaluation(run, results, deep)


def print_evaluation(label: str, sets: dict[str, Queries], evaluation: Evaluation) -> None:
    for name, by_mode in evaluation.results.items():
        print(f"\n{label}: {len(sets[name])} {name:11} {'MRR@10':>7} {'recall@10':>10} {'p50 ms':>7}")
        for mode, result in by_mode.items():
            print(f"{mode:15} {result.mrr:7.3f} {result.recall:10.3f} {result.p50_ms:7.1f}")
    if evaluation.deep:
        fusion_study(sets, evaluation.deep)


def print_side_by_side(evaluations: dict[str, Evaluation]) -> None:
    print(
        f"\n{'model':6} {'chunks/s':>9} {'CPU ms/vector':>14} "
        + " ".join(f"{m + ' MRR / recall':>22}" for m in MODES)
        + "   (sentences)"
    )
    for label, e in evaluations.items():
        cells = [f"{r.mrr:.3f} / {r.recall:.3f}" for r in e.results["sentences"].values()]
        print(f"{label:6} {e.run.embed_rate:9.1f} {e.run.cpu_ms_per_vector:14.1f} " + " ".join(f"{c:>22}" for c in cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", nargs="?", type=Path, default=Path("/work/corpora/django"))
    parser.add_argument("--dirs", nargs="+", default=["django/db", "django/utils", "django/http"])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--models", nargs="+", default=["fp32"], choices=("fp32", "int8"), help="one evaluation each, printed side by side"
    )
    parser.add_argument("--context", default="codeweir", choices=("codeweir", *CONTEXTS))
    parser.add_argument("--depth", type=int, default=50, help="list depth for the fusion study (0: skip it)")
    parser.add_argument("--model-cache", type=Path, default=DEFAULT_MODEL_CACHE)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="codeweir-retrieval-"))
    targets = prepare_corpus(args.corpus, args.dirs, work / "corpus", args.queries, args.seed)
    sets = query_sets(targets)
    if args.context != "codeweir":
        # The daemon imports this module at start-up and swaps the context in (site's hook).
        (work / "site").mkdir()
        (work / "site" / "sitecustomize.py").write_text(
            f"import sys\nsys.path.insert(0, {str(BENCH)!r})\nimport bench_retrieval\n"
            f"bench_retrieval.install_context({args.context!r})\n"
        )
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(work / "site"), os.environ.get("PYTHONPATH")]))
    evaluations = {model: evaluate(work / "corpus", sets, args, quantized=model == "int8") for model in args.models}
    for label, evaluation in evaluations.items():
        print_evaluation(label, sets, evaluation)
    if len(evaluations) > 1:
        print_side_by_side(evaluations)


if __name__ == "__main__":
    main()
