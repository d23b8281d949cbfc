"""A small gRPC server: HTTP/2 from ``h2``, TLS from ``ssl``, everything on one asyncio event loop
thread. It serves the chaincode server's bidirectional method and the embedded node's unary,
server-streaming and bidirectional methods.

The chaincode server needs one method (``protos.Chaincode/Connect``) whose messages are small and
many: six a transaction. gRPC's own servers (synchronous and ``grpc.aio``) hand every message
between several threads — gRPC core's event engine, its poller, Python's — and on this kind of
machine the context switches cost more than the work. Here a connection is a non-blocking socket
watched by the loop: a read decrypts, parses the HTTP/2 frames and hands each complete message to
the method's handler in the same call, and what the handlers send meanwhile leaves in one write
when the loop is next idle. What HTTP/2 asks of a server (settings, flow control both ways, pings,
HPACK, resets, GOAWAY) is ``h2``'s state machine; TLS (with ALPN ``h2``, and client certificates
when a client CA is given) is the ``ssl`` module's. The frames that make up the calls themselves
(a request's HEADERS and DATA, the response's HEADERS, DATA and trailers) are read and written here,
with ``h2``'s HPACK codec and stream state machines kept in step, and every other frame, or any of
those in a less common shape (CONTINUATION, padding, priority, a connection's first request), is
``h2``'s: its frame objects and per-frame checks were most of the node's loop thread under load.

A handler is a callable ``open(send, close) -> (on_message, on_end)`` per stream: ``send(msg)``
queues a message, ``close(status, message)`` ends the stream with a gRPC status; ``on_message(msg)``
receives each decoded request and ``on_end()`` the stream's end (half-close, reset or lost
connection). A method made with ``full=True`` gets instead ``open(stream) -> (on_message, on_end,
on_half_close)`` with a :class:`Stream` (send, close with trailing metadata, the request's metadata
and deadline, ``drain()`` for back-pressure): the client's half-close is ``on_half_close()`` and the
handler ends the stream itself (a unary call answers after its request's end); ``on_end()`` is the
stream's end (closed by the handler, reset by the client or its connection lost).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.connection import AllowedStreamIDs, ConnectionState
from h2.errors import ErrorCodes
from h2.stream import StreamInputs, StreamState
from hpack.exceptions import HPACKError, OversizedHeaderListError
from hpack.hpack import encode_integer
from hyperframe.frame import WindowUpdateFrame

log = logging.getLogger(__name__)

#: largest message accepted or sent (as the chaincode server's gRPC options before)
MAX_MESSAGE = 100 * 1024 * 1024
#: the receive window offered to the client, per stream and for the connection
WINDOW = 16 * 1024 * 1024
_READ = 256 * 1024


@dataclass(frozen=True)
class Method:
    """A bidirectional streaming method: its path, how requests are decoded, how a stream opens."""

    path: str  # "/package.Service/Method"
    decode: Callable[[bytes], Any]
    open: Callable[..., tuple]
    #: ``open(stream)`` with a :class:`Stream`, returning ``(on_message, on_end, on_half_close)``
    full: bool = False


#: ``grpc-timeout`` units in seconds
_TIMEOUT_UNITS = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}
#: queued response bytes above which :meth:`Stream.drain` waits for the client to read
DRAIN_ABOVE = 1024 * 1024


class Stream:
    """A call as a ``full`` method's handler sees it."""

    __slots__ = ("_conn", "_sid", "deadline", "metadata")

    def __init__(self, conn: _Connection, sid: int, metadata: dict[str, str], deadline: float | None):
        self._conn, self._sid = conn, sid
        self.metadata = metadata  # the request's custom metadata (lower-case keys)
        self.deadline = deadline  # time.monotonic() of the client's deadline (grpc-timeout), or None

    def send(self, msg: Any) -> None:
        """Queue a response message."""
        self._conn.send_message(self._sid, msg)

    def close(self, status: int, message: str = "", trailers: tuple[tuple[str, bytes | str], ...] = ()) -> None:
        """End the stream with a gRPC status and trailing metadata (``-bin`` keys: bytes)."""
        self._conn.end_call(self._sid, status, message, trailers)

    @property
    def closed(self) -> bool:
        call = self._conn.calls.get(self._sid)
        return call is None or call.ended

    def time_remaining(self) -> float | None:
        """Seconds to the client's deadline (None: it set none)."""
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    async def drain(self) -> None:
        """Wait while more than :data:`DRAIN_ABOVE` response bytes wait for the client's window."""
        call = self._conn.calls.get(self._sid)
        while call is not None and not call.ended and len(call.pending) > DRAIN_ABOVE:
            call.waiter = self._conn.loop.create_future()
            await call.waiter
            call = self._conn.calls.get(self._sid)


