"""The embed backlog's queue: which content hash gets a vector next, and when its text is read."""

from hypothesis import given
from hypothesis import strategies as st

from codeweir.embed.queue import EmbedQueue


def test_a_hash_offered_again_with_a_better_priority_moves_up_and_is_given_out_once():
    queue = EmbedQueue()
    queue.push("a" * 32, "chunk", "def a(): pass", rank=0)
    queue.push("b" * 32, "chunk", "def b(): pass", rank=2)
    queue.push("b" * 32, "chunk", "def b(): pass", rank=2, interactive=True)
    assert len(queue) == 2 and queue.waiting("chunk") == 2
    assert [h for h, _ in queue.take(10, commits=0, done=lambda h: False)] == ["b" * 32, "a" * 32]
    assert queue.take(10, commits=0, done=lambda h: False) == [] and len(queue) == 0


def test_past_its_texts_the_queue_keeps_hashes_and_gives_them_out_once_the_commit_holding_them_landed():
    queue = EmbedQueue(max_texts=1)
    queue.push("a" * 32, "chunk", "def a(): pass", rank=0, after_commit=1)
    queue.push("b" * 32, "chunk", "def b(): pass", rank=0, after_commit=1)  # its text is not kept
    [(first, todo)] = queue.take(10, commits=0, done=lambda h: False)
    assert (first, todo.text) == ("a" * 32, "def a(): pass")
    assert queue.take(10, commits=0, done=lambda h: False) == [] and len(queue) == 1  # not readable yet
    queue.committed()
    [(second, todo)] = queue.take(10, commits=1, done=lambda h: False)
    assert (second, todo.text) == ("b" * 32, None) and len(queue) == 0  # read from the index now


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 3), st.booleans()), max_size=40))
def test_hashes_come_out_interactive_first_then_by_rank_then_by_arrival(offers):
    """Each offer: (which hash, its rank, interactive). A hash offered again keeps its first
    arrival unless the new offer ranks better, which moves it to that offer's place."""
    queue = EmbedQueue()
    best: dict[str, tuple[int, int, int]] = {}
    for arrival, (which, rank, interactive) in enumerate(offers):
        h = f"{which:032x}"
        queue.push(h, "chunk", "text", rank=rank, interactive=interactive)
        order = (0 if interactive else 1, rank, arrival)
        if h not in best or order[:2] < best[h][:2]:
            best[h] = order
    taken = [h for h, _ in queue.take(100, commits=0, done=lambda h: False)]
    assert taken == sorted(best, key=best.__getitem__)


def test_past_its_bound_on_hashes_the_queue_leaves_them_out_and_says_after_which_commit_a_scan_finds_them():
    queue = EmbedQueue(max_texts=1, max_hashes=2)
    queue.push("a" * 32, "chunk", "def a(): pass", rank=0, after_commit=1)  # its text is kept
    queue.push("b" * 32, "chunk", None, rank=0, after_commit=1)
    queue.push("c" * 32, "chunk", None, rank=1, after_commit=2)
    assert queue.full and queue.left_out_until is None
    queue.push("d" * 32, "chunk", None, rank=0, after_commit=3)  # left out
    queue.push("e" * 32, "chunk", "def e(): pass", rank=0, after_commit=2)  # no room for its text either
    queue.push("f" * 32, "chunk", None, rank=0, interactive=True, after_commit=2)  # a watcher's: kept
    queue.push("b" * 32, "chunk", None, rank=0, after_commit=4)  # queued already: stays
    assert len(queue) == 4 and "d" * 32 not in queue and "e" * 32 not in queue
    assert queue.left_out_until == 3
    queue.committed()
    taken = queue.take(10, commits=4, done=lambda h: False)
    assert [h[0] for h, _ in taken] == ["f", "a", "b", "c"] and not queue.full
