"""The embed rate over the last minute, and the progress line the log shows."""

from codeweir.embed.coverage import RepoCoverage
from codeweir.embed.progress import EmbedRate, progress_line


def test_the_rate_is_the_vectors_added_over_the_last_minute():
    rate = EmbedRate()
    rate.note(0.0, 0)
    assert rate.per_second(0.0) is None  # one sample: nothing known yet
    rate.note(10.0, 100)
    assert rate.per_second(10.0) == 10.0
    rate.note(70.0, 160)
    rate.note(80.0, 170)  # the samples before 20 s are out of the window
    assert rate.per_second(80.0) == (170 - 100) / (80 - 10)


def test_the_rate_is_unknown_after_a_minute_without_a_vector():
    rate = EmbedRate()
    rate.note(0.0, 0)
    rate.note(10.0, 100)
    assert rate.per_second(70.0) is None


def test_the_progress_line_says_coverage_what_is_left_the_rate_and_the_time_left():
    covered = RepoCoverage(chunks=2000, chunks_embedded=500)
    assert progress_line(covered, waiting=1500, rate_per_s=12.34, eta_s=7300) == (
        "500 of 2,000 chunks have a vector (25%), 1,500 texts to go, 12.3 vectors/s, about 2 h 01 min left"
    )
    assert progress_line(covered, waiting=1500, rate_per_s=None, eta_s=None) == (
        "500 of 2,000 chunks have a vector (25%), 1,500 texts to go"
    )


def test_the_time_left_reads_in_seconds_then_minutes_then_hours():
    covered = RepoCoverage()
    left = [progress_line(covered, waiting=1, rate_per_s=1.0, eta_s=s).rsplit("about ", 1)[1] for s in (119, 120, 7199)]
    assert left == ["119 s left", "2 min left", "119 min left"]
