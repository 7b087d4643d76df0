"""codeweir: a local code-search daemon."""

__version__ = "0.1.0"