class _Call:
    """One stream of a connection."""

    __slots__ = ("buf", "decode", "ended", "full", "on_end", "on_half_close", "on_message", "pending", "trailers",
                 "unacked", "waiter")

    def __init__(self, decode: Callable[[bytes], Any], full: bool = False) -> None:
        self.decode = decode
        self.full = full
        self.buf = bytearray()
        self.pending = bytearray()  # framed messages waiting for the client's flow-control window
        self.on_message: Callable[[Any], None] | None = None
        self.on_end: Callable[[], None] | None = None
        self.on_half_close: Callable[[], None] | None = None
        self.ended = False
        self.unacked = 0  # bytes of DATA handled outside h2 since the last WINDOW_UPDATE
        self.waiter: asyncio.Future | None = None  # a drain() waiting for the pending bytes to leave
        #: once ended, ``(headers, HPACK block)``: sent when the pending bytes have left
        self.trailers: tuple[list, bytes] | None = None

    def wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


#: h2's per-header checks (names, characters, pseudo-headers) are ≈ 6 % of the node's loop thread
#: under load; the headers sent are this module's own, and of those received only ``:path``,
#: ``:method``, ``content-type`` and ``grpc-timeout`` are read, each checked where it is used
_H2_CONFIG = h2.config.H2Configuration(client_side=False, header_encoding=None,
                                       validate_outbound_headers=False, normalize_outbound_headers=False,
                                       validate_inbound_headers=False)


#: the largest frame payload the client may send (HTTP/2's default SETTINGS_MAX_FRAME_SIZE, which
#: the server never raises): a larger frame is h2's to refuse
_MAX_FRAME = 16384
#: the stream states in which the client may still send DATA
_RECEIVING = (StreamState.OPEN, StreamState.HALF_CLOSED_LOCAL)
#: how ``h2`` opens a stream for a HEADERS frame it reads (not public API: an ``h2`` without it has
#: every request's HEADERS read by ``h2`` itself)
_OPENS_STREAMS = hasattr(h2.connection.H2Connection, "_begin_new_stream")


