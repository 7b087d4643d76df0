"""The project's small, flat set of exceptions.

Adapters (git, store, embed, server) translate third-party errors into these, so callers
catch codeweir's errors and nothing else. Each pickles with its message (and code): a parse
worker process raises them back to the daemon.
"""

from typing import Any


class CodeweirError(Exception):
    """Base of every error codeweir raises on purpose."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception's own pickling calls __init__ with `args` alone, which fails for a subclass
        # whose __init__ takes more (DaemonError); this restores args and fields as they were.
        return _restore, (type(self), self.args, self.__dict__)


def _restore(cls: type[CodeweirError], args: tuple[Any, ...], fields: dict[str, Any]) -> CodeweirError:
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(fields)
    return error


class ConfigError(CodeweirError):
    """The configuration is invalid; the message names the field and the problem."""


class RepoError(CodeweirError):
    """A repository cannot be read: missing, corrupt, not a git repository, bad ref."""


class FileSkipped(CodeweirError):
    """One file cannot be indexed (unreadable, undecodable, unparsable); the sync goes on."""


class StoreError(CodeweirError):
    """The index or the vector store cannot be opened, read or written."""


class ModelError(CodeweirError):
    """An embedding model is missing, malformed or does not fit."""


class RequestError(CodeweirError):
    """A control-API request is malformed or names something that does not exist."""

    def __init__(self, message: str, code: int = -32602) -> None:
        super().__init__(message)
        self.code = code


class Busy(CodeweirError):
    """The daemon cannot take more work now (full queue, too many connections)."""


class DaemonUnreachable(CodeweirError):
    """No daemon answers on the socket: missing, refused, not permitted, gone or stuck."""


class DaemonError(CodeweirError):
    """The daemon answered with a JSON-RPC error."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


EXCERPT_CHARS = 80


def excerpt(text: str, at: int) -> tuple[str, int]:
    """`text` on one line to point at its 0-based offset `at` under it: whole, or if long, the
    EXCERPT_CHARS around `at` with an ellipsis for each cut end; and where `at` is in that."""
    text = text.replace("\n", " ").replace("\t", " ")
    if len(text) <= EXCERPT_CHARS:
        return text, at
    end = min(len(text), max(at + EXCERPT_CHARS // 2, EXCERPT_CHARS))
    start = end - EXCERPT_CHARS
    before, after = ("…" if start else ""), ("…" if end < len(text) else "")
    return before + text[start:end] + after, at - start + len(before)
