"""The tools about the repositories rather than their code: search_history (the daemon's `search`
in commits mode), list_repos (`repos` and `status`) and index_status (`status`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from codeweir.mcp.answers import MAX_PAGE, Answer, cursor_for, fit_answer, paging_text, resumed_state, socket_page
from codeweir.mcp.blocks import BODY_LINE_CHARS
from codeweir.mcp.budget import brief_notes, skip_count
from codeweir.mcp.daemon_calls import Daemon, ToolFailed, call_daemon, quoted_term

HISTORY_IDENTITY = ("query", "author", "since", "until", "path", "repo", "ref")


async def search_history(daemon: Daemon, arguments: dict[str, Any]) -> Answer:
    skip, socket_cursor = socket_page(arguments, "search_history", HISTORY_IDENTITY)
    parts = [arguments["query"]] if arguments.get("query") else []
    if arguments.get("author"):
        parts.append("author:" + quoted_term(arguments["author"]))
    if arguments.get("since"):
        parts.append("after:" + arguments["since"])
    if arguments.get("until"):
        parts.append("before:" + arguments["until"])
    if not parts:
        parts.append("after:1970-01-01")  # only filters: the newest commits first
    params = {
        "query": " ".join(parts),
        "mode": "commits",
        "repo": arguments.get("repo"),
        "ref": arguments.get("ref"),
        "path": arguments.get("path"),
        "limit": min(MAX_PAGE, skip + arguments["limit"]),
        "cursor": socket_cursor,
    }
    result = await call_daemon(daemon, "search", params)
    budget = arguments["budget_tokens"]
    commits = list(result.get("results", []))[skip:]
    notes = brief_notes(result.get("notes", []))
    next_page = result.get("next_cursor")

    def item(commit: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        paths = list(commit.get("paths", []))
        more = f" (+{len(paths) - 8} more)" if len(paths) > 8 else ""
        text = f"{commit['sha'][:12]} {commit['date'][:10]} {commit['author']} [{commit['repo']}] {commit['score']:g}\n  {commit['summary']}"
        snippet = commit.get("snippet", "")
        if snippet and snippet.strip() != commit["summary"].strip():
            text += "\n  " + "\n  ".join(snippet.strip().split("\n")[:4])
        if paths:
            text += "\n  files: " + ", ".join(paths[:8]) + more
        structured = {
            "repo": commit["repo"],
            "sha": commit["sha"],
            "date": commit["date"],
            "author": commit["author"],
            "summary": commit["summary"],
            "snippet": snippet,
            "paths": paths[:20],
            "paths_total": len(paths),
            "score": commit["score"],
        }
        return text, structured

    items = [item(c) for c in commits]

    def render(n: int) -> Answer:
        cut = n < len(items)
        cursor: str | None
        if cut:
            cursor = cursor_for(arguments, "search_history", HISTORY_IDENTITY, {"s": socket_cursor, "k": skip + n})
        else:
            cursor = cursor_for(arguments, "search_history", HISTORY_IDENTITY, {"s": next_page, "k": 0}) if next_page else None
        head = (
            f"{n} of {len(items)} commits on this page ({'by words and meaning' if arguments.get('query') else 'newest first'})"
        )
        text = [head if items else "no commits match", *(t for t, _ in items[:n]), *(f"note: {note}" for note in notes)]
        text += paging_text(budget, cut, len(items) - n, "commits", cursor)
        structured = {"commits": [s for _, s in items[:n]], "shown": n, "cut": cut, "next_cursor": cursor, "notes": notes}
        return Answer("\n".join(text), structured)

    n, answer = fit_answer(render, len(items), budget)
    if n == 0 and items:  # one commit's text over the budget: its snippet, paths and the notes go
        notes = []
        text, structured = items[0]
        items[0] = (
            text.split("\n")[0] + "\n  " + structured["summary"][:BODY_LINE_CHARS],
            {**structured, "snippet": "", "paths": []},
        )
        answer = render(1)
    return answer


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 129600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _ago(when: float | None, now: float) -> str:
    return "never" if when is None else _duration(max(0.0, now - when)) + " ago"


def _share(part: int | None, whole: int | None) -> float | None:
    if part is None or not whole:
        return None
    return round(min(1.0, part / whole), 4)


def _listed(
    arguments: dict[str, Any],
    tool: str,
    identity: tuple[str, ...],
    items: list[tuple[str, dict]],
    head: Callable[[int], list[str]],
    extra: dict[str, Any],
    key: str,
) -> Answer:
    state = resumed_state(arguments, tool, identity)
    skip = skip_count(state, len(items)) if state else 0
    items = items[skip:]
    budget = arguments["budget_tokens"]

    def render(n: int) -> Answer:
        cut = n < len(items)
        cursor = cursor_for(arguments, tool, identity, {"k": skip + n}) if cut else None
        text = [*head(n), *(t for t, _ in items[:n]), *paging_text(budget, cut, len(items) - n, key, cursor)]
        return Answer("\n".join(text), {**extra, key: [s for _, s in items[:n]], "cut": cut, "next_cursor": cursor, "notes": []})

    return fit_answer(render, len(items), budget)[1]


async def list_repos(daemon: Daemon, arguments: dict[str, Any]) -> Answer:
    repos = (await call_daemon(daemon, "repos", {})).get("repos", [])
    status = {r.get("name"): r for r in (await call_daemon(daemon, "status", {})).get("repos", [])}
    now = time.time()
    items = []
    for repo in repos:
        s = status.get(repo["name"], {})
        structured = {
            "name": repo["name"],
            "path": repo["path"],
            "ref": repo.get("ref"),
            "files_indexed": s.get("files_indexed", 0),
            "files_total": s.get("files_total"),
            "head": s.get("head") or None,
            "synced_at": s.get("synced_at"),
            "error": repo.get("error") or s.get("error"),
        }
        text = (
            f"{repo['name']}  {repo['path']}{' @' + repo['ref'] if repo.get('ref') else ''}  "
            f"{structured['files_indexed']}/{structured['files_total'] if structured['files_total'] is not None else '?'} files, "
            f"synced {_ago(structured['synced_at'], now)}{', head ' + structured['head'][:12] if structured['head'] else ''}"
            f"{'  error: ' + structured['error'] if structured['error'] else ''}"
        )
        items.append((text, structured))
    return _listed(arguments, "list_repos", (), items, lambda n: [f"{len(repos)} configured repositories"], {}, "repos")


async def index_status(daemon: Daemon, arguments: dict[str, Any]) -> Answer:
    status = await call_daemon(daemon, "status", {})
    now = time.time()
    wanted = arguments.get("repo")
    repos = [r for r in status.get("repos", []) if wanted is None or r.get("name") == wanted]
    if wanted is not None and not repos:
        known = ", ".join(r.get("name", "?") for r in status.get("repos", [])) or "none"
        raise ToolFailed(f"codeweir: repo: no repository named {wanted!r} (configured: {known})")
    model = status.get("model") or {}
    daemon_info = status.get("daemon") or {}
    queue = status.get("queue") or {}
    index = status.get("index") or {}
    items = []
    for r in repos:
        structured = {
            "name": r.get("name"),
            "files_indexed": r.get("files_indexed", 0),
            "files_total": r.get("files_total"),
            "lexical_coverage": _share(r.get("files_indexed"), r.get("files_total")),
            "chunks": r.get("chunks", 0),
            "chunks_embedded": r.get("chunks_embedded", 0),
            "vector_coverage": _share(r.get("chunks_embedded"), r.get("chunks")),
            "head": r.get("head") or None,
            "synced_at": r.get("synced_at"),
            "error": r.get("error"),
            "file_errors": len(r.get("file_errors") or []),
        }
        lexical, vector = structured["lexical_coverage"], structured["vector_coverage"]
        text = (
            f"{r.get('name')}: lexical {structured['files_indexed']}/{structured['files_total'] if structured['files_total'] is not None else '?'} files"
            f"{f' ({lexical:.0%})' if lexical is not None else ''}, vectors {structured['chunks_embedded']}/{structured['chunks']} chunks"
            f"{f' ({vector:.0%})' if vector is not None else ''}, synced {_ago(structured['synced_at'], now)}"
            f"{' at ' + structured['head'][:12] if structured['head'] else ''}"
            f"{'; error: ' + str(structured['error']) if structured['error'] else ''}"
            f"{'; ' + str(structured['file_errors']) + ' file(s) unreadable' if structured['file_errors'] else ''}"
        )
        items.append((text, structured))
    summary = {
        "daemon": {"version": daemon_info.get("version"), "uptime_s": daemon_info.get("uptime_s")},
        "model": {"state": model.get("state"), "model": model.get("model"), "error": model.get("error")},
        "queue": {"queued": queue.get("queued", 0), "running": queue.get("running", 0)},
        "rebuilding": bool(index.get("rebuilding")),
    }
    model_line = f"model{' ' + model['model'] if model.get('model') else ''}: {model.get('state', '?')}" + (
        f" ({model['error']})" if model.get("error") else ""
    )

    def head(n: int) -> list[str]:
        return [
            f"codeweir {daemon_info.get('version', '?')}, up {_duration(daemon_info.get('uptime_s') or 0)}; {model_line}; "
            f"queue {queue.get('queued', 0)} queued, {queue.get('running', 0)} running{'; rebuilding the index' if summary['rebuilding'] else ''}"
        ]

    return _listed(arguments, "index_status", ("repo",), items, head, summary, "repos")
