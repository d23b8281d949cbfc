"""The small gRPC server's unary and server-streaming methods (what the embedded node serves on it),
driven by grpcio's client: one request then the answer, statuses with percent-encoded messages and
binary trailing metadata, the client's deadline, a server stream the client cancels, and large
messages through flow control; and what the server writes itself rather than through h2 (response
HEADERS, DATA and trailers) as a strict HTTP/2 client sees it: many calls at once, a small window,
a header table the client shrinks, trailers too large for one frame."""

from __future__ import annotations

import asyncio
import socket
import threading

import grpc
import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest
from google.protobuf import wrappers_pb2
from google.rpc import status_pb2

from chaincode import H2Server, Method, Stream

pytestmark = pytest.mark.timeout(60)
BYTES = wrappers_pb2.BytesValue


class Served:
    """An :class:`H2Server` on its own loop thread with three methods: ``Echo`` (unary, answers the
    request, or fails with the status the request names), ``Deadline`` (answers the seconds left)
    and ``Count`` (server-streaming, one message per 10 ms until cancelled)."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.cancelled = threading.Event()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = H2Server([
            Method("/t.T/Echo", BYTES.FromString, self.echo, full=True),
            Method("/t.T/Deadline", BYTES.FromString, self.deadline, full=True),
            Method("/t.T/Count", BYTES.FromString, self.count, full=True),
        ])
        self.port = asyncio.run_coroutine_threadsafe(self._listen(), self.loop).result(10)

    async def _listen(self) -> int:
        return self.server.listen("127.0.0.1", 0)

    def echo(self, stream: Stream):
        def on_message(req) -> None:
            if req.value.startswith(b"fail"):
                text = "d" * 30000 if req.value == b"failbig" else "details"
                details = status_pb2.Status(code=10, message=text).SerializeToString()
                stream.close(10, "100% refusé\nnext line", (("grpc-status-details-bin", details),))
            else:
                stream.send(req)
                stream.close(0)

        return on_message, lambda: None, lambda: None

    def deadline(self, stream: Stream):
        def on_message(req) -> None:
            left = stream.time_remaining()
            stream.send(BYTES(value=b"none" if left is None else str(left).encode()))
            stream.close(0)

        return on_message, lambda: None, lambda: None

    def count(self, stream: Stream):
        async def run() -> None:
            n = 0
            try:
                while True:
                    stream.send(BYTES(value=str(n).encode()))
                    await stream.drain()
                    n += 1
                    await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                self.cancelled.set()

        state = {}

        def on_message(_req) -> None:
            state["task"] = asyncio.get_running_loop().create_task(run())

        return on_message, lambda: state["task"].cancel(), lambda: None

    def close(self) -> None:
        async def stop() -> None:
            self.server.close()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def served():
    s = Served()
    with grpc.insecure_channel(f"127.0.0.1:{s.port}", options=[
        ("grpc.max_receive_message_length", 64 * 1024 * 1024),
        ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ("grpc.max_metadata_size", 256 * 1024),
        ("grpc.absolute_max_metadata_size", 256 * 1024),
    ]) as ch:
        yield s, ch
    s.close()


def _unary(ch, name: str):
    return ch.unary_unary(f"/t.T/{name}", request_serializer=BYTES.SerializeToString,
                          response_deserializer=BYTES.FromString)


def test_unary_answers_after_the_request_and_large_messages_pass_flow_control(served):
    _, ch = served
    assert _unary(ch, "Echo")(BYTES(value=b"hello"), timeout=10).value == b"hello"
    big = bytes(range(256)) * (20 * 1024 * 1024 // 256)  # 20 MiB: past every window
    assert _unary(ch, "Echo")(BYTES(value=big), timeout=30).value == big


def test_status_message_is_percent_encoded_and_binary_trailers_arrive(served):
    _, ch = served
    with pytest.raises(grpc.RpcError) as e:
        _unary(ch, "Echo")(BYTES(value=b"fail"), timeout=10)
    assert e.value.code() == grpc.StatusCode.ABORTED
    assert e.value.details() == "100% refusé\nnext line"
    trailers = dict(e.value.trailing_metadata())
    assert status_pb2.Status.FromString(trailers["grpc-status-details-bin"]).message == "details"


def test_the_client_deadline_reaches_the_handler(served):
    _, ch = served
    left = _unary(ch, "Deadline")(BYTES(), timeout=30).value
    assert 0 < float(left) <= 31  # (grpc rounds the timeout it sends up)
    assert _unary(ch, "Deadline")(BYTES()).value == b"none"


def test_a_server_stream_the_client_cancels_cancels_its_handler(served):
    s, ch = served
    call = ch.unary_stream("/t.T/Count", request_serializer=BYTES.SerializeToString,
                           response_deserializer=BYTES.FromString)(BYTES(), timeout=30)
    got = [next(call).value for _ in range(3)]
    assert got == [b"0", b"1", b"2"]
    call.cancel()
    assert s.cancelled.wait(10)


def test_an_unknown_method_is_unimplemented(served):
    _, ch = served
    with pytest.raises(grpc.RpcError) as e:
        _unary(ch, "Nope")(BYTES(), timeout=10)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_many_concurrent_unary_calls_all_answer_and_release_their_streams(served):
    _, ch = served
    echo = _unary(ch, "Echo")
    for _ in range(2):  # 600 calls, 300 at once: past h2's 100 concurrent streams unless each one closes
        futures = [echo.future(BYTES(value=b"%d" % i * (1 + i % 40)), timeout=30) for i in range(300)]
        assert [f.result().value for f in futures] == [b"%d" % i * (1 + i % 40) for i in range(300)]


def test_trailers_too_large_for_one_frame_arrive_whole(served):
    _, ch = served
    with pytest.raises(grpc.RpcError) as e:
        _unary(ch, "Echo")(BYTES(value=b"failbig"), timeout=10)
    assert e.value.code() == grpc.StatusCode.ABORTED
    details = dict(e.value.trailing_metadata())["grpc-status-details-bin"]
    assert status_pb2.Status.FromString(details).message == "d" * 30000


def _grpc_frame(value: bytes) -> bytes:
    body = BYTES(value=value).SerializeToString()
    return b"\x00" + len(body).to_bytes(4, "big") + body


def test_a_strict_http2_client_sees_valid_frames_within_its_small_window(served):
    """h2 as the client checks every frame the server writes: HPACK blocks it must decode (after it
    shrank the header table to 0), DATA never past its 1000-byte stream windows, trailers closing
    each stream; and at the end the server's send window is the client's receive window."""
    s, _ = served
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    c.initiate_connection()
    c.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1000,
                       h2.settings.SettingCodes.HEADER_TABLE_SIZE: 0})
    values = {1: b"small", 3: bytes(range(256)) * 200, 5: b"fail", 7: b"x" * 10000}
    for sid, value in values.items():
        c.send_headers(sid, [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/t.T/Echo"),
                             (b":authority", b"t"), (b"content-type", b"application/grpc"), (b"te", b"trailers")])
        body = _grpc_frame(value)
        for i in range(0, len(body), 16384):
            c.send_data(sid, body[i:i + 16384], end_stream=i + 16384 >= len(body))
    sock.sendall(c.data_to_send())
    headers, data, trailers, ended = {}, {sid: b"" for sid in values}, {}, set()
    pinged = False
    while True:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        for ev in c.receive_data(chunk):  # raises on any frame past a window or out of state
            if isinstance(ev, h2.events.ResponseReceived):
                headers[ev.stream_id] = ev.headers
            elif isinstance(ev, h2.events.DataReceived):
                data[ev.stream_id] += ev.data
                c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.TrailersReceived):
                trailers[ev.stream_id] = dict(ev.headers)
            elif isinstance(ev, h2.events.StreamEnded):
                ended.add(ev.stream_id)
            elif isinstance(ev, h2.events.PingAckReceived):
                pinged = True
        if ended == set(values) and not pinged:
            c.ping(b"12345678")  # answered once the server has read every WINDOW_UPDATE before it
        sock.sendall(c.data_to_send())
        if pinged:
            break
    for sid, value in values.items():
        assert headers[sid] == [(b":status", b"200"), (b"content-type", b"application/grpc")]
        assert data[sid] == (b"" if value == b"fail" else _grpc_frame(value))
    assert {trailers[sid][b"grpc-status"] for sid in (1, 3, 7)} == {b"0"}
    assert trailers[5][b"grpc-status"] == b"10"
    assert trailers[5][b"grpc-message"] == b"100%25 refus%C3%A9%0Anext line"
    (conn,) = s.server.connections
    assert not conn.h2.encoder.header_table.resized  # the table size update went out
    assert conn.h2.outbound_flow_control_window == c._inbound_flow_control_window_manager.current_window_size
    assert not conn.calls and not conn.h2.open_inbound_streams
    sock.close()


def _strict_client(port: int):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    c.initiate_connection()
    return sock, c


_REQUEST = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/t.T/Echo"), (b":authority", b"t"),
            (b"content-type", b"application/grpc"), (b"te", b"trailers")]


def _answers(sock, c, streams: set[int]) -> dict[int, bytes]:
    """Read until every stream in ``streams`` ended; the response bytes of each."""
    data, ended = {sid: b"" for sid in streams}, set()
    while ended != streams:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        for ev in c.receive_data(chunk):
            if isinstance(ev, h2.events.DataReceived):
                data[ev.stream_id] += ev.data
                c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                ended.add(ev.stream_id)
        sock.sendall(c.data_to_send())
    return data


def test_requests_in_every_framing_a_client_may_choose_are_answered(served):
    """The server reads a request's HEADERS and DATA itself when they come as one frame each; a
    header block continued in CONTINUATION frames, HEADERS with a priority, and padded DATA go to
    h2, and mixed on one connection they all answer, with every stream released."""
    s, _ = served
    sock, c = _strict_client(s.port)
    big = [(b"x-big", b"v" * 40000)]  # past the 16 KB frame: HEADERS + CONTINUATION
    c.send_headers(1, _REQUEST + big)
    c.send_data(1, _grpc_frame(b"continued"), end_stream=True)
    c.send_headers(3, _REQUEST, priority_weight=200)  # HEADERS with the PRIORITY flag
    c.send_data(3, _grpc_frame(b"prioritised"), end_stream=True)
    c.send_headers(5, _REQUEST)
    c.send_data(5, _grpc_frame(b"padded"), end_stream=True, pad_length=10)
    c.send_headers(7, _REQUEST)  # the plain framing, split: a DATA frame, then an empty one ending it
    c.send_data(7, _grpc_frame(b"plain"))
    c.send_data(7, b"", end_stream=True)
    sock.sendall(c.data_to_send())
    data = _answers(sock, c, {1, 3, 5, 7})
    assert data == {1: _grpc_frame(b"continued"), 3: _grpc_frame(b"prioritised"), 5: _grpc_frame(b"padded"),
                    7: _grpc_frame(b"plain")}
    (conn,) = s.server.connections
    assert not conn.calls and not conn.h2.open_inbound_streams
    sock.close()


def _goaway_code(sock) -> int:
    """The error code of the GOAWAY the server sends before it closes the connection."""
    got = b""
    while chunk := sock.recv(65536):
        got += chunk
    pos = 0
    while pos + 9 <= len(got):
        length, kind = int.from_bytes(got[pos:pos + 3], "big"), got[pos + 3]
        if kind == 0x7:
            return int.from_bytes(got[pos + 13:pos + 17], "big")
        pos += 9 + length
    raise AssertionError("no GOAWAY before the connection closed")


@pytest.mark.parametrize("block, code", [
    (b"\xff\xff\xff\xff\x0f", 0x9),  # an indexed field far past any table: COMPRESSION_ERROR
    # a 4,000-byte field added to the table, then named 20 times: 84 KB of headers from a 4 KB block,
    # over the 64 KB limit: ENHANCE_YOUR_CALM
    (b"\x40\x01a\x7f\xa1\x1e" + b"v" * 4000 + b"\xbe" * 20, 0xB),
    (b"\x00\x01a\x7f\x81\x80\x04" + b"v" * 70000, 0x6),  # one frame past the 16 KB limit: FRAME_SIZE_ERROR
])
def test_a_header_block_refused_ends_the_connection(served, block, code):
    s, _ = served
    sock, c = _strict_client(s.port)
    c.send_headers(1, _REQUEST)  # (a connection's first request is h2's to read)
    c.send_data(1, _grpc_frame(b"first"), end_stream=True)
    sock.sendall(c.data_to_send())
    assert _answers(sock, c, {1}) == {1: _grpc_frame(b"first")}
    sock.sendall(len(block).to_bytes(3, "big") + b"\x01\x04" + (3).to_bytes(4, "big") + block)
    assert _goaway_code(sock) == code
    sock.close()


def test_a_stream_id_below_an_earlier_one_is_a_protocol_error(served):
    s, _ = served
    sock, c = _strict_client(s.port)
    c.send_headers(5, _REQUEST)
    c.send_data(5, _grpc_frame(b"first"), end_stream=True)
    sock.sendall(c.data_to_send())
    assert _answers(sock, c, {5}) == {5: _grpc_frame(b"first")}
    block = c.encoder.encode(_REQUEST)
    sock.sendall(len(block).to_bytes(3, "big") + b"\x01\x04" + (3).to_bytes(4, "big") + block)
    assert _goaway_code(sock) == 0x1  # PROTOCOL_ERROR
    sock.close()


@pytest.mark.parametrize("opener", [True, False])
def test_requests_headers_are_read_here_or_by_h2_when_it_lacks_the_stream_opener(served, monkeypatch, opener):
    """A connection's later requests have their HEADERS read by the server itself; were a later
    ``h2`` to lose the private method the server opens streams with, ``h2`` would read them all, and
    calls still answer."""
    import chaincode.h2grpc as h2grpc

    monkeypatch.setattr(h2grpc, "_OPENS_STREAMS", opener)
    read_here = []
    real = h2grpc._Connection.on_headers
    monkeypatch.setattr(h2grpc._Connection, "on_headers",
                        lambda conn, sid, block: read_here.append(sid) or real(conn, sid, block))
    s, ch = served
    echo = _unary(ch, "Echo")
    assert [echo(BYTES(value=b"%d" % i), timeout=10).value for i in range(3)] == [b"0", b"1", b"2"]
    assert len(read_here) == (2 if opener else 0)  # (a connection's first request is h2's)
    (conn,) = s.server.connections
    assert not conn.calls and not conn.h2.open_inbound_streams
