import socket
import threading
from functools import partial

import pytest
import trio
import trio.testing

from codeweir import client as client_module
from codeweir import protocol, protocol_results
from codeweir.client import HOW_TO_START, Client, Notification, Response
from codeweir.config import ServerConfig
from codeweir.errors import DaemonError, DaemonUnreachable, RequestError
from codeweir.service.server import serve_unix


async def status(params, notify):
    return {"ok": True}


async def search(params, notify):
    if params.query == "stuck":
        await trio.sleep_forever()
    raise RequestError(f"no repository named {params.repo!r}")


async def sync(params, notify):
    for done in (1, 2):
        await notify(protocol_results.PROGRESS, protocol_results.Progress(job="j1", repo=params.repo, stage="scan", done=done))
    return {"jobs": [{"id": "j1", "state": "completed"}]}


HANDLERS = {"status": status, "search": search, "sync": sync}


async def start(nursery, tmp_path, **limits):
    path = tmp_path / "codeweir.sock"
    await nursery.start(serve_unix, path, HANDLERS, ServerConfig(**limits))
    return path


async def in_thread(function, *args, **kwargs):
    return await trio.to_thread.run_sync(partial(function, *args, **kwargs))


async def test_call_returns_the_result_and_the_connection_serves_the_next_call(nursery, tmp_path):
    with Client(await start(nursery, tmp_path)) as client:
        assert await in_thread(client.call, "status") == {"ok": True}
        assert await in_thread(client.call, "status") == {"ok": True}


async def test_a_daemon_error_carries_its_code_and_message_and_the_client_goes_on(nursery, tmp_path):
    with Client(await start(nursery, tmp_path)) as client:
        with pytest.raises(DaemonError) as caught:
            await in_thread(client.call, "search", {"query": "x", "repo": "nope"})
        assert caught.value.code == -32602 and caught.value.message == "no repository named 'nope'"
        with pytest.raises(DaemonError, match="method not found: 'repos'"):
            await in_thread(client.call, "repos")
        assert await in_thread(client.call, "status") == {"ok": True}


async def test_stream_yields_the_notifications_then_the_response(nursery, tmp_path):
    with Client(await start(nursery, tmp_path)) as client:
        items = await in_thread(lambda: list(client.stream("sync", {"repo": "r", "wait": True}, timeout=None)))
    progress = {"job": "j1", "repo": "r", "stage": "scan", "total": None}
    assert items == [
        Notification("progress", {**progress, "done": 1}),
        Notification("progress", {**progress, "done": 2}),
        Response({"jobs": [{"id": "j1", "state": "completed"}]}),
    ]


async def test_call_skips_notifications(nursery, tmp_path):
    with Client(await start(nursery, tmp_path)) as client:
        result = await in_thread(client.call, "sync", {"repo": "r", "wait": True})
    assert result == {"jobs": [{"id": "j1", "state": "completed"}]}


def test_a_missing_socket_is_unreachable_and_says_how_to_start_the_daemon(tmp_path):
    with pytest.raises(DaemonUnreachable) as caught:
        Client(tmp_path / "none.sock").call("status")
    assert "not running" in str(caught.value) and HOW_TO_START in str(caught.value)


def test_a_socket_nobody_listens_on_is_unreachable(tmp_path):
    path = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(path))
    with pytest.raises(DaemonUnreachable, match="not running"):
        Client(path).call("status")


async def test_a_daemon_that_does_not_answer_in_time_is_unreachable(nursery, tmp_path):
    with Client(await start(nursery, tmp_path), timeout=0.2) as client:
        with pytest.raises(DaemonUnreachable, match="did not answer within 0.2 s"):
            await in_thread(client.call, "search", {"query": "stuck"})


async def test_a_refusal_for_too_many_connections_is_a_daemon_error(nursery, tmp_path):
    path = await start(nursery, tmp_path, max_connections=1)
    first = await trio.open_unix_socket(str(path))
    await first.send_all(protocol.request(1, "search", {"query": "stuck"}))
    await trio.testing.wait_all_tasks_blocked()  # its request is in flight: the one slot is not idle
    with Client(path) as second:
        with pytest.raises(DaemonError, match="busy: too many connections") as caught:
            await in_thread(second.call, "status")
        assert caught.value.code == protocol.SERVER_ERROR
    await first.aclose()


async def test_a_kept_connection_the_daemon_closed_while_idle_is_opened_again(nursery, tmp_path):
    path = await start(nursery, tmp_path, max_connections=1)
    with Client(path) as client:
        assert await in_thread(client.call, "status") == {"ok": True}
        with Client(path) as newcomer:  # takes the one slot: the idle connection is closed
            assert await in_thread(newcomer.call, "status") == {"ok": True}
        await trio.testing.wait_all_tasks_blocked()
        assert await in_thread(client.call, "status") == {"ok": True}


async def test_a_connection_refused_while_the_accept_queue_is_full_is_tried_again(nursery, tmp_path, monkeypatch):
    path = tmp_path / "codeweir.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(0)
    queued = []
    while True:  # fill the accept queue: then a connection is refused at once (EAGAIN)
        waiting = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        waiting.setblocking(False)
        try:
            waiting.connect(str(path))
        except BlockingIOError:
            waiting.close()
            break
        queued.append(waiting)
    refused = threading.Event()
    sleep = client_module.time.sleep

    def pause(seconds: float) -> None:  # the client waits before it tries again
        refused.set()
        sleep(seconds)

    monkeypatch.setattr(client_module.time, "sleep", pause)
    with Client(path) as client:
        answers = []
        async with trio.open_nursery() as calls:
            calls.start_soon(in_thread_append, answers, client.call, "status")
            await trio.to_thread.run_sync(refused.wait)
            await nursery.start(serve_unix, listener, HANDLERS, ServerConfig())  # the queue drains
        assert answers == [{"ok": True}]
    for waiting in queued:
        waiting.close()


async def in_thread_append(results: list, function, *args):
    results.append(await in_thread(function, *args))
