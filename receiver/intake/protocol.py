"""The HTTP/1.1 protocol the receiver serves with: uvicorn's own, except that a request it
cannot parse at all (Content-Length twice, Content-Length with chunked, a NUL in a header)
is refused with the same JSON error body as every other 400, not uvicorn's plain text, and
that every connection keeps the limits in `receiver/intake/connection.py`.
"""

from __future__ import annotations

import asyncio
import json

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from hooksync.config import HttpLimits

_BODY = json.dumps(
    {"error": "the request is not valid HTTP/1.1 (framing or header syntax)"}
).encode()


class _JSONBadRequest:
    """Replaces uvicorn's `send_400_response`; the connection is closed after it, as there."""

    transport: asyncio.Transport
    server_state: ServerState

    def send_400_response(self, msg: str) -> None:
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:  # date, server
            head.append(name + b": " + value + b"\r\n")
        head += [
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(_BODY)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + _BODY)
        self.transport.close()


class H11JSONProtocol(_JSONBadRequest, H11Protocol):
    pass


def http_protocol(limits: HttpLimits | None = None) -> type[asyncio.Protocol]:
    """The protocol class for uvicorn: httptools when installed (as uvicorn's "auto" picks),
    keeping `limits`. Without httptools only uvicorn's own limits apply (h11's on head size)."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return H11JSONProtocol

    from receiver.intake.connection import LimitedConnection

    class HttpToolsJSONProtocol(LimitedConnection, _JSONBadRequest, HttpToolsProtocol):
        pass

    HttpToolsJSONProtocol.limits = limits or HttpLimits()

    return HttpToolsJSONProtocol
