"""The MCP tools as the server lists and calls them: each one's name, title, description, input
schema (checked strictly) and output schema, and the function that answers it.

Seven tools, each a thin client of one or two daemon methods:

    search_code      search             words, literals, regexes, symbols, meaning
    find_symbol      search (symbol)    definitions by name, optionally with their bodies (read)
    find_references  refs               search-based references, grouped by file
    read_code        read               lines of an indexed file, as it is now
    search_history   search (commits)   commits by words or meaning, author, dates, path
    list_repos       repos, status      the configured repositories
    index_status     status             coverage and freshness of the index

The first four are in mcp/code_tools.py, the last three in mcp/repo_tools.py. Every answer comes
twice: compact text (what most clients show a model) and structured content matching the tool's
output schema (mcp/schemas.py). Both fit `budget_tokens` by the estimate in mcp/budget.py. An
answer cut by its budget says so and carries `next_cursor`; called again with the same arguments
and that cursor, the tool continues with the first item the cut answer left out, so the pages
together are the list an uncut answer would have given (mcp/answers.py). Hits next to each other
in one file (their lines overlap or touch) are shown as one block (mcp/blocks.py).

Arguments that do not fit a schema raise ArgumentError (the server answers with an MCP error);
what the daemon refuses (a repository not configured, a path outside one) and an unreachable
daemon are tool errors: `is_error`, with the daemon's words.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import jsonschema

from codeweir.mcp.answers import Answer
from codeweir.mcp.arguments import ArgumentError, checked_arguments, validator_for
from codeweir.mcp.budget import CursorError
from codeweir.mcp.code_tools import MODES, find_references, find_symbol, read_code, search_code
from codeweir.mcp.daemon_calls import Daemon, ToolFailed
from codeweir.mcp.repo_tools import index_status, list_repos, search_history
from codeweir.mcp.schemas import (
    CONTEXT,
    DATE,
    HISTORY_OUTPUT,
    HITS_OUTPUT,
    KIND,
    LANGUAGE,
    PATH,
    READ_OUTPUT,
    REF,
    REFS_OUTPUT,
    REPO,
    REPO_LIST_OUTPUT,
    STATUS_OUTPUT,
    input_schema,
    integer_schema,
    string_schema,
)


@attrs.frozen
class Tool:
    name: str
    title: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    run: Callable[[Daemon, dict[str, Any]], Awaitable[Answer]]


TOOLS: tuple[Tool, ...] = (
    Tool(
        "search_code",
        "Search code",
        "Search the indexed repositories' code. Modes: auto (words and meaning fused, the default), literal (an exact "
        "substring), regex (Python syntax; ^ and $ at line ends), symbol (definitions by name), semantic (by meaning: "
        "'where are passwords hashed'), hybrid. In auto, semantic and hybrid modes the query may hold filters too: "
        'lang:go, path:src/**, -path:vendor/**, repo:name, ref:main, is:test, -is:test, "quoted literal". Hits come '
        "from the worktree unless ref names configured refs; best first, each with its file's lines around it; hits next to each other in one file share one block. Lines are numbered: "
        "'12:' a hit's line, '12-' a line around it. An answer that would pass budget_tokens is cut and gives a cursor.",
        input_schema(
            {
                "query": string_schema("What to find: words, a literal, a regex, a name or a description, per mode.", 1000),
                "mode": {"type": "string", "enum": list(MODES), "default": "auto", "description": "How to match the query."},
                "repo": REPO,
                "ref": REF,
                "path": PATH,
                "language": LANGUAGE,
                "kind": KIND,
                "case_sensitive": {"type": "boolean", "default": False, "description": "literal and regex modes: match case."},
                "limit": integer_schema("Most hits in one answer (the budget may cut it sooner).", 1, 100, 20),
                "context": CONTEXT,
            },
            ["query"],
        ),
        HITS_OUTPUT,
        search_code,
    ),
    Tool(
        "find_symbol",
        "Find a definition",
        "Find where a function, method, class, type or constant is defined, by name: exact name first, then names "
        "starting with it, then near misses; public source code before tests and vendored code. A qualified name "
        "narrows it (Query.filter, http.Server). include_body shows each definition's whole text (as indexed: a very "
        "long definition may be cut into pieces; read_code reads any lines).",
        input_schema(
            {
                "name": string_schema("The name, or a qualified name such as Model.save."),
                "kind": KIND,
                "repo": REPO,
                "ref": REF,
                "path": PATH,
                "language": LANGUAGE,
                "include_body": {
                    "type": "boolean",
                    "default": False,
                    "description": "Show each definition's body, not just its first lines.",
                },
                "limit": integer_schema("Most definitions in one answer.", 1, 50, 10),
                "context": integer_schema("Without include_body: lines shown around each definition's first lines.", 0, 20, 1),
            },
            ["name"],
        ),
        HITS_OUTPUT,
        find_symbol,
    ),
    Tool(
        "find_references",
        "Find references",
        "Find where an identifier is used: every whole-word occurrence that is not one of its definitions, grouped by "
        "file, with line and column. Search-based, as Sourcegraph's search-based navigation: no compiler resolves the "
        "name, so a same-named identifier elsewhere, a string or a comment counts too; narrow with repo, path or language.",
        input_schema(
            {
                "symbol": string_schema("The identifier (for a qualified name, its last part is searched)."),
                "repo": REPO,
                "path": PATH,
                "language": LANGUAGE,
                "case_sensitive": {
                    "type": "boolean",
                    "default": True,
                    "description": "Match the identifier's case (the default).",
                },
            },
            ["symbol"],
        ),
        REFS_OUTPUT,
        find_references,
    ),
    Tool(
        "read_code",
        "Read lines of a file",
        "Read lines of a file of a configured repository, as the file is now in the worktree (or at the configured ref), "
        "numbered. Only files codeweir indexes can be read. Says when the file differs from the version the index "
        "holds (then search hits' line numbers may be off).",
        input_schema(
            {
                "repo": {**REPO, "description": "The repository's name (list_repos shows them)."},
                "path": string_schema("The file's path relative to the repository's root, as search hits give it.", 1000),
                "start_line": integer_schema("First line to read (1-based).", 1, 10_000_000, 1),
                "end_line": integer_schema("Last line to read (inclusive); the end of the file when left out.", 1, 10_000_000),
            },
            ["repo", "path"],
        ),
        READ_OUTPUT,
        read_code,
    ),
    Tool(
        "search_history",
        "Search commits",
        "Search the repositories' commit history by words (messages, authors, changed paths) fused with meaning, "
        "filtered by author, date range and changed path; newest first when no query is given.",
        input_schema(
            {
                "query": string_schema("Words or a description of the change ('fix race in cache eviction').", 1000),
                "author": string_schema("Only commits whose author's name or email holds this word."),
                "since": DATE,
                "until": {**DATE, "description": "Only commits before this date (YYYY-MM-DD)."},
                "path": {**PATH, "description": "Only commits changing a path matching this glob."},
                "repo": REPO,
                "ref": {
                    **REF,
                    "description": "Only commits reachable from this configured ref (a list: any of them) "
                    "instead of the worktree's branch.",
                },
                "limit": integer_schema("Most commits in one answer.", 1, 100, 20),
            }
        ),
        HISTORY_OUTPUT,
        search_history,
    ),
    Tool(
        "list_repos",
        "List repositories",
        "The repositories codeweir indexes: name (for the repo arguments), path, ref, files indexed, last sync and head.",
        input_schema({}),
        REPO_LIST_OUTPUT,
        list_repos,
    ),
    Tool(
        "index_status",
        "Index status",
        "How complete and fresh the index is, per repository: lexical coverage (files indexed of files in the repository), "
        "vector coverage (chunks embedded, which semantic search covers), last sync and errors; the embedding model's "
        "state and the sync queue.",
        input_schema({"repo": REPO}),
        STATUS_OUTPUT,
        index_status,
    ),
)

VALIDATORS = {tool.name: validator_for(tool.input_schema) for tool in TOOLS}
for _tool in TOOLS:
    jsonschema.Draft202012Validator.check_schema(_tool.output_schema)
BY_NAME = {tool.name: tool for tool in TOOLS}


async def call_tool(daemon: Daemon, name: str, arguments: dict[str, Any] | None) -> Answer:
    """The answer of tool `name`; ArgumentError (also for an unknown tool or a bad cursor)."""
    tool = BY_NAME.get(name)
    if tool is None:
        raise ArgumentError(f"unknown tool {name[:60]!r}; tools: {', '.join(BY_NAME)}")
    checked = checked_arguments(name, tool.input_schema, VALIDATORS[name], arguments)
    try:
        answer = await tool.run(daemon, checked)
    except CursorError as exc:
        raise ArgumentError(str(exc)) from None
    except ToolFailed as exc:
        return Answer(str(exc), None, is_error=True)
    return answer
