import grp
import json
import os
import socket
import stat
from pathlib import Path

import attrs
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codeweir import protocol, protocol_params, protocol_results
from codeweir.config import ServerConfig
from codeweir.errors import Busy, CodeweirError, ConfigError, RequestError, StoreError
from codeweir.service.server import (
    PeerCredentials,
    PeerPolicy,
    bind_unix_socket,
    check_socket_directory,
    peer_credentials,
    peer_policy,
    serve_unix,
)


class Peer:
    """A test client speaking raw lines over a real unix socket."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = b""

    @classmethod
    async def connect(cls, path: Path) -> "Peer":
        return cls(await trio.open_unix_socket(os.fspath(path)))

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def request(self, method: str, params=None, request_id=1) -> dict:
        await self.send(protocol.request(request_id, method, params))
        return await self.read()

    async def read(self) -> dict | None:
        """The next message, or None at end of stream."""
        while b"\n" not in self.buffer:
            data = await self.stream.receive_some(65536)
            if not data:
                return None
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)

    async def aclose(self) -> None:
        await self.stream.aclose()


class Handlers:
    """Real handlers with observable behaviour, one per method."""

    def __init__(self) -> None:
        self.cancelled = trio.Event()
        self.started = trio.Event()

    async def status(self, params, notify):
        return {"ok": True}

    async def search(self, params, notify):
        match params.query:
            case "slow":
                await trio.sleep(3)
            case "forever":
                await trio.sleep_forever()
            case "unknown-repo":
                raise RequestError("no repository named 'x'")
            case "full":
                raise Busy("the sync queue is full")
            case "broken":
                raise StoreError("the index cannot be read")
            case "bug":
                raise ZeroDivisionError("oops")
            case "grouped":
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self.raise_request_error)
        hit = protocol_results.SearchHit(
            repo="r", path="a.py", start_line=1, end_line=2, score=1.0, snippet=params.query, blob="b"
        )
        return protocol_results.SearchResult(results=(hit,), took_ms=0.5, mode=params.mode)

    async def raise_request_error(self):
        raise RequestError("bad glob", code=-32602)

    async def sync(self, params, notify):
        if params.wait:
            for done in range(3):
                await notify(
                    protocol_results.PROGRESS,
                    protocol_results.Progress(job="j1", repo="r", stage="index", done=done, total=2),
                )
        return {"jobs": [{"id": "j1", "repo": params.repo, "state": "completed" if params.wait else "queued"}]}

    async def wait(self, params, notify):
        self.started.set()
        try:
            if params.timeout is None:
                await trio.sleep_forever()
            await trio.sleep(params.timeout)
            return {"done": True}
        except trio.Cancelled:
            self.cancelled.set()
            raise

    def mapping(self) -> dict:
        return {"status": self.status, "search": self.search, "sync": self.sync, "wait": self.wait}


LIMITS = ServerConfig(max_request_bytes=4096, max_connections=4, request_timeout_seconds=5, idle_timeout_seconds=60)


async def start(nursery, tmp_path: Path, handlers=None, **limits) -> Path:
    path = tmp_path / "run" / "codeweir.sock"
    handlers = handlers or Handlers()
    await nursery.start(serve_unix, path, handlers.mapping(), attrs.evolve(LIMITS, **limits))
    return path


async def test_a_request_is_answered(nursery, tmp_path):
    peer = await Peer.connect(await start(nursery, tmp_path))
    assert await peer.request("status") == {"jsonrpc": "2.0", "id": 1, "result": {"ok": True}}


async def test_search_results_are_unstructured_flat_hits(nursery, tmp_path):
    peer = await Peer.connect(await start(nursery, tmp_path))
    answer = await peer.request("search", {"query": "x", "mode": "lexical"})
    assert answer["result"]["mode"] == "lexical"
    assert answer["result"]["results"][0]["path"] == "a.py"


async def test_pipelined_requests_are_answered_in_order(nursery, tmp_path, autojump_clock):
    peer = await Peer.connect(await start(nursery, tmp_path))
    await peer.send(
        protocol.request(1, "search", {"query": "slow"})
        + protocol.request(2, "status")
        + protocol.request(3, "search", {"query": "fast"})
    )
    assert [(await peer.read())["id"] for _ in range(3)] == [1, 2, 3]


@pytest.mark.parametrize(
    ("query", "code", "message"),
    [
        ("unknown-repo", -32602, "no repository named 'x'"),
        ("full", -32000, "busy: the sync queue is full"),
        ("broken", -32000, "the index cannot be read"),
        ("bug", -32603, "internal error"),
        ("grouped", -32602, "bad glob"),
    ],
)
async def test_handler_errors_become_json_rpc_errors_and_the_connection_lives_on(nursery, tmp_path, caplog, query, code, message):
    peer = await Peer.connect(await start(nursery, tmp_path))
    answer = await peer.request("search", {"query": query}, request_id=9)
    assert answer["id"] == 9 and answer["error"] == {"code": code, "message": message}
    assert (await peer.request("status"))["result"] == {"ok": True}
    assert ("ZeroDivisionError" in caplog.text) == (query == "bug")


async def test_protocol_errors_keep_the_connection_alive(nursery, tmp_path):
    peer = await Peer.connect(await start(nursery, tmp_path))
    await peer.send(b"{nope\n")
    assert (await peer.read())["error"]["code"] == protocol.PARSE_ERROR
    assert (await peer.request("reload"))["error"]["code"] == protocol.METHOD_NOT_FOUND
    assert (await peer.request("search", {"qery": "x"}))["error"]["code"] == protocol.INVALID_PARAMS
    assert (await peer.request("status"))["result"] == {"ok": True}


async def test_an_oversized_request_is_refused_and_the_next_one_answered(nursery, tmp_path):
    peer = await Peer.connect(await start(nursery, tmp_path, max_request_bytes=200))
    await peer.send(protocol.request(1, "search", {"query": "x" * 10_000}))
    assert (await peer.read())["error"]["code"] == protocol.REQUEST_TOO_LARGE
    assert (await peer.request("status", request_id=2))["id"] == 2


async def test_a_notification_runs_without_an_answer(nursery, tmp_path):
    peer = await Peer.connect(await start(nursery, tmp_path))
    await peer.send(b'{"jsonrpc": "2.0", "method": "sync", "params": {"repo": "r"}}\n')
    assert (await peer.request("status", request_id=5))["id"] == 5


async def test_a_request_over_its_time_gets_a_timeout_error(nursery, tmp_path, autojump_clock):
    peer = await Peer.connect(await start(nursery, tmp_path, request_timeout_seconds=5))
    start_time = trio.current_time()
    answer = await peer.request("search", {"query": "forever"})
    assert answer["error"]["code"] == protocol.TIMED_OUT and "5 s" in answer["error"]["message"]
    assert trio.current_time() - start_time == pytest.approx(5)
    assert (await peer.request("status"))["result"] == {"ok": True}


async def test_wait_is_bounded_by_its_own_timeout_not_the_request_timeout(nursery, tmp_path, autojump_clock):
    peer = await Peer.connect(await start(nursery, tmp_path, request_timeout_seconds=5))
    assert (await peer.request("wait", {"timeout": 50}))["result"] == {"done": True}


async def test_sync_with_wait_streams_progress_then_answers(nursery, tmp_path):
    peer = await Peer.connect(await start(nursery, tmp_path))
    await peer.send(protocol.request(4, "sync", {"repo": "r", "wait": True}))
    messages = [await peer.read() for _ in range(4)]
    assert [m.get("method") for m in messages] == ["progress"] * 3 + [None]
    assert messages[0]["params"] == {"job": "j1", "repo": "r", "stage": "index", "done": 0, "total": 2}
    assert messages[3] == {
        "jsonrpc": "2.0",
        "id": 4,
        "result": {"jobs": [{"id": "j1", "repo": "r", "state": "completed"}]},
    }


async def test_a_client_leaving_cancels_its_long_running_request(nursery, tmp_path):
    handlers = Handlers()
    peer = await Peer.connect(await start(nursery, tmp_path, handlers))
    await peer.send(protocol.request(1, "wait", {}))
    await handlers.started.wait()
    await peer.aclose()
    await handlers.cancelled.wait()


async def test_a_half_closed_client_still_gets_its_answer(nursery, tmp_path):
    peer = await Peer.connect(await start(nursery, tmp_path))
    await peer.send(protocol.request(1, "search", {"query": "x"}))
    await peer.stream.send_eof()
    assert (await peer.read())["id"] == 1
    assert await peer.read() is None


async def test_when_every_connection_has_a_request_in_flight_a_new_client_is_refused_busy(nursery, tmp_path):
    path = await start(nursery, tmp_path, max_connections=2)
    waiting = [await Peer.connect(path) for _ in range(2)]
    for peer in waiting:
        await peer.send(protocol.request(1, "wait", {}))  # runs until its client leaves
    await trio.testing.wait_all_tasks_blocked()
    for _ in range(10):
        peer = await Peer.connect(path)
        refusal = await peer.read()
        assert refusal["error"]["code"] == -32000 and refusal["error"]["message"].startswith("busy: too many connections")
        assert await peer.read() is None
    await waiting[0].aclose()  # its request is cancelled and its slot freed
    await trio.testing.wait_all_tasks_blocked()
    assert (await (await Peer.connect(path)).request("status"))["result"] == {"ok": True}


async def test_a_new_client_takes_the_slot_of_the_connection_idle_the_longest(nursery, tmp_path, autojump_clock):
    path = await start(nursery, tmp_path, max_connections=3)
    silent = await Peer.connect(path)
    await trio.sleep(1)
    trickling = await Peer.connect(path)
    await trickling.send(protocol.request(1, "status")[:5])  # a line begun, not finished
    await trio.sleep(1)
    answered = await Peer.connect(path)
    assert (await answered.request("status"))["result"]  # idle only since its answer
    await trio.sleep(1)
    newcomers = []
    for evicted in (silent, trickling, answered):
        newcomers.append(await Peer.connect(path))
        assert (await newcomers[-1].request("status"))["result"] == {"ok": True}
        farewell = await evicted.read()
        assert farewell["error"]["message"].startswith("closed: all 3 connection slots were taken")
        assert await evicted.read() is None
        await trio.sleep(1)


async def test_a_client_is_served_while_the_table_is_full_of_idle_and_trickling_connections(nursery, tmp_path):
    path = await start(nursery, tmp_path, max_connections=8, idle_timeout_seconds=300)
    hostile = []
    for i in range(100):
        peer = await Peer.connect(path)
        if i % 2:
            await peer.send(b'{"jsonrpc": "2.0", "id": 1, "meth')  # trickling: a line begun, never finished
        hostile.append(peer)
    await trio.testing.wait_all_tasks_blocked()
    good = await Peer.connect(path)
    assert (await good.request("status"))["result"] == {"ok": True}
    assert (await good.request("search", {"query": "while they wait"}))["result"]["results"]
    # Each newcomer took the slot of an older one: only the last few hold one still.
    closed = 0
    for peer in hostile[:90]:
        assert (await peer.read())["error"]["message"].startswith("closed: all 8 connection slots were taken")
        closed += 1
    assert closed == 90


async def test_a_request_line_trickled_a_byte_a_second_is_cut_off_at_its_deadline_and_frees_its_slot(
    nursery, tmp_path, autojump_clock
):
    path = await start(nursery, tmp_path, max_connections=1, request_line_seconds=5, idle_timeout_seconds=60)
    loris = await Peer.connect(path)
    request = protocol.request(1, "status")
    await trio.sleep(20)  # silence alone is within the idle timeout
    first_byte = trio.current_time()
    for byte in request[:-1]:
        try:
            await loris.send(bytes([byte]))
        except trio.BrokenResourceError:
            break
        await trio.sleep(1)  # a byte a second: each one alone would reset a naive idle timer
    farewell = await loris.read()
    assert farewell["error"]["code"] == protocol.TIMED_OUT and "request timeout" in farewell["error"]["message"]
    assert "within 5 s of its first byte" in farewell["error"]["message"]
    assert 5 <= trio.current_time() - first_byte <= 6  # noticed within one trickle interval
    assert (await (await Peer.connect(path)).request("status"))["result"] == {"ok": True}


async def test_the_line_deadline_runs_from_each_requests_first_byte(nursery, tmp_path, autojump_clock):
    path = await start(nursery, tmp_path, request_line_seconds=5, idle_timeout_seconds=60)
    peer = await Peer.connect(path)
    for _ in range(3):
        request = protocol.request(1, "status")
        await peer.send(request[:10])
        await trio.sleep(4)
        await peer.send(request[10:] + protocol.request(2, "status")[:10])  # the next line begins at once
        assert (await peer.read())["id"] == 1
        await trio.sleep(4)
        await peer.send(protocol.request(2, "status")[10:])
        assert (await peer.read())["id"] == 2
        await trio.sleep(30)


async def test_a_silent_connection_is_closed_after_the_idle_timeout(nursery, tmp_path, autojump_clock):
    peer = await Peer.connect(await start(nursery, tmp_path, idle_timeout_seconds=30))
    assert (await peer.request("status"))["result"]
    assert "idle timeout" in (await peer.read())["error"]["message"]
    assert await peer.read() is None


def test_the_peer_policy_lets_in_the_daemon_user_root_and_the_group():
    policy = PeerPolicy(uid=1000, group_gid=500, member_uids=frozenset({1002}))
    assert policy.allows(1000, 1000)
    assert policy.allows(0, 0)
    assert policy.allows(1001, 500)  # primary group
    assert policy.allows(1002, 1002)  # supplementary member
    assert not policy.allows(1003, 1003)
    assert not PeerPolicy(uid=1000).allows(1001, 500)


def test_the_peer_policy_resolves_the_configured_group():
    assert peer_policy("") == PeerPolicy(os.getuid())
    group = grp.getgrgid(os.getgid())
    assert peer_policy(group.gr_name).group_gid == group.gr_gid
    with pytest.raises(ConfigError, match="server.group: no such group 'no-such-group-xyz'"):
        peer_policy("no-such-group-xyz")


def test_peer_credentials_are_read_from_a_real_socket():
    left, right = socket.socketpair(socket.AF_UNIX)
    with left, right:
        assert peer_credentials(left) == PeerCredentials(os.getpid(), os.getuid(), os.getgid())


def test_the_socket_is_created_private_in_a_new_private_directory(tmp_path):
    path = tmp_path / "a" / "b" / "codeweir.sock"
    umask = os.umask(0o022)
    try:
        sock = bind_unix_socket(path)
        assert os.umask(0o022) == 0o022  # restored
    finally:
        os.umask(umask)
    with sock:
        assert stat.S_ISSOCK(path.lstat().st_mode)
        assert path.lstat().st_mode & 0o077 == 0
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700


def test_a_stale_socket_file_is_replaced(tmp_path):
    path = tmp_path / "codeweir.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(os.fspath(path))  # a daemon that died left its file behind
    with bind_unix_socket(path) as sock:
        assert sock.getsockname() == os.fspath(path)


def test_a_live_socket_is_not_clobbered(tmp_path):
    path = tmp_path / "codeweir.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as live:
        live.bind(os.fspath(path))
        live.listen()
        with pytest.raises(CodeweirError, match="already listening"):
            bind_unix_socket(path)
    assert path.exists()


def test_a_file_that_is_not_a_socket_is_not_replaced(tmp_path):
    path = tmp_path / "codeweir.sock"
    path.write_text("precious")
    with pytest.raises(CodeweirError, match="is not a socket"):
        bind_unix_socket(path)
    assert path.read_text() == "precious"


def test_a_directory_others_can_write_to_is_refused():
    check_socket_directory(Path("/run/user/1000"), 0o40700, 1000, 1000)
    check_socket_directory(Path("/run/codeweir"), 0o40755, 0, 1000)
    with pytest.raises(CodeweirError, match="world-writable"):
        check_socket_directory(Path("/tmp"), 0o41777, 0, 1000)
    with pytest.raises(CodeweirError, match="belongs to uid 1001"):
        check_socket_directory(Path("/tmp/codeweir-1000"), 0o40700, 1001, 1000)


async def test_the_socket_file_is_removed_when_the_server_stops(tmp_path):
    async with trio.open_nursery() as nursery:
        path = await start(nursery, tmp_path)
        assert path.exists()
        nursery.cancel_scope.cancel()
    assert not path.exists()


async def test_a_listening_socket_handed_over_is_served_and_left_in_place(nursery, tmp_path):
    path = tmp_path / "activated.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(os.fspath(path))
    listener.listen()
    await nursery.start(serve_unix, listener, Handlers().mapping(), LIMITS)
    assert (await (await Peer.connect(path)).request("status"))["result"] == {"ok": True}


async def test_handlers_for_unknown_methods_are_refused_at_start(tmp_path):
    async def handler(params, notify):
        return None

    with pytest.raises(ValueError, match="frobnicate"):
        await serve_unix(tmp_path / "s.sock", {"frobnicate": handler}, LIMITS)


fuzz_lines = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=100).map(str.encode),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
        max_leaves=8,
    ).map(lambda v: json.dumps(v).encode()),
    st.builds(
        lambda method, params, request_id: json.dumps(
            {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        ).encode(),
        st.sampled_from(sorted(protocol_params.PARAMS) + ["nope"]),
        st.dictionaries(
            st.sampled_from(["query", "repo", "all", "timeout", "limit", "x"]),
            st.integers() | st.text(max_size=5),
        ),
        st.integers() | st.text(max_size=4),
    ),
    st.integers(1, 2000).map(lambda depth: b"[" * depth + b"]" * depth),
)

FUZZ_EXAMPLES = 150


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(fuzz_lines, min_size=1, max_size=4))
async def test_a_live_socket_answers_every_malformed_input_and_then_a_good_request(tmp_path, lines):
    async def answer_at_once(params, notify):
        return {"ok": True}

    handlers = dict.fromkeys(protocol_params.PARAMS, answer_at_once)
    async with trio.open_nursery() as nursery:
        path = tmp_path / "fuzz.sock"
        await nursery.start(serve_unix, path, handlers, attrs.evolve(LIMITS, max_request_bytes=1024))
        peer = await Peer.connect(path)
        await peer.send(b"\n".join(lines) + b"\n" + protocol.request("final", "status"))
        while (message := await peer.read())["id"] != "final":
            assert ("result" in message) != ("error" in message)
        assert message["result"] == {"ok": True}
        nursery.cancel_scope.cancel()