class _Connection:
    def __init__(self, server: H2Server, sock: socket.socket, tls: bool):
        self.server = server
        self.loop = server.loop
        self.sock = sock
        self.tls = tls
        self.handshaking = tls
        self.h2 = h2.connection.H2Connection(_H2_CONFIG)
        self.calls: dict[int, _Call] = {}
        self.inbuf = bytearray()
        self.preface = 24  # bytes of the client's connection preface still to pass to h2
        self.continuing = False  # h2 holds a header block whose CONTINUATION frames are still to come
        self.unacked = 0
        self.outbuf = bytearray()
        self.flush_scheduled = False
        self.receiving = False  # while a read is handled, sends wait for its one write at the end
        self.writing = False
        self.closed = False
        self.loop.add_reader(sock, self.on_readable)
        if not tls:
            self.start_h2()

    # -- set-up
    def start_h2(self) -> None:
        self.h2.initiate_connection()
        self.h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: WINDOW,
                                 h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 64 * 1024})
        self.h2.increment_flow_control_window(WINDOW - 65535)
        self.flush()

    def handshake(self) -> None:
        try:
            self.sock.do_handshake()
        except ssl.SSLWantReadError:
            return
        except ssl.SSLWantWriteError:
            self.loop.add_writer(self.sock, self.on_handshake_writable)
            return
        except (ssl.SSLError, OSError) as exc:
            log.info("TLS handshake with %s refused: %s", self.peer_name(), exc)
            self.close()
            return
        if self.sock.selected_alpn_protocol() not in (None, "h2"):
            log.info("%s asked for %s, not HTTP/2", self.peer_name(), self.sock.selected_alpn_protocol())
            self.close()
            return
        self.handshaking = False
        self.start_h2()

    def on_handshake_writable(self) -> None:
        self.loop.remove_writer(self.sock)
        self.handshake()
        if not self.handshaking and not self.closed:
            self.on_readable()  # data that arrived with the last handshake record

    def peer_name(self) -> str:
        with contextlib.suppress(OSError):
            host, port = self.sock.getpeername()[:2]
            return f"{host}:{port}"
        return "a client"

    # -- reading
    def on_readable(self) -> None:
        if self.handshaking:
            self.handshake()
            if self.handshaking or self.closed:
                return
        chunks = []
        while True:
            try:
                data = self.sock.recv(_READ)
            except (ssl.SSLWantReadError, BlockingIOError, InterruptedError):
                break
            except ssl.SSLWantWriteError:
                break
            except (OSError, ssl.SSLError):
                data = b""
            if not data:
                if chunks:
                    self.receive(b"".join(chunks))
                self.close()
                return
            chunks.append(data)
            if len(data) < _READ and not (self.tls and self.sock.pending()):
                break  # drained (epoll is level-triggered: anything left wakes the loop again)
        if chunks:
            self.receive(b"".join(chunks))

    def receive(self, data: bytes) -> None:
        """Split what arrived into frames. The frames every call is made of are handled here: a
        request's HEADERS (one frame, no padding or priority, a new stream, under the concurrency
        limit) and its DATA (no padding; the last one ends the stream). Everything else goes to
        ``h2``, in order. The streams opened here are ``h2``'s too (its state machine and windows,
        which the sending side and RST_STREAM, WINDOW_UPDATE and SETTINGS rely on)."""
        if self.preface:  # the client's connection preface goes to h2 as it comes
            n = min(self.preface, len(data))
            self.preface -= n
            self.to_h2(data[:n])
            data = data[n:]
        buf = self.inbuf
        buf += data
        pos, slow, size = 0, -1, len(buf)
        calls = self.calls
        while size - pos >= 9 and not self.closed:
            length = int.from_bytes(buf[pos:pos + 3], "big")
            end = pos + 9 + length
            if end > size:
                break
            kind, flags = buf[pos + 3], buf[pos + 4]
            sid = int.from_bytes(buf[pos + 5:pos + 9], "big") & 0x7FFFFFFF
            fast = False
            if self.continuing:
                self.continuing = not (kind == 0x9 and flags & 0x4)  # CONTINUATION with END_HEADERS
            elif kind == 0:
                fast = not flags & 0x08 and length <= _MAX_FRAME and self.data_fits(sid)  # DATA, not padded
            elif kind == 0x1:
                # HEADERS with END_HEADERS, without END_STREAM, padding or priority
                fast = flags & 0x2D == 0x04 and length <= _MAX_FRAME and self.may_open(sid)
                self.continuing = not fast and not flags & 0x04
            if not fast:
                if slow < 0:
                    slow = pos
                pos = end
                continue
            if slow >= 0:
                self.to_h2(bytes(buf[slow:pos]))
                slow = -1
                if self.closed:
                    break
                if not (self.may_open(sid) if kind == 0x1 else self.data_fits(sid)):  # h2 changed it
                    self.to_h2(bytes(buf[pos:end]))
                    pos = end
                    continue
            if kind == 0x1:
                self.on_headers(sid, bytes(buf[pos + 9:end]))
            else:
                self.unacked += length
                call = calls[sid]
                call.unacked += length
                if flags & 0x01:
                    self.h2.streams[sid].state_machine.process_input(StreamInputs.RECV_END_STREAM)
                self.on_data(sid, buf[pos + 9:end])
                if flags & 0x01:
                    self.on_stream_ended(sid)
            pos = end
        if slow >= 0:
            self.to_h2(bytes(buf[slow:pos]))
        del buf[:pos]
        self.ack_windows()
        self.flush()

    def data_fits(self, sid: int) -> bool:
        """Whether a DATA frame on ``sid`` is a running call's, on a stream the client has not ended."""
        if sid not in self.calls:
            return False
        stream = self.h2.streams.get(sid)
        return stream is not None and stream.state_machine.state in _RECEIVING

    def may_open(self, sid: int) -> bool:
        """Whether a HEADERS frame on ``sid`` opens a stream that ``h2`` would accept without a word:
        a client's (odd) id above every earlier one, on an open connection, below the concurrency
        limit. (``h2.streams`` keeps closed streams until ``h2`` next counts the open ones, so its
        size bounds their number from above; at the limit, ``h2`` counts, and refuses or accepts.)"""
        h2c = self.h2
        return (_OPENS_STREAMS and sid & 1 and sid > h2c.highest_inbound_stream_id
                and h2c.state_machine.state is ConnectionState.SERVER_OPEN
                and len(h2c.streams) < h2c.local_settings.max_concurrent_streams)

    def on_headers(self, sid: int, block: bytes) -> None:
        """A request's HEADERS frame (see :meth:`may_open`): the header block is decoded by ``h2``'s
        own HPACK decoder (one dynamic table for every block of the connection), the stream opened
        in ``h2`` as its own handling of the frame would, and the call started."""
        h2c = self.h2
        try:
            headers = h2c.decoder.decode(block, raw=True)
        except (HPACKError, IndexError, TypeError, UnicodeDecodeError) as exc:
            # RFC 9113 4.3: COMPRESSION_ERROR; a block over our header list limit: ENHANCE_YOUR_CALM
            # as h2 says it. (h2 reads a connection's first request, and says PROTOCOL_ERROR for both.)
            log.info("HTTP/2 error from %s: header block refused: %s", self.peer_name(), exc)
            h2c.close_connection(ErrorCodes.ENHANCE_YOUR_CALM if isinstance(exc, OversizedHeaderListError)
                                 else ErrorCodes.COMPRESSION_ERROR)
            self.flush_now()
            self.close()
            return
        stream = h2c._begin_new_stream(sid, AllowedStreamIDs.ODD)
        stream.state_machine.process_input(StreamInputs.RECV_HEADERS)
        self.on_request(sid, headers)

    def ack_windows(self) -> None:
        """WINDOW_UPDATE for what the DATA frames handled here used of the windows we offered."""
        frames = []
        if self.unacked >= WINDOW // 4:
            frames.append(WindowUpdateFrame(0, window_increment=self.unacked).serialize())
            self.unacked = 0
        for sid, call in self.calls.items():
            if call.unacked >= WINDOW // 4:
                frames.append(WindowUpdateFrame(sid, window_increment=call.unacked).serialize())
                call.unacked = 0
        if frames:
            self.outbuf += self.h2.data_to_send()  # (whole frames: ours may follow)
            self.outbuf += b"".join(frames)

    def to_h2(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            log.info("HTTP/2 error from %s: %s", self.peer_name(), exc)
            self.flush_now()
            self.close()
            return
        for ev in events:
            if isinstance(ev, h2.events.DataReceived):
                self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                self.on_data(ev.stream_id, ev.data)
            elif isinstance(ev, h2.events.RequestReceived):
                self.on_request(ev.stream_id, ev.headers)
            elif isinstance(ev, h2.events.StreamEnded):
                self.on_stream_ended(ev.stream_id)
            elif isinstance(ev, h2.events.StreamReset):
                self.drop_call(ev.stream_id)
            elif isinstance(ev, h2.events.WindowUpdated):
                self.send_pending(ev.stream_id)
            elif isinstance(ev, h2.events.RemoteSettingsChanged):
                self.send_pending(0)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.close()
                return

    def on_stream_ended(self, sid: int) -> None:
        """The client half-closed ``sid``: a ``full`` call is told, any other ends with OK."""
        call = self.calls.get(sid)
        if call is not None and call.full:
            if not call.ended and call.on_half_close is not None:
                call.on_half_close()
        else:
            self.end_call(sid, 0, "")

    def on_request(self, sid: int, header_list: list) -> None:
        headers = dict(header_list)
        method = self.server.methods.get(headers.get(b":path", b"").decode("latin-1"))
        ctype = headers.get(b"content-type", b"")
        if headers.get(b":method") != b"POST" or not ctype.startswith(b"application/grpc"):
            self.h2.send_headers(sid, [(b":status", b"415")], end_stream=True)
            return
        if method is None:
            self.h2.send_headers(sid, [(b":status", b"200"), (b"content-type", b"application/grpc"),
                                       (b"grpc-status", b"12"), (b"grpc-message", b"unknown method")], end_stream=True)
            return
        call = _Call(method.decode, method.full)
        self.calls[sid] = call
        self.send_headers(sid, _RESPONSE_HEADERS, _RESPONSE_BLOCK, False)
        if method.full:
            deadline = _deadline(headers.get(b"grpc-timeout"))
            metadata = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers.items()
                        if not k.startswith((b":", b"grpc-")) and k not in _HTTP_HEADERS}
            call.on_message, call.on_end, call.on_half_close = method.open(Stream(self, sid, metadata, deadline))
        else:
            call.on_message, call.on_end = method.open(lambda msg: self.send_message(sid, msg),
                                                       lambda status, message: self.end_call(sid, status, message))

    def on_data(self, sid: int, data: bytes | bytearray) -> None:
        call = self.calls.get(sid)
        if call is None or call.ended:
            return
        buf = call.buf
        buf += data
        decode = call.decode
        while len(buf) >= 5:
            if buf[0]:
                self.end_call(sid, 12, "compressed messages are not supported")
                return
            size = int.from_bytes(buf[1:5], "big")
            if size > MAX_MESSAGE:
                self.end_call(sid, 8, f"message of {size} bytes is over the {MAX_MESSAGE} limit")
                return
            if len(buf) < 5 + size:
                break
            raw = bytes(buf[5:5 + size])
            del buf[:5 + size]
            try:
                msg = decode(raw)
            except Exception as exc:  # noqa: BLE001 - a message that does not parse ends its stream
                self.end_call(sid, 13, f"cannot decode the request: {exc}")
                return
            try:
                call.on_message(msg)
            except Exception:  # noqa: BLE001 - a handler's failure ends its stream, not the server
                log.exception("the handler of stream %d failed", sid)
                self.end_call(sid, 13, "internal error")
                return
            if call.ended:
                return

    # -- writing
    def send_message(self, sid: int, msg: Any) -> None:
        call = self.calls.get(sid)
        if call is None or call.ended or self.closed:
            return
        body = msg.SerializeToString()
        call.pending += len(body).to_bytes(5, "big")  # flag byte 0 + 4-byte length
        call.pending += body
        self.send_pending(sid)
        self.flush()

    def send_pending(self, sid: int) -> None:
        """Move queued message bytes into DATA frames as far as the client's windows allow.

        The frames are written here, not by ``h2`` (its frame objects and checks were most of the
        loop thread's cost of a response): the stream's state machine still takes each frame's
        input (a closed or reset stream refuses it), and both send windows are charged as
        ``h2.send_data`` would charge them, so ``h2``'s flow control stays exact."""
        h2c = self.h2
        out = self.outbuf
        sids = [sid] if sid else list(self.calls)
        for s in sids:
            call = self.calls.get(s)
            if call is None or not call.pending:
                continue
            stream = h2c.streams.get(s)
            try:
                if stream is None or h2c.state_machine.state is not ConnectionState.SERVER_OPEN:
                    raise h2.exceptions.StreamClosedError(s)
                pending = call.pending
                while pending:
                    n = min(len(pending), h2c.outbound_flow_control_window, stream.outbound_flow_control_window,
                            h2c.max_outbound_frame_size)
                    if n <= 0:
                        break
                    stream.state_machine.process_input(StreamInputs.SEND_DATA)
                    out += h2c.data_to_send()  # (what h2 queued goes first)
                    out += n.to_bytes(3, "big") + b"\x00\x00" + s.to_bytes(4, "big")
                    out += pending[:n]
                    del pending[:n]
                    stream.outbound_flow_control_window -= n
                    h2c.outbound_flow_control_window -= n
            except h2.exceptions.StreamClosedError:
                self.drop_call(s)
                continue
            if call.waiter is not None and len(call.pending) <= DRAIN_ABOVE:
                call.wake()
            if call.trailers is not None and not call.pending:
                self.send_trailers(s, call)

    def send_headers(self, sid: int, headers: list, block: bytes, end_stream: bool) -> None:
        """Send ``headers``, already HPACK-encoded as ``block`` (see :func:`_hpack_literal`), in one
        HEADERS frame written here; the stream's state machine takes the same inputs as in
        ``h2.send_headers``. ``h2`` itself sends them when its encoder owes the client a table size
        update, when the block needs CONTINUATION frames, or once the connection is closing."""
        h2c = self.h2
        stream = h2c.streams.get(sid)
        if (stream is None or h2c.state_machine.state is not ConnectionState.SERVER_OPEN
                or h2c.encoder.header_table.resized or len(block) > h2c.max_outbound_frame_size):
            h2c.send_headers(sid, headers, end_stream=end_stream)
            return
        stream.state_machine.process_input(StreamInputs.SEND_HEADERS)
        if end_stream:
            stream.state_machine.process_input(StreamInputs.SEND_END_STREAM)
        out = self.outbuf
        out += h2c.data_to_send()
        out += len(block).to_bytes(3, "big") + (b"\x01\x05" if end_stream else b"\x01\x04") + sid.to_bytes(4, "big")
        out += block

    def end_call(self, sid: int, status: int, message: str, metadata: tuple = ()) -> None:
        call = self.calls.get(sid)
        if call is None or call.ended:
            return
        call.ended = True
        if not status and not message and not metadata:
            call.trailers = _OK_TRAILERS
        else:
            trailers = [(b"grpc-status", str(status).encode())]
            if message:
                trailers.append((b"grpc-message", _percent(message)))
            for key, value in metadata:
                if key.endswith("-bin"):
                    value = base64.b64encode(value).rstrip(b"=")
                elif isinstance(value, str):
                    value = value.encode("latin-1")
                trailers.append((key.encode("latin-1"), value))
            call.trailers = (trailers, _hpack_literal(trailers))
        if call.pending:  # what is queued goes first: the trailers follow once the window lets it all out
            self.send_pending(sid)
        else:
            self.send_trailers(sid, call)
        call.wake()
        if call.on_end is not None:
            call.on_end()
        self.flush()

    def send_trailers(self, sid: int, call: _Call) -> None:
        self.calls.pop(sid, None)
        with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            self.send_headers(sid, *call.trailers, True)

    def drop_call(self, sid: int) -> None:
        call = self.calls.pop(sid, None)
        if call is not None and not call.ended:
            call.ended = True
            call.wake()
            if call.on_end is not None:
                call.on_end()

    def flush(self) -> None:
        """Write what h2 has to send when the loop is next idle (one write for a burst of messages)."""
        if not self.flush_scheduled and not self.receiving and not self.closed:
            self.flush_scheduled = True
            self.loop.call_soon(self.flush_now)

    def flush_now(self) -> None:
        self.flush_scheduled = False
        if self.closed:
            return
        data = self.h2.data_to_send()
        if data:
            self.outbuf += data
        if self.outbuf and not self.writing:
            self.write()

    def write(self) -> None:
        while self.outbuf:
            try:
                n = self.sock.send(self.outbuf)
            except (ssl.SSLWantWriteError, BlockingIOError, InterruptedError):
                n = 0
            except ssl.SSLWantReadError:
                n = 0
            except (OSError, ssl.SSLError):
                self.close()
                return
            if n == 0:
                if not self.writing:
                    self.writing = True
                    self.loop.add_writer(self.sock, self.on_writable)
                return
            del self.outbuf[:n]
        if self.writing:
            self.writing = False
            self.loop.remove_writer(self.sock)

    def on_writable(self) -> None:
        self.write()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for sid in list(self.calls):
            self.drop_call(sid)
        with contextlib.suppress(Exception):
            self.loop.remove_reader(self.sock)
            self.loop.remove_writer(self.sock)
        with contextlib.suppress(OSError):
            self.sock.close()
        self.server.connections.discard(self)

    def goaway(self) -> None:
        with contextlib.suppress(Exception):
            self.h2.close_connection()
            self.flush_now()
        self.close()


