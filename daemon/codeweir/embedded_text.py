"""What the model sees for a chunk or a commit, and the key its vector is stored under.

Parse workers compute the keys, the embedder reads the texts: both import this small module
rather than embed.py, whose numpy and onnxruntime a worker does not need.
"""

from __future__ import annotations

import hashlib


def document_text(*, language: str, symbol_path: str, kind: str, content: str) -> str:
    """What the model sees for a chunk: a one-line context header, then the content.

    No file path: a renamed or copied file keeps the same text, hence the same vector.
    """
    header = " ".join(part for part in (language, kind, symbol_path) if part)
    return f"{header}\n{content}" if header else content


def content_hash(text: str) -> str:
    """The vector key of a text: 32 hex digits of its sha256."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def commit_text(message: str) -> str:
    """What the model sees for a commit: its message alone. A "commit message:" header lowered
    MRR from 1.000 to 0.972 (18 paraphrased queries among 74 real messages, all-MiniLM-L6-v2)."""
    return message
