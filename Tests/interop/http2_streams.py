"""A gRPC call made over raw HTTP/2 (the h2 library), so that a test decides when the client takes
what it is sent: a stalled reader grants no flow-control window past HTTP/2's first 65,535 bytes,
which no gRPC library lets its user do."""

from __future__ import annotations

import select
import socket as sockets
import struct

import h2.config
import h2.connection
import h2.events


def open_call(socket_path: str, method: str) -> tuple[sockets.socket, h2.connection.H2Connection, int]:
    """A connection of its own over a unix socket, with one call's headers queued on it."""
    socket = sockets.socket(sockets.AF_UNIX)
    socket.connect(socket_path)
    connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    connection.initiate_connection()
    stream = connection.get_next_available_stream_id()
    connection.send_headers(stream, [
        (":method", "POST"), (":scheme", "http"), (":path", method), (":authority", "localhost"),
        ("content-type", "application/grpc"), ("te", "trailers")])
    return socket, connection, stream


class RawCall:
    """One server-streaming (or unary) call on a connection of its own over a unix socket."""

    def __init__(self, socket_path: str, method: str, request: bytes):
        self.socket, self.connection, self.stream = open_call(socket_path, method)
        self.connection.send_data(self.stream, b"\0" + struct.pack(">I", len(request)) + request, end_stream=True)
        try:
            self.socket.sendall(self.connection.data_to_send())
        except ConnectionError:
            pass  # refused as it came: what the agent sent before closing is still there to read
        self.connection_closed = False
        self.body = bytearray()
        self.received = 0
        self.trailers: dict[str, str] | None = None
        self.reset_code: int | None = None
        self.goaway: tuple[int, str] | None = None  # the error code and text of the agent's GOAWAY
        self.unacknowledged = 0

    @property
    def ended(self) -> bool:
        return self.trailers is not None or self.reset_code is not None or self.connection_closed

    def pump(self, reading: bool = False, timeout: float = 0.0) -> None:
        """Takes what has arrived. Unless `reading`, the data is not acknowledged, so the agent may
        send nothing more: the client has stalled."""
        self.socket.settimeout(timeout if timeout > 0 else None)
        self.socket.setblocking(timeout > 0)
        try:
            if reading:
                self._acknowledge()
            while True:
                data = self.socket.recv(1 << 16)
                if not data:
                    self.connection_closed = True
                    return
                for event in self.connection.receive_data(data):
                    if isinstance(event, h2.events.DataReceived):
                        self.received += len(event.data)
                        self.body += event.data
                        self.unacknowledged += event.flow_controlled_length
                    elif isinstance(event, h2.events.TrailersReceived):
                        self.trailers = dict(event.headers)
                    elif isinstance(event, h2.events.StreamReset):
                        self.reset_code = event.error_code
                    elif isinstance(event, h2.events.ConnectionTerminated):
                        self.goaway = (event.error_code, (event.additional_data or b"").decode(errors="replace"))
                        self.connection_closed = True
                if reading:
                    self._acknowledge()
                self.socket.sendall(self.connection.data_to_send())
                if self.ended:
                    return
        except (BlockingIOError, TimeoutError):
            return
        except ConnectionError:
            self.connection_closed = True

    def _acknowledge(self, most: int | None = None) -> None:
        """Grants the agent as much window again as it has sent (or `most` bytes of it)."""
        granted = self.unacknowledged if most is None else min(most, self.unacknowledged)
        if granted and not self.ended:
            self.connection.acknowledge_received_data(granted, self.stream)
            self.unacknowledged -= granted
            self.socket.sendall(self.connection.data_to_send())

    def trickle(self, most: int) -> None:
        """Takes what has arrived and grants the agent at most `most` bytes more: a slow reader."""
        self.pump()
        self._acknowledge(most)

    def messages(self) -> list[bytes]:
        """The gRPC messages received so far."""
        found, at = [], 0
        while at + 5 <= len(self.body):
            length = struct.unpack(">I", self.body[at + 1:at + 5])[0]
            if at + 5 + length > len(self.body):
                break
            found.append(bytes(self.body[at + 5:at + 5 + length]))
            at += 5 + length
        return found

    def close(self) -> None:
        self.socket.close()


class RawUpload:
    """A client-streaming call on a connection of its own whose one message is declared `declared`
    bytes long and never finished: the client sends its bytes as fast as the agent's flow-control
    window lets it, and stops one byte short."""

    def __init__(self, socket_path: str, method: str, declared: int):
        self.socket, self.connection, self.stream = open_call(socket_path, method)
        self.socket.setblocking(False)
        self.declared = declared
        self.pending = b"\0" + struct.pack(">I", declared)  # the prefix, sent as the window allows
        self.sent = 0  # bytes of the message's body sent
        self.reset_code: int | None = None
        self.closed = False
        self.trailers: dict[str, str] | None = None
        self._flush()

    @property
    def ended(self) -> bool:
        return self.reset_code is not None or self.closed or self.trailers is not None

    @property
    def window(self) -> int:
        """What the agent lets the client send now."""
        return 0 if self.ended else self.connection.local_flow_control_window(self.stream)

    @property
    def done_sending(self) -> bool:
        return self.sent >= self.declared - 1

    def pump(self) -> None:
        """Takes what the agent sent (window updates, a reset) and sends what the window allows."""
        try:
            while True:
                data = self.socket.recv(1 << 16)
                if not data:
                    self.closed = True
                    break
                for event in self.connection.receive_data(data):
                    if isinstance(event, h2.events.StreamReset):
                        self.reset_code = event.error_code
                    elif isinstance(event, h2.events.TrailersReceived):
                        self.trailers = dict(event.headers)
                    elif isinstance(event, h2.events.ResponseReceived) and event.stream_ended:
                        self.trailers = dict(event.headers)  # a trailers-only answer
                    elif isinstance(event, h2.events.ConnectionTerminated):
                        self.closed = True
        except BlockingIOError:
            pass
        except ConnectionError:
            self.closed = True
        while not self.ended and not self.done_sending:
            room = min(self.window, self.connection.max_outbound_frame_size)
            if room <= 0:
                break
            if self.pending:
                chunk, self.pending = self.pending[:room], self.pending[room:]
            else:
                chunk = b"x" * min(room, self.declared - 1 - self.sent)
                self.sent += len(chunk)
            self.connection.send_data(self.stream, chunk)
        self._flush()

    def _flush(self) -> None:
        data = self.connection.data_to_send()
        while data and not self.closed:
            try:
                sent = self.socket.send(data)
                data = data[sent:]
            except BlockingIOError:
                select.select([], [self.socket], [], 1)
            except ConnectionError:
                self.closed = True

    def close(self) -> None:
        self.socket.close()
