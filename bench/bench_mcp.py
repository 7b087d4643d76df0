"""What an agent receives through `codeweir mcp`, beside ripgrep, and what the MCP hop costs.

    .venv/bin/python bench/bench_mcp.py /work/corpora/django [--model] [--runs 5]

A daemon indexes the corpus (bench/daemon_run.py; the model off unless --model), and `codeweir
mcp` runs as a subprocess driven by the MCP SDK's ClientSession, as an agent's client drives it.
For 30 fixed questions about django (definitions, usages, "where is X done", history), each
asked with the tool an agent would pick at the default budget (4000 tokens):

- tokens: the estimated tokens (UTF-8 bytes / 4, mcp/budget.py) of the tool's text answer, and
  of its structured content as JSON; beside the tokens of `rg -n IDENT` run in the corpus for
  the question's identifier (what an agent reading ripgrep's output would take in);
- latency: p50 of the tool call through MCP, beside p50 of the same daemon request made directly
  on the socket (the method the tool calls, with the same params): the difference is what the MCP
  server adds (a stdio hop, a socket connection, rendering and fitting to the budget).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import trio
from daemon_run import Daemon, corpus, peers
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from codeweir.mcp.budget import compact_json, estimate_tokens

# (category, tool, arguments, the identifier an agent would grep for)
QUESTIONS: list[tuple[str, str, dict, str]] = [
    ("definition", "find_symbol", {"name": "QuerySet"}, "QuerySet"),
    ("definition", "find_symbol", {"name": "get_object_or_404"}, "get_object_or_404"),
    ("definition", "find_symbol", {"name": "Model.save"}, "save"),
    ("definition", "find_symbol", {"name": "reverse", "kind": "function"}, "reverse"),
    ("definition", "find_symbol", {"name": "csrf_exempt"}, "csrf_exempt"),
    ("definition", "find_symbol", {"name": "login_required"}, "login_required"),
    ("definition", "find_symbol", {"name": "slugify", "include_body": True}, "slugify"),
    ("definition", "find_symbol", {"name": "HttpResponseRedirect"}, "HttpResponseRedirect"),
    ("definition", "find_symbol", {"name": "ForeignKey"}, "ForeignKey"),
    ("definition", "find_symbol", {"name": "BaseCommand"}, "BaseCommand"),
    ("usage", "find_references", {"symbol": "get_object_or_404"}, "get_object_or_404"),
    ("usage", "find_references", {"symbol": "csrf_exempt"}, "csrf_exempt"),
    ("usage", "find_references", {"symbol": "slugify"}, "slugify"),
    ("usage", "find_references", {"symbol": "select_related"}, "select_related"),
    ("usage", "find_references", {"symbol": "get_user_model"}, "get_user_model"),
    ("usage", "find_references", {"symbol": "HttpResponseRedirect"}, "HttpResponseRedirect"),
    ("usage", "find_references", {"symbol": "render_to_string"}, "render_to_string"),
    ("usage", "find_references", {"symbol": "mark_safe"}, "mark_safe"),
    ("where", "search_code", {"query": "hash password make_password"}, "make_password"),
    ("where", "search_code", {"query": "check csrf token middleware"}, "CsrfViewMiddleware"),
    ("where", "search_code", {"query": "apply migration"}, "apply_migration"),
    ("where", "search_code", {"query": "resolve template variable lookup"}, "_resolve_lookup"),
    ("where", "search_code", {"query": "set session cookie"}, "SESSION_COOKIE_NAME"),
    ("where", "search_code", {"query": "signed cookie salt"}, "get_signed_cookie"),
    ("where", "search_code", {"query": "match url pattern resolver"}, "URLResolver"),
    (
        "where",
        "search_code",
        {"query": "raise ImproperlyConfigured(", "mode": "literal", "path": "django/db/**"},
        "ImproperlyConfigured",
    ),
    ("where", "search_code", {"query": r"def get_\w+_display", "mode": "regex"}, "_display"),
    ("history", "search_history", {"query": "Django 5.1.3"}, "5.1.3"),
    ("history", "search_history", {"path": "django/db/models/query.py"}, "QuerySet"),
    ("history", "search_history", {"query": "security release", "since": "2024-01-01"}, "security"),
]

MODES = {"auto": "hybrid", "literal": "lexical", "regex": "regex", "symbol": "symbol", "semantic": "semantic", "hybrid": "hybrid"}


def socket_request(tool: str, a: dict) -> tuple[str, dict]:
    """The daemon request the tool makes for these arguments (its first, for find_symbol with bodies)."""
    if tool == "find_symbol":
        params = {"query": a["name"], "mode": "symbol", "limit": a.get("limit", 10), "context": 0 if a.get("include_body") else 1}
        return "search", {**params, **({"kind": a["kind"]} if "kind" in a else {})}
    if tool == "find_references":
        return "refs", {"symbol": a["symbol"], "limit": 500}
    if tool == "search_code":
        mode = a.get("mode", "auto")
        query = '"' + a["query"].replace("\\", "\\\\").replace('"', '\\"') + '"' if mode == "literal" else a["query"]
        params = {"query": query, "mode": MODES[mode], "limit": a.get("limit", 20), "context": a.get("context", 2)}
        return "search", {**params, **({"path": a["path"]} if "path" in a else {})}
    if tool == "search_history":
        parts = [a["query"]] if a.get("query") else []
        if a.get("since"):
            parts.append("after:" + a["since"])
        params = {"query": " ".join(parts) or "after:1970-01-01", "mode": "commits", "limit": a.get("limit", 20)}
        return "search", {**params, **({"path": a["path"]} if "path" in a else {})}
    raise ValueError(tool)


def rg_tokens(ident: str, repo: Path) -> int:
    out = subprocess.run(["rg", "-n", ident], cwd=repo, capture_output=True, text=True, errors="replace").stdout
    return estimate_tokens(out)


def p50(xs: list[float]) -> float:
    return 1000 * statistics.median(xs)


async def run(repo: Path, daemon: Daemon, runs: int) -> None:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "codeweir.cli.main", "mcp", "--socket", str(daemon.socket)]
    )
    rows = []
    mcp_all: list[float] = []
    socket_all: list[float] = []
    with open(daemon.tmp / "mcp.log", "w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            await session.list_tools()
            client = daemon.client(timeout=120)
            for category, tool, arguments, ident in QUESTIONS:
                method, request = socket_request(tool, arguments)
                result = await session.call_tool(tool, arguments)  # warm: caches, the OS's pages
                client.call(method, request)
                if result.is_error:
                    raise SystemExit(f"{tool} {arguments}: {result.content[0].text}")
                mcp_times, socket_times = [], []
                for _ in range(runs):
                    started = time.perf_counter()
                    result = await session.call_tool(tool, arguments)
                    mcp_times.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    client.call(method, request)
                    socket_times.append(time.perf_counter() - started)
                mcp_all += mcp_times
                socket_all += socket_times
                text = result.content[0].text
                rows.append(
                    (
                        category,
                        tool,
                        compact_json(arguments),
                        estimate_tokens(text),
                        estimate_tokens(compact_json(result.structured_content)),
                        rg_tokens(ident, repo),
                        ident,
                        p50(mcp_times),
                        p50(socket_times),
                        bool(result.structured_content.get("cut")),
                    )
                )
            client.close()
    print(
        f"{'#':>2} {'kind':<10} {'tool':<15} {'mcp tok':>7} {'json':>6} {'rg tok':>7} {'rg/mcp':>7} {'mcp ms':>7} {'sock ms':>7} {'+ms':>6}  question"
    )
    for i, (category, tool, args, text_tokens, json_tokens, rg, ident, mcp_ms, sock_ms, cut) in enumerate(rows, 1):
        ratio = rg / text_tokens if text_tokens else float("inf")
        print(
            f"{i:>2} {category:<10} {tool:<15} {text_tokens:>7,} {json_tokens:>6,} {rg:>7,} {ratio:>7.1f} "
            f"{mcp_ms:>7.1f} {sock_ms:>7.1f} {mcp_ms - sock_ms:>6.1f}  {args}{' (cut)' if cut else ''} / rg -n {ident}"
        )
    text_total = sum(r[3] for r in rows)
    rg_total = sum(r[5] for r in rows)
    added = [r[7] - r[8] for r in rows]
    print()
    print(
        f"tokens: mcp {text_total:,} (json {sum(r[4] for r in rows):,}), rg -n {rg_total:,}: rg / mcp {rg_total / text_total:.1f}x over 30 questions"
    )
    print(
        f"tokens per question: mcp median {statistics.median(r[3] for r in rows):,.0f} max {max(r[3] for r in rows):,}; "
        f"rg median {statistics.median(r[5] for r in rows):,.0f} max {max(r[5] for r in rows):,}"
    )
    print(
        f"latency p50 over all calls: mcp {p50(mcp_all):.1f} ms, socket {p50(socket_all):.1f} ms; added by mcp per question: "
        f"median {statistics.median(added):.1f} ms, max {max(added):.1f} ms (goal: under 20 ms at p50)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", nargs="?", default="/work/corpora/django")
    parser.add_argument("--model", action="store_true", help="embed the corpus too (slow on a CPU)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    peers("rg")
    repo = corpus(args.corpus)
    with Daemon({"django": repo}, model=args.model) as daemon:
        started = time.perf_counter()
        daemon.wait_indexed()
        print(f"indexed {repo.name} in {time.perf_counter() - started:.1f} s (model {'on' if args.model else 'off'})")
        trio.run(run, repo, daemon, args.runs)


if __name__ == "__main__":
    main()
