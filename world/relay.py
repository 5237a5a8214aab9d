"""A TCP relay: makes a loopback service of this machine reachable at another local address.

The test world's Git server and Git-host stand-ins listen on 127.0.0.1 only. On a kind cluster
(hack/e2e-kind.sh), pods reach this machine at the kind network's gateway address; a relay
listening there hands each connection to the loopback port, byte for byte, in both directions.
It needs no privileges and changes no firewall rule. (The real node of `make e2e` uses a DNAT
rule instead, world/netns.py, since its pods' traffic arrives through a veth it owns.)
"""

from __future__ import annotations

import contextlib
import socket
import threading


class Relay:
    """Accepts on `address` (a free port) and copies each connection to 127.0.0.1:`target`."""

    def __init__(self, address: str, target: int) -> None:
        self.address = address
        self.target = target
        self.port = 0
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._stopped = False
        self._lock = threading.Lock()

    def start(self) -> str:
        """Start listening; returns the `host:port` pods connect to."""
        listener = socket.create_server((self.address, 0))
        self._listener = listener
        self.port = int(listener.getsockname()[1])
        threading.Thread(target=self._accept, name=f"relay-{self.port}", daemon=True).start()
        return f"{self.address}:{self.port}"

    def stop(self) -> None:
        """Stop listening and close every relayed connection."""
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            self._stopped = True
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def _accept(self) -> None:
        listener = self._listener
        while listener is not None:
            try:
                inbound, _ = listener.accept()
            except OSError:
                return  # stopped
            try:
                outbound = socket.create_connection(("127.0.0.1", self.target), timeout=10)
                outbound.settimeout(None)
            except OSError:
                inbound.close()
                continue
            with self._lock:
                # A connection accepted just as stop() ran is closed here, not left relaying.
                if self._stopped:
                    inbound.close()
                    outbound.close()
                    return
                self._open.update((inbound, outbound))
            pair = _Pair(inbound, outbound)
            for source, sink in ((inbound, outbound), (outbound, inbound)):
                threading.Thread(target=self._copy, args=(pair, source, sink), daemon=True).start()

    def _copy(self, pair: _Pair, source: socket.socket, sink: socket.socket) -> None:
        """Copy until `source` ends, then pass the end on (half-close), as TCP would."""
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
        with self._lock:
            pair.running -= 1
            if pair.running == 0:  # both directions ended: the connection is done
                for sock in (pair.inbound, pair.outbound):
                    self._open.discard(sock)
                    sock.close()


class _Pair:
    """One relayed connection: its two sockets and how many copy directions still run."""

    def __init__(self, inbound: socket.socket, outbound: socket.socket) -> None:
        self.inbound = inbound
        self.outbound = outbound
        self.running = 2
