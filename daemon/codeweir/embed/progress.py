"""How fast the embed backlog goes and how its progress reads in the log. Pure: no I/O, no trio;
the embedding service passes in the time."""

from __future__ import annotations

import collections
import math

from codeweir.embed.coverage import RepoCoverage

RATE_WINDOW_S = 60.0  # the embed rate is over this last span
PROGRESS_LOG_S = 30.0  # a progress line at most this often while embedding


class EmbedRate:
    """Vectors per second over the last RATE_WINDOW_S."""

    def __init__(self) -> None:
        self._samples: collections.deque[tuple[float, int]] = collections.deque()

    def note(self, now: float, total: int) -> None:
        self._samples.append((now, total))
        while len(self._samples) > 2 and self._samples[1][0] <= now - RATE_WINDOW_S:
            self._samples.popleft()

    def per_second(self, now: float) -> float | None:
        """None while too little is known, or after a minute without a vector."""
        if len(self._samples) < 2 or self._samples[-1][0] <= now - RATE_WINDOW_S:
            return None
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 - t0 >= 1.0 else None


def progress_line(covered: RepoCoverage, *, waiting: int, rate_per_s: float | None, eta_s: int | None) -> str:
    """The embedding's progress as the log says it every PROGRESS_LOG_S."""
    line = f"{covered.chunks_embedded:,} of {covered.chunks:,} chunks have a vector ({covered.percent}%), {waiting:,} texts to go"
    if rate_per_s is not None:
        line += f", {rate_per_s:.1f} vectors/s"
    if eta_s is not None:
        line += f", about {duration(eta_s)} left"
    return line


def duration(seconds: float) -> str:
    seconds = max(0, math.ceil(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
