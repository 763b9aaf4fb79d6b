"""A scripted raw TCP server on 127.0.0.1, for HTTP behaviour no real server shows on demand.

The handler runs in a thread per connection and decides byte by byte what is sent back: a
connection closed after an answer, a chunked body, a garbage status line, an answer to
pipelined requests only once several arrived. Every request is recorded with its connection.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "RawConnection",
    "RawHandler",
    "RawRequest",
    "RawServer",
    "http_response",
    "serve_forever",
]


@dataclass(frozen=True)
class RawRequest:
    """A request as :class:`RawServer` received it."""

    connection_id: int  # 1 for the first connection accepted, 2, ...
    request_line: str  # e.g. "GET /a HTTP/1.1"
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def target(self) -> str:
        return self.request_line.split(" ")[1]


class RawConnection:
    """One accepted connection, handed to the server's handler."""

    def __init__(self, server: RawServer, sock: socket.socket, connection_id: int) -> None:
        self.server = server
        self.sock = sock
        self.connection_id = connection_id
        self._buffer = b""

    def _fill(self) -> bool:
        try:
            data = self.sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self.server.closed_by_client[self.connection_id].set()
            return False
        self._buffer += data
        return True

    def read_request(self) -> RawRequest | None:
        """The next request on this connection; None once the client closed it."""
        while b"\r\n\r\n" not in self._buffer:
            if not self._fill():
                return None
        head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        request_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self._buffer) < length:
            if not self._fill():
                return None
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        request = RawRequest(self.connection_id, request_line, headers, body)
        with self.server.lock:
            self.server.requests.append(request)
        return request

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)


def http_response(
    body: bytes, *, status: str = "200 OK", headers: tuple[tuple[str, str], ...] = ()
) -> bytes:
    """A response with ``body``; Content-Length is added unless a header says otherwise."""
    names = {name.lower() for name, _ in headers}
    all_headers = list(headers)
    if "content-length" not in names and "transfer-encoding" not in names:
        all_headers.append(("Content-Length", str(len(body))))
    head = f"HTTP/1.1 {status}\r\n" + "".join(f"{n}: {v}\r\n" for n, v in all_headers)
    return head.encode("latin-1") + b"\r\n" + body


RawHandler = Callable[[RawConnection], None]


def serve_forever(answer: Callable[[RawRequest], bytes]) -> RawHandler:
    """A handler that answers every request of a connection with ``answer(request)``."""

    def handler(connection: RawConnection) -> None:
        while (request := connection.read_request()) is not None:
            connection.send(answer(request))

    return handler


class RawServer:
    """A threaded TCP server on 127.0.0.1: ``handler(connection)`` runs in a thread per
    connection, and the socket is closed (FIN) when it returns."""

    def __init__(self, handler: RawHandler) -> None:
        self._handler = handler
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self.lock = threading.Lock()
        self.requests: list[RawRequest] = []
        self.connections = 0
        self.closed_by_client: dict[int, threading.Event] = {}
        self.errors: list[BaseException] = []
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sock.settimeout(10.0)
            with self.lock:
                self.connections += 1
                connection = RawConnection(self, sock, self.connections)
                self.closed_by_client[connection.connection_id] = threading.Event()
                self._sockets.append(sock)
                thread = threading.Thread(target=self._serve, args=(connection,), daemon=True)
                self._threads.append(thread)
            thread.start()

    def _serve(self, connection: RawConnection) -> None:
        try:
            self._handler(connection)
        except OSError:
            pass
        except BaseException as error:
            self.errors.append(error)
        finally:
            connection.sock.close()

    def close(self) -> None:
        self._stopping.set()
        self._acceptor.join(5.0)
        self._listener.close()
        with self.lock:
            sockets, threads = list(self._sockets), list(self._threads)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(5.0)
        assert not [t for t in threads if t.is_alive()], "RawServer threads did not stop"
        if self.errors:
            raise self.errors[0]