_HTTP_HEADERS = frozenset((b"content-type", b"te", b"user-agent"))


def _deadline(timeout: bytes | None) -> float | None:
    """The ``time.monotonic()`` deadline a ``grpc-timeout`` header sets (None: none or malformed)."""
    if not timeout or timeout[-1:] not in _TIMEOUT_UNITS or not timeout[:-1].isdigit():
        return None
    return time.monotonic() + int(timeout[:-1]) * _TIMEOUT_UNITS[timeout[-1:]]


def _percent(message: str) -> bytes:
    """``grpc-message``: UTF-8, percent-encoded outside printable ASCII and for '%' (gRPC's rule)."""
    raw = message.encode("utf-8", "replace")[:4096]
    if all(0x20 <= b <= 0x7E and b != 0x25 for b in raw):
        return raw
    return b"".join(bytes((b,)) if 0x20 <= b <= 0x7E and b != 0x25 else b"%%%02X" % b for b in raw)


def _hpack_literal(headers: list) -> bytes:
    """An HPACK header block of literal fields without indexing, with literal names and values.

    Such a block neither reads nor changes the dynamic table, so it may go out between the blocks
    ``h2``'s own encoder writes (which index into the table it shares with the client's decoder)
    without either table changing under the other."""
    out = bytearray()
    for name, value in headers:
        out += b"\x00"
        out += encode_integer(len(name), 7)  # (first bit clear: not Huffman-coded)
        out += name
        out += encode_integer(len(value), 7)
        out += value
    return bytes(out)


