"""The embed backlog's queue: which content hash gets a vector next, and when its text is read."""

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
