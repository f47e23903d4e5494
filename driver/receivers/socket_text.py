"""socketTextStream's receiver: lines of UTF-8 text from a TCP server.

Reads in large chunks and stores complete lines as raw bytes (executors
split them). When the server closes the connection or cannot be reached,
the receiver restarts and so reconnects after the restart delay.

A line is assembled in time linear in its length, however many reads it
takes. A line longer than ``spark.sluicegate.receiver.maxLineBytes`` is
dropped (skipped up to its newline, never held whole), counted in the batch's
input metadata and metrics, and named in a warning: a line that long is
almost surely not what the source meant to send, and cutting it into pieces
would hand the job records that are not lines at all. Lines with invalid
UTF-8 are kept (executors decode them with U+FFFD) and counted as well.
"""
from __future__ import annotations

import socket
import threading

from sluicegate.common.input_text import invalid_utf8_lines
from sluicegate.common.storagelevel import StorageLevel

from .received_blocks import BlockGeneratorStopped
from .receiver import Receiver

CHUNK_BYTES = 1 << 16


class LineAssembler:
    """Cuts a byte stream into complete lines, dropping those longer than
    ``max_line_bytes`` (not counting the newline)."""

    def __init__(self, max_line_bytes: int):
        self.max_line_bytes = max_line_bytes
        self._pending = bytearray()  # the start of a line whose newline has not come
        self._skipping = False  # inside a line already too long: dropping up to its newline

    def feed(self, chunk: bytes) -> tuple[bytes, int, int]:
        """The complete lines ``chunk`` ends (newline-terminated, as one bytes),
        how many they are, and how many lines were dropped."""
        end = chunk.rfind(b"\n")
        if end < 0:
            self._hold(chunk)
            return b"", 0, 0
        dropped = 0
        first = chunk.find(b"\n")
        if self._skipping or len(self._pending) + first > self.max_line_bytes:
            dropped += 1
            head = b""
        elif self._pending:
            self._pending += chunk[:first + 1]
            head = bytes(self._pending)  # one copy per line, so linear in its length
        else:
            head = chunk[:first + 1]
        self._skipping = False
        self._pending = bytearray()
        body = chunk[first + 1:end + 1]
        if len(body) > self.max_line_bytes:  # only when the maximum is below a chunk
            body, more = _without_long_lines(body, self.max_line_bytes)
            dropped += more
        self._hold(chunk[end + 1:])
        complete = head + body if head and body else head or body
        return complete, complete.count(b"\n"), dropped

    def finish(self) -> tuple[bytes, int, int]:
        """What is left when the stream ends: a last line without a newline."""
        if self._skipping:
            self._skipping = False
            return b"", 0, 1
        if not self._pending:
            return b"", 0, 0
        last, self._pending = bytes(self._pending) + b"\n", bytearray()
        return last, 1, 0

    def _hold(self, part: bytes) -> None:
        if self._skipping or not part:
            return
        if len(self._pending) + len(part) > self.max_line_bytes:
            self._skipping = True
            self._pending = bytearray()  # its memory goes now, not at the newline
        else:
            self._pending += part


def _without_long_lines(text: bytes, max_line_bytes: int) -> tuple[bytes, int]:
    """``text`` (newline-terminated lines) without the lines that are too long."""
    lines = text.split(b"\n")[:-1]
    kept = [line for line in lines if len(line) <= max_line_bytes]
    return b"".join(line + b"\n" for line in kept), len(lines) - len(kept)


class SocketTextReceiver(Receiver):
    def __init__(self, host: str, port: int,
                 storageLevel: StorageLevel = StorageLevel.MEMORY_AND_DISK_2):
        super().__init__(storageLevel)
        self.host = host
        self.port = port
        self._socket: socket.socket | None = None

    def __getstate__(self):
        state = super().__getstate__()
        state["_socket"] = None
        return state

    def __str__(self) -> str:
        return f"socketTextStream {self.host}:{self.port}"

    def onStart(self) -> None:
        threading.Thread(target=self._receive, name=f"socket-receiver-{self.host}:{self.port}",
                         daemon=True).start()

    def onStop(self) -> None:
        sock, self._socket = self._socket, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _receive(self) -> None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=10)
        except OSError as exc:
            self.restart(f"Error connecting to {self.host}:{self.port}", exc)
            return
        sock.settimeout(None)
        self._socket = sock
        supervisor = self._require_supervisor()
        lines = LineAssembler(supervisor.max_line_bytes)
        try:
            while not self.isStopped():
                chunk = sock.recv(CHUNK_BYTES)
                if not chunk:
                    break
                self._push(supervisor, *lines.feed(chunk))
            self._push(supervisor, *lines.finish())
        except OSError as exc:
            if not self.isStopped():
                self.restart(f"Error receiving data from {self.host}:{self.port}", exc)
            return
        except BlockGeneratorStopped:
            return  # the context stopped while this chunk was on its way
        if not self.isStopped():
            self.restart("Socket data stream had no more data")

    @staticmethod
    def _push(supervisor, text: bytes, count: int, dropped: int) -> None:
        if text or dropped:
            supervisor.push_text(text, count, invalid_utf8_lines(text) if text else 0, dropped)