_RESPONSE_HEADERS = [(b":status", b"200"), (b"content-type", b"application/grpc")]
#: ``:status 200`` as static table entry 8, ``content-type`` a literal without indexing whose name is
#: static entry 31: no dynamic table either
_RESPONSE_BLOCK = b"\x88\x0f\x10\x10application/grpc"
_OK_TRAILERS = ([(b"grpc-status", b"0")], _hpack_literal([(b"grpc-status", b"0")]))


class H2Server:
    """Serves ``methods`` on ``host:port`` (port 0: a free one) from the running event loop."""

    def __init__(self, methods: list[Method], *,
                 ssl_context: ssl.SSLContext | Callable[[], ssl.SSLContext] | None = None):
        """``ssl_context`` may be a callable asked for the context at each accepted connection (a
        server whose accepted client CAs change while it runs)."""
        self.methods = {m.path: m for m in methods}
        self.ssl_context = ssl_context
        self.connections: set[_Connection] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.listener: socket.socket | None = None

    def listen(self, host: str, port: int) -> int:
        """Start accepting (call on the loop thread); the port listened on."""
        self.loop = asyncio.get_running_loop()
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, _, _, _, addr = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
        sock.setblocking(False)
        self.listener = sock
        self.loop.add_reader(sock, self._accept)
        return sock.getsockname()[1]

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("accept failed: %s", exc)
                return
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl_context is not None:
                ctx = self.ssl_context if isinstance(self.ssl_context, ssl.SSLContext) else self.ssl_context()
                conn = ctx.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
            self.connections.add(_Connection(self, conn, self.ssl_context is not None))

    def stop_listening(self) -> None:
        """Accept no new connection (call on the loop thread)."""
        if self.listener is not None:
            self.loop.remove_reader(self.listener)
            self.listener.close()
            self.listener = None

    def close(self) -> None:
        """Stop accepting and end every connection (GOAWAY; call on the loop thread)."""
        self.stop_listening()
        for conn in list(self.connections):
            conn.goaway()


def server_ssl_context(cert: bytes, key: bytes, client_ca: bytes | None) -> ssl.SSLContext:
    """A TLS server context for HTTP/2 (ALPN ``h2``); with ``client_ca``, client certificates from it
    are required (mutual TLS)."""
    import os
    import tempfile

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory() as d:  # the ssl module loads a certificate chain from files only
        cpath, kpath = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        with open(cpath, "wb") as f:
            f.write(cert)
        with open(os.open(kpath, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
            f.write(key)
        ctx.load_cert_chain(cpath, kpath)
    if client_ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cadata=client_ca.decode())
    ctx.set_alpn_protocols(["h2"])
    return ctx
