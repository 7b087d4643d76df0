"""The project's small, flat set of exceptions.

Adapters (git, store, embed, server) translate third-party errors into these, so callers
catch codeweir's errors and nothing else.
"""


class CodeweirError(Exception):
    """Base of every error codeweir raises on purpose."""


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
