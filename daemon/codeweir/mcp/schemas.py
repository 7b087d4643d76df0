"""The tools' JSON Schemas (2020-12): the arguments they share and what each tool answers.

An input schema (input_schema) takes the tool's own arguments beside the two every tool takes,
budget_tokens and cursor, and allows no others. Descriptions are written for the model that calls
the tools: what an argument does, what a field of an answer means. mcp/tools.py puts each tool's
input schema together from these pieces.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from codeweir.mcp.budget import DEFAULT_BUDGET, MAX_BUDGET, MAX_CURSOR_CHARS, MIN_BUDGET

# -- arguments ------------------------------------------------------------------------------------


def string_schema(description: str, max_length: int = 200, **more: Any) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": max_length, "description": description, **more}


def integer_schema(description: str, low: int, high: int, default: int | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer", "minimum": low, "maximum": high, "description": description}
    if default is not None:
        schema["default"] = default
    return schema


BUDGET = integer_schema(
    "Most tokens the answer may take (estimated as UTF-8 bytes / 4). A longer answer is cut, says so, and returns next_cursor.",
    MIN_BUDGET,
    MAX_BUDGET,
    DEFAULT_BUDGET,
)
CURSOR = {
    "type": "string",
    "maxLength": MAX_CURSOR_CHARS,
    "description": "next_cursor from this tool's previous answer, to continue where it stopped; pass the same other arguments.",
}
REPO = string_schema("Only this configured repository (see list_repos).")
REF = {
    "type": ["string", "array"],
    "minLength": 1,
    "maxLength": 200,
    "items": {"type": "string", "minLength": 1, "maxLength": 200},
    "maxItems": 16,
    "description": "Search this configured ref (a branch or tag name such as main, release/5.1, v5.1.3; "
    "a list: any of them) instead of the worktree (list_repos shows each repository's refs). Each hit names the refs holding it.",
}
PATH = string_schema(
    "Only paths matching this glob, as a .gitignore line reads: *.py, src/**, django/db (a directory: all below it).", 500
)
LANGUAGE = string_schema("Only files of this language: python, go, rust, javascript, typescript, java, c, cpp, markdown, ...", 50)
KIND = string_schema(
    "Only definitions of this kind: function, method, class, struct, interface, trait, enum, impl, type, module, const, variable.",
    50,
)
CONTEXT = integer_schema("Lines shown before and after each hit's own lines.", 0, 20, 2)

DATE = {
    "type": "string",
    "maxLength": 40,
    "pattern": r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2})?(Z|[+-]\d{2}:\d{2})?)?$",
    "description": "A date: YYYY-MM-DD, or YYYY-MM-DDTHH:MM[:SS][+HH:MM] (UTC without an offset).",
}


def input_schema(properties: dict[str, Any], required: Sequence[str] = ()) -> dict[str, Any]:
    """A tool's input schema: its own `properties` (`required` of them required), budget_tokens
    and cursor, and no others."""
    return {
        "type": "object",
        "properties": {**properties, "budget_tokens": BUDGET, "cursor": CURSOR},
        "required": list(required),
        "additionalProperties": False,
    }


# -- answers --------------------------------------------------------------------------------------

NULLABLE_INT = {"type": ["integer", "null"]}
NULLABLE_STRING = {"type": ["string", "null"]}
NOTES = {"type": "array", "items": {"type": "string"}, "description": "What the answer leaves out or how it was made."}
PAGING = {
    "cut": {"type": "boolean", "description": "The budget cut this answer short; next_cursor continues it."},
    "next_cursor": {**NULLABLE_STRING, "description": "Pass as cursor (same other arguments) for what follows; null at the end."},
    "notes": NOTES,
}

HIT = {
    "type": "object",
    "properties": {
        "repo": {"type": "string"},
        "path": {"type": "string"},
        "start_line": {"type": "integer"},
        "end_line": {"type": "integer"},
        "line": {"type": "integer", "description": "An exact match's line."},
        "column": {"type": "integer", "description": "An exact match's 1-based column, in characters."},
        "symbol": {"type": "string", "description": "The definition this hit is in or is ('' for none)."},
        "kind": {"type": "string"},
        "score": {"type": "number"},
        "stale": {"type": "boolean", "description": "The file changed since it was indexed: its lines may have moved."},
        "refs": {
            "type": "array",
            "items": {"type": "string"},
            "description": "The configured refs holding this version of the file; absent when only the worktree does.",
        },
        "facets": {
            "type": "array",
            "items": {"type": "string"},
            "description": "test, vendored, generated, minified; empty for source.",
        },
    },
    "required": ["repo", "path", "start_line", "end_line", "symbol", "kind", "score", "stale"],
}
BLOCK = {
    "type": "object",
    "description": "Lines of one file shown once for every hit they hold.",
    "properties": {
        "repo": {"type": "string"},
        "path": {"type": "string"},
        "start_line": {"type": "integer"},
        "end_line": {"type": "integer"},
        "stale": {"type": "boolean"},
        "text": {"type": "string", "description": "Lines start_line..end_line of the file as it is now."},
        "truncated": {"type": "boolean", "description": "Lines were left out to fit the budget (read_code shows them)."},
        "hits": {"type": "array", "items": HIT},
    },
    "required": ["repo", "path", "start_line", "end_line", "stale", "text", "truncated", "hits"],
}
HITS_OUTPUT = {
    "type": "object",
    "properties": {
        "blocks": {"type": "array", "items": BLOCK},
        "shown": {"type": "integer", "description": "Hits in this answer."},
        "mode": {"type": "string"},
        **PAGING,
    },
    "required": ["blocks", "shown", "mode", "cut", "next_cursor", "notes"],
}


REFS_OUTPUT = {
    "type": "object",
    "properties": {
        "symbol": {"type": "string"},
        "method": {"type": "string", "description": "How references were found: by search, not by a compiler."},
        "definitions": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "repo": {"type": "string"},
                    "path": {"type": "string"},
                    "line": {"type": "integer"},
                    "symbol": {"type": "string"},
                    "kind": {"type": "string"},
                },
                "required": ["repo", "path", "line", "symbol", "kind"],
            },
        },
        "files": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "repo": {"type": "string"},
                    "path": {"type": "string"},
                    "stale": {"type": "boolean"},
                    "refs": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "line": {"type": "integer"},
                                "column": {"type": "integer"},
                                "text": {"type": "string"},
                            },
                            "required": ["line", "column", "text"],
                        },
                    },
                },
                "required": ["repo", "path", "stale", "refs"],
            },
        },
        "shown": {"type": "integer"},
        "total": {"type": "integer", "description": "References found (at most the search's cap; see complete)."},
        "complete": {"type": "boolean", "description": "False when the search stopped at its cap of matching lines."},
        **PAGING,
    },
    "required": ["symbol", "method", "definitions", "files", "shown", "total", "complete", "cut", "next_cursor", "notes"],
}


READ_OUTPUT = {
    "type": "object",
    "properties": {
        "repo": {"type": "string"},
        "path": {"type": "string"},
        "start_line": {"type": "integer"},
        "end_line": {"type": "integer"},
        "total_lines": {"type": "integer"},
        "text": {"type": "string", "description": "Lines start_line..end_line of the file as it is now."},
        "stale": {"type": "boolean", "description": "The file differs from the version the index holds."},
        **PAGING,
    },
    "required": ["repo", "path", "start_line", "end_line", "total_lines", "text", "stale", "cut", "next_cursor", "notes"],
}


HISTORY_OUTPUT = {
    "type": "object",
    "properties": {
        "commits": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "repo": {"type": "string"},
                    "sha": {"type": "string"},
                    "date": {"type": "string"},
                    "author": {"type": "string"},
                    "summary": {"type": "string"},
                    "snippet": {"type": "string"},
                    "paths": {"type": "array", "items": {"type": "string"}},
                    "paths_total": {"type": "integer"},
                    "score": {"type": "number"},
                },
                "required": ["repo", "sha", "date", "author", "summary", "paths", "score"],
            },
        },
        "shown": {"type": "integer"},
        **PAGING,
    },
    "required": ["commits", "shown", "cut", "next_cursor", "notes"],
}


REPO_LIST_OUTPUT = {
    "type": "object",
    "properties": {
        "repos": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "path": {"type": "string"},
                    "ref": NULLABLE_STRING,
                    "files_indexed": {"type": "integer"},
                    "files_total": NULLABLE_INT,
                    "head": NULLABLE_STRING,
                    "synced_at": {"type": ["number", "null"], "description": "Unix time of the last completed sync."},
                    "error": NULLABLE_STRING,
                },
                "required": ["name", "path", "files_indexed", "synced_at", "error"],
            },
        },
        **PAGING,
    },
    "required": ["repos", "cut", "next_cursor", "notes"],
}
STATUS_OUTPUT = {
    "type": "object",
    "properties": {
        "daemon": {"type": "object"},
        "model": {
            "type": "object",
            "description": "The embedding model: state (ready, building, filling, disabled, failed, ...).",
        },
        "queue": {"type": "object"},
        "rebuilding": {"type": "boolean"},
        "repos": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "files_indexed": {"type": "integer"},
                    "files_total": NULLABLE_INT,
                    "lexical_coverage": {"type": ["number", "null"], "description": "Share of the repository's files indexed."},
                    "chunks": {"type": "integer"},
                    "chunks_embedded": {"type": "integer"},
                    "vector_coverage": {
                        "type": ["number", "null"],
                        "description": "Share of chunks with a vector (semantic search covers these).",
                    },
                    "head": NULLABLE_STRING,
                    "synced_at": {"type": ["number", "null"]},
                    "error": NULLABLE_STRING,
                    "file_errors": {"type": "integer"},
                },
                "required": [
                    "name",
                    "files_indexed",
                    "lexical_coverage",
                    "chunks",
                    "chunks_embedded",
                    "vector_coverage",
                    "synced_at",
                ],
            },
        },
        **PAGING,
    },
    "required": ["daemon", "model", "queue", "rebuilding", "repos", "cut", "next_cursor", "notes"],
}
