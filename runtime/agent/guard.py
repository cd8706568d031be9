"""What keeps a party agent up on a hostile network: a connection limit, bounded request lines
read against a deadline, and the audit log.

    slots = ConnectionSlots(16)
    if slots.admit(conn): ...          # False: closed at once (every slot holds a request)
    line = read_request_line(conn, MAX_REQUEST_BYTES, deadline)
    AuditLog(path).write({...})        # one JSON line, the file 0600
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path


class RequestTooLong(ValueError):
    """The request line is longer than allowed (the rest was never read)."""


def read_request_line(conn: socket.socket, limit: int, deadline: float) -> bytes:
    """The first line on `conn` (without its newline), reading at most `limit` bytes and giving
    up at `deadline` (time.monotonic()); RequestTooLong past the limit, TimeoutError after
    the deadline, EOFError when the peer closes first."""
    buf = bytearray()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no complete request line in time")
        conn.settimeout(left)
        chunk = conn.recv(min(65536, limit + 1 - len(buf)))
        if not chunk:
            raise EOFError("the client closed the connection before its request")
        end = chunk.find(b"\n")
        if end >= 0:
            buf += chunk[:end]
            if len(buf) > limit:
                raise RequestTooLong(f"the request line is longer than {limit} bytes")
            return bytes(buf)
        buf += chunk
        if len(buf) > limit:
            raise RequestTooLong(f"the request line is longer than {limit} bytes")


class ConnectionSlots:
    """At most `limit` open connections. A new one beyond the limit takes the slot of the
    oldest connection still waiting for its request (that one is closed: idle connections
    cannot lock out a real client); when every slot holds a request being served, the new
    connection is closed at once."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, int(limit))
        self.lock = threading.Lock()
        self.waiting: dict[socket.socket, float] = {}  # connection -> when it was accepted
        self.serving: set[socket.socket] = set()
        self.dropped = 0

    def admit(self, conn: socket.socket) -> bool:
        with self.lock:
            if len(self.waiting) + len(self.serving) >= self.limit:
                if not self.waiting:
                    self.dropped += 1
                    return False
                oldest = min(self.waiting, key=self.waiting.__getitem__)
                del self.waiting[oldest]
                self.dropped += 1
                _shut(oldest)
            self.waiting[conn] = time.monotonic()
            return True

    def serving_now(self, conn: socket.socket) -> bool:
        """Move `conn` from waiting to serving; False if it was dropped meanwhile."""
        with self.lock:
            if self.waiting.pop(conn, None) is None:
                return False
            self.serving.add(conn)
            return True

    def release(self, conn: socket.socket) -> None:
        with self.lock:
            self.waiting.pop(conn, None)
            self.serving.discard(conn)

    def count(self) -> int:
        with self.lock:
            return len(self.waiting) + len(self.serving)


def _shut(conn: socket.socket) -> None:
    """Wake the thread reading `conn` (it then closes it)."""
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class AuditLog:
    """An append-only JSON-lines file readable by the agent's owner only (0600)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)  # a file that existed before keeps its mode otherwise
        os.close(fd)

    def write(self, entry: dict) -> None:
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **entry}
        line = (json.dumps(entry, default=str) + "\n").encode()
        with self.lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
