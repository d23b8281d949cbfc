"""The small gRPC server's unary and server-streaming methods (what the embedded node serves on it),
driven by grpcio's client: one request then the answer, statuses with percent-encoded messages and
binary trailing metadata, the client's deadline, a server stream the client cancels, and large
messages through flow control."""

from __future__ import annotations

import asyncio
import threading

import grpc
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
                details = status_pb2.Status(code=10, message="details").SerializeToString()
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
