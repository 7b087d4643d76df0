"""embed/coverage.py: what status and semantic search say is embedded, kept up to date."""

import numpy as np

from codeweir.embed.coverage import Coverage, RepoCoverage
from codeweir.index.chunk_hashes import ChunkHashChange
from codeweir.index.digest_counts import DigestCounts, digests64


class Stored(set[str]):
    """Hashes with vectors, as the vector store tells them."""

    def digests(self):
        return digests64(self)

    def has(self, hashes):
        return np.array([h in self for h in hashes], bool)


def test_coverage_counts_the_chunks_whose_text_has_a_vector_and_follows_commits_and_new_vectors():
    vectors = Stored({"h1"})
    coverage = Coverage()
    coverage.reset({"app": DigestCounts.of(["h1", "h1", "h2"]), "lib": DigestCounts.of(["h2"])}, vectors)
    # h1 is the text of two identical chunks: two chunks, one text.
    assert coverage.of("app") == RepoCoverage(chunks=3, chunks_embedded=2, texts=2, texts_embedded=1)
    assert coverage.of("lib") == RepoCoverage(chunks=1, chunks_embedded=0, texts=1, texts_embedded=0)
    assert coverage.of("app").percent == 66 and coverage.texts_missing() == 2

    vectors.add("h2")
    coverage.added(["h2"])  # one vector: every repository whose chunks have that text
    assert coverage.of("app") == RepoCoverage(3, 3, 2, 2) and coverage.of("lib") == RepoCoverage(1, 1, 1, 1)
    assert coverage.total().percent == 100

    coverage.changed([ChunkHashChange("app", "h1", -2), ChunkHashChange("app", "h3", 1), ChunkHashChange("lib", "h2", -1)])
    assert coverage.of("app") == RepoCoverage(2, 1, 2, 1)
    assert coverage.of("lib") == RepoCoverage() and coverage.total() == RepoCoverage(2, 1, 2, 1)

    vectors.discard("h2")  # the store forgot it
    coverage.recount()
    assert coverage.of("app") == RepoCoverage(2, 0, 2, 0)


def test_a_repository_dropped_counts_nothing_and_may_come_back():
    coverage = Coverage()
    coverage.reset({"app": DigestCounts.of(["h1", "h2"])}, Stored({"h1"}))
    coverage.changed([ChunkHashChange("app", None, 0), ChunkHashChange("app", "h1", 1)])
    assert coverage.of("app") == RepoCoverage(1, 1, 1, 1) and coverage.texts_missing() == 0
