"""socketTextStream's receiver: lines of UTF-8 text from a TCP server.

Reads in large chunks and stores complete lines as raw bytes (executors
split them). When the server closes the connection or cannot be reached,
the receiver restarts and so reconnects after the restart delay.
"""
from __future__ import annotations

import socket
import threading

from sluicegate.common.storagelevel import StorageLevel

from .blocks import BlockGeneratorStopped
from .receiver import Receiver

CHUNK_BYTES = 1 << 16


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
        pending = b""
        try:
            while not self.isStopped():
                chunk = sock.recv(CHUNK_BYTES)
                if not chunk:
                    break
                data = pending + chunk
                end = data.rfind(b"\n")
                if end < 0:
                    pending = data
                    continue
                pending = data[end + 1:]
                complete = data[:end + 1]
                supervisor.push_text(complete, complete.count(b"\n"))
        except OSError as exc:
            if not self.isStopped():
                self.restart(f"Error receiving data from {self.host}:{self.port}", exc)
            return
        except BlockGeneratorStopped:
            return  # the context stopped while this chunk was on its way
        if pending:
            try:
                supervisor.push_text(pending + b"\n", 1)
            except BlockGeneratorStopped:
                return
        if not self.isStopped():
            self.restart("Socket data stream had no more data")
