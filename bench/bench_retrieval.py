"""Retrieval quality of lexical, semantic and hybrid search, on documented functions of a real corpus.

    .venv/bin/python bench/bench_retrieval.py [/work/corpora/django] [--dirs django/db django/utils django/http]
        [--queries 300] [--seed 7] [--quantized] [--context codeweir|bare|header|words] [--depth 50]

The corpus's HEAD (only --dirs) is exported into a temp git repository. Its documented Python
functions and methods whose docstring's first sentence has at least 5 words (and is no other
function's first sentence) are candidates; a seeded sample of --queries of them has its
docstring blanked in the copy, line numbers kept (the docstring's lines become empty lines,
or `pass` and empty lines where it was the whole body). Each query is that first sentence; its
target is the chunk of the function's file whose line range holds the `def` line.

A real daemon indexes the copy with the model enabled and the bench waits until every chunk
is embedded. Each query then runs in each mode through the socket with limit 10; printed
per mode: MRR@10, recall@10 and p50 latency. The fusion study fetches each query's lexical
and semantic lists --depth deep and fuses them offline with semantic.reciprocal_rank_fusion
(the daemon's own function) at other constants and depths.

--context swaps what the model sees for a chunk (embed.document_text) in the daemon for one
of the alternatives below, to compare them; --quantized runs the int8 model.
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

import codeweir.embed  # noqa: E402
from bench_django_index import DEFAULT_MODEL_CACHE, index_with_vectors, model_extra, prebuilt_model  # noqa: E402
from codeweir.search import Hit  # noqa: E402
from codeweir.semantic import reciprocal_rank_fusion  # noqa: E402
from daemon_run import Daemon  # noqa: E402

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


# Alternatives to codeweir's own embed.document_text: "header" is language, kind and symbol
# path on a line above the content; "words" spells the symbol path as lower-case words
# (QuerySet.bulk_create -> "query set bulk create"); "bare" is the content alone.
CONTEXTS: dict[str, Callable[..., str]] = {"header": _header_text, "bare": _bare_text, "words": _words_text}


def install_context(name: str) -> None:
    """In the daemon's process, before codeweir's modules bind embed.document_text."""
    codeweir.embed.document_text = CONTEXTS[name]


@attrs.frozen
class Target:
    path: str
    def_line: int
    name: str
    query: str

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


def documented_functions(source: str) -> list[tuple[ast.FunctionDef | ast.AsyncFunctionDef, str]]:
    """(function, its first sentence) for every function or method whose docstring has one."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (doc := ast.get_docstring(node)):
            if sentence := first_sentence(doc):
                found.append((node, sentence))
    return found


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
        targets += [Target(path, node.lineno, node.name, sentence) for node, sentence in chosen]
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


def run_mode(client, targets: Sequence[Target], mode: str, limit: int) -> tuple[ModeResult, list[list[dict]]]:
    ranks, seconds, lists = [], [], []
    for target in targets:
        t = time.perf_counter()
        hits = client.call("search", {"query": query_text(target.query), "mode": mode, "limit": limit})["results"]
        seconds.append(time.perf_counter() - t)
        lists.append(hits)
        ranks.append(target.found_at(hits[:LIMIT]))
    return ModeResult(ranks, seconds), lists


def as_hits(results: Sequence[dict]) -> list[Hit]:
    return [Hit(**{f.name: r[f.name] for f in attrs.fields(Hit) if f.name in r}) for r in results]


def fusion_study(targets: Sequence[Target], lexical: list[list[dict]], semantic: list[list[dict]]) -> None:
    """MRR@10 / recall@10 of RRF over the deep lists, at other constants and list depths."""
    depth = max(len(x) for x in lexical + semantic)
    lex_hits, sem_hits = [as_hits(x) for x in lexical], [as_hits(x) for x in semantic]
    print(f"\nfusion study (offline, over lists {depth} deep): MRR@10 / recall@10")
    depths = sorted({10, 20, 30, depth})
    print(f"{'RRF k':>8} " + " ".join(f"{f'depth {d}':>15}" for d in depths))
    for k in (1, 5, 10, 20, 60):
        cells = []
        for d in depths:
            ranks = [
                t.found_at([h.to_dict() for h in reciprocal_rank_fusion([lx[:d], sm[:d]], LIMIT, k=k)])
                for t, lx, sm in zip(targets, lex_hits, sem_hits, strict=True)
            ]
            result = ModeResult(ranks, [0.0])
            cells.append(f"{result.mrr:.3f} / {result.recall:.3f}")
        print(f"{k:>8} " + " ".join(f"{c:>15}" for c in cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", nargs="?", type=Path, default=Path("/work/corpora/django"))
    parser.add_argument("--dirs", nargs="+", default=["django/db", "django/utils", "django/http"])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quantized", action="store_true", help="the int8 model")
    parser.add_argument("--context", default="codeweir", choices=("codeweir", *CONTEXTS))
    parser.add_argument("--depth", type=int, default=50, help="list depth for the fusion study (0: skip it)")
    parser.add_argument("--model-cache", type=Path, default=DEFAULT_MODEL_CACHE)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="codeweir-retrieval-"))
    targets = prepare_corpus(args.corpus, args.dirs, work / "corpus", args.queries, args.seed)
    if args.context != "codeweir":
        # The daemon imports this module at start-up and swaps the context in (site's hook).
        (work / "site").mkdir()
        (work / "site" / "sitecustomize.py").write_text(
            f"import sys\nsys.path.insert(0, {str(BENCH)!r})\nimport bench_retrieval\n"
            f"bench_retrieval.install_context({args.context!r})\n"
        )
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(work / "site"), os.environ.get("PYTHONPATH")]))
    daemon = Daemon(
        {"corpus": work / "corpus"}, model=True, extra=model_extra(prebuilt_model(args.model_cache), quantized=args.quantized)
    )
    try:
        run = index_with_vectors(daemon)
        print(f"{run.chunks} chunks, {run.vectors} embedded by {run.model['model']} ({args.context} context): "
              f"lexical {run.lexical_s:.1f} s, embedded {run.embedded_s:.1f} s, {run.embed_rate:.1f} chunks/s")
        with daemon.client() as client:
            results = {mode: run_mode(client, targets, mode, LIMIT) for mode in MODES}
            if args.depth:
                _, lexical = run_mode(client, targets, "lexical", args.depth)
                _, semantic = run_mode(client, targets, "semantic", args.depth)
    finally:
        daemon.stop()

    print(f"\n{len(targets)} queries  {'MRR@10':>7} {'recall@10':>10} {'p50 ms':>7}")
    for mode, (result, _) in results.items():
        print(f"{mode:12} {result.mrr:9.3f} {result.recall:10.3f} {result.p50_ms:7.1f}")
    if args.depth:
        fusion_study(targets, lexical, semantic)


if __name__ == "__main__":
    main()
