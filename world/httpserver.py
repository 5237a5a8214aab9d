"""One HTTP server on loopback for the world's stand-ins, whose stop also ends keep-alive
connections, so a stopped stand-in really looks like a host that went away."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LoopbackHTTPServer(ThreadingHTTPServer):
    """A `ThreadingHTTPServer` on 127.0.0.1 that tracks its open connections.

    `port` 0 picks a free one; a stand-in that stops and starts again passes its old port.
    With `join_handlers`, handler threads are not daemons and `close()` waits for them, so a
    stop leaves no stray threads (or CGI processes they started) behind.
    """

    allow_reuse_address = True

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        *,
        port: int = 0,
        join_handlers: bool = False,
    ) -> None:
        self.daemon_threads = not join_handlers
        self.block_on_close = join_handlers
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        super().__init__(("127.0.0.1", port), handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def serve_in_background(self, name: str, poll_interval: float = 0.05) -> None:
        """Serve from a daemon thread until `close()`."""
        self._thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": poll_interval},
            name=name,
            daemon=True,
        )
        self._thread.start()

    def close(self) -> None:
        """Stop serving, cut open connections, release the port."""
        self.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.close_connections()
        self.server_close()

    def close_connections(self) -> None:
        # Keep-alive connections would otherwise go on being served after a stop (a test that
        # stops a host to simulate an outage would still get answers), and handler threads
        # waiting on an idle connection would keep a joining close() waiting.
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that drops its keep-alive connection (Go's HTTP client does, between
        # fetches) is no error of the stand-in's; anything else still prints its traceback.
        if isinstance(sys.exception(), ConnectionError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]

    def process_request(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: object
    ) -> None:
        if isinstance(request, socket.socket):
            with self._connections_lock:
                self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket | tuple[bytes, socket.socket]) -> None:
        if isinstance(request, socket.socket):
            with self._connections_lock:
                self._connections.discard(request)
        super().shutdown_request(request)
