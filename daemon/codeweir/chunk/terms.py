"""How code is split into the terms the index holds and a query asks for: the subwords of
`words` and the whole identifiers of `ident`. Pure; the parse workers split each chunk's text
into subwords, the index's writer into identifiers.

Tantivy's regex tokenizer pays per match: splitting chunk text into subwords and identifiers
took 10.5 of a full index's 21 seconds on Tantivy's one indexing thread (go-std). Split here,
by Python's C regex in the parse workers beside tree-sitter, the index only cuts at spaces.
"""

from __future__ import annotations

import re

# Subwords: `parseDuration`, `parse_duration` and `ParseDuration` all give "parse", "duration".
PARTS_PATTERN = r"[A-Z]+[a-z]*|[a-z]+|[0-9]+"
PART = re.compile(PARTS_PATTERN)
# Whole identifiers, so an exact identifier query can rank its exact match first: every byte
# but ASCII letters, digits and `_` becomes a space, by one table lookup a byte (a regex
# substitution took 18 times as long).
_IDENTIFIER_BYTES = bytes(c if chr(c).isascii() and (chr(c).isalnum() or chr(c) == "_") else ord(" ") for c in range(256))


def words(text: str) -> str:
    """The subwords of `text`, lowercased, one space between."""
    return " ".join(PART.findall(text)).lower()


def parts(text: str) -> list[str]:
    """The subwords of `text`, lowercased: `parseDuration` gives ["parse", "duration"]."""
    return words(text).split()


def identifier_text(text: str) -> str:
    """The identifiers of `text` (runs of ASCII letters, digits and `_`), lowercased, spaces between."""
    return text.encode("utf-8", "surrogatepass").translate(_IDENTIFIER_BYTES).lower().decode("ascii")


def identifiers(text: str) -> list[str]:
    """The identifiers of `text`, lowercased."""
    return identifier_text(text).split()
