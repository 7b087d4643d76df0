"""The chunker's version, alone so that the index can read it without loading tree-sitter."""

# Bump whenever chunk_file's output for the same input may change: the index is rebuilt.
CHUNKER_VERSION = 2  # 2: only the chunk holding a definition's line carries its symbol
