"""What the receiver gives a client that has proven nothing yet: bytes held, time, header size.

Pure rules, no sockets and no clock of their own: the body budget shared by all connections,
the deadline a connection is cut off at in each phase of a request, the header tally, how long
a refused client is drained, and the raw JSON answer written when the app cannot answer.
`receiver/intake/connection.py` and `receiver/intake/admission.py` apply them.
"""

from __future__ import annotations

import enum
import http
import json
from collections.abc import Sequence
from dataclasses import dataclass

from hooksync.config import HttpLimits

# Each request's first bytes are covered by the connection limit rather than by the shared
# budget, so the small bodies webhooks really send (a push is a few KB) are still received
# while large unverified bodies have used the budget up.
BODY_ALLOWANCE_BYTES = 64 * 1024
# How long, and how much, a client refused while still sending is drained before the close,
# so that it reads the answer instead of a reset (a client such as urllib reads only after it
# has sent the whole body). A connection over the limit is drained for less: it costs a slot.
LINGER_SECONDS = 5.0
LINGER_BYTES = 64 * 1024 * 1024
OVER_LIMIT_LINGER_SECONDS = 1.0
RETRY_AFTER_SECONDS = 10


class BodyBudget:
    """Pure: the unverified body bytes held across all requests, and whether more fit."""

    def __init__(self, total: int, allowance: int = BODY_ALLOWANCE_BYTES) -> None:
        self.total = total
        self.allowance = allowance
        self.used = 0

    @property
    def free(self) -> int:
        return self.total - self.used

    def admits(self, declared: int) -> bool:
        """Whether a body of `declared` bytes fits what is free now."""
        return declared - self.allowance <= self.free

    def hold(self) -> BodyHold:
        """A new request's share, empty."""
        return BodyHold(self)


class BodyHold:
    """Pure: one request's body bytes, charged to its budget beyond the allowance."""

    __slots__ = ("budget", "charged", "received")

    def __init__(self, budget: BodyBudget) -> None:
        self.budget = budget
        self.received = 0
        self.charged = 0

    def take(self, size: int) -> bool:
        """Account `size` more bytes; False, charging nothing, when the budget cannot hold them."""
        over = max(0, self.received + size - self.budget.allowance) - self.charged
        if over > self.budget.free:
            return False
        self.budget.used += over
        self.charged += over
        self.received += size
        return True

    def release(self) -> None:
        """Give everything back: the body was read whole (and is checked before anything else
        runs), or the request ended. Releasing twice is harmless."""
        self.budget.used -= self.charged
        self.charged = 0


class Phase(enum.Enum):
    """Where a connection stands, for its deadline."""

    HEAD = "head"  # waiting for, or reading, a request's line and headers
    BODY = "body"  # reading a request's body
    ANSWERING = "answering"  # the request is whole; the receiver is working on it
    KEEP_ALIVE = "keep-alive"  # answered; waiting for another request


@dataclass(frozen=True)
class Timeouts:
    header: float
    body: float
    idle: float
    keep_alive: float

    @classmethod
    def from_limits(cls, limits: HttpLimits) -> Timeouts:
        return cls(
            header=limits.header_timeout_seconds,
            body=limits.body_timeout_seconds,
            idle=limits.idle_timeout_seconds,
            keep_alive=limits.keep_alive_timeout_seconds,
        )


def cutoff(phase: Phase, since: float, last_byte: float, timeouts: Timeouts) -> float | None:
    """Pure: when a connection in `phase` (entered at `since`, its last byte at `last_byte`)
    is cut off; None while the receiver itself is working, which its own timeouts bound.

    The head and the body each have a deadline however the bytes trickle in, and a client
    that sends nothing for the idle timeout is cut off sooner.
    """
    if phase is Phase.HEAD:
        return min(since + timeouts.header, last_byte + timeouts.idle)
    if phase is Phase.BODY:
        return min(since + timeouts.body, last_byte + timeouts.idle)
    if phase is Phase.KEEP_ALIVE:
        return since + timeouts.keep_alive
    return None


class HeadTally:
    """Pure: the size and number of one request's line and headers, against the limits."""

    __slots__ = ("count", "max_bytes", "max_headers", "size")

    def __init__(self, max_bytes: int, max_headers: int) -> None:
        self.max_bytes = max_bytes
        self.max_headers = max_headers
        self.size = 0
        self.count = 0

    def add_target(self, piece: bytes) -> str | None:
        """Count part of the request target; the refusal's reason when over the limit."""
        self.size += len(piece)
        return self._over()

    def add_header(self, name: bytes, value: bytes) -> str | None:
        """Count one header line; the refusal's reason when over a limit."""
        self.size += len(name) + len(value) + 4  # ": " and CRLF
        self.count += 1
        if self.count > self.max_headers:
            return f"more than {self.max_headers} header fields"
        return self._over()

    def arriving(self, size: int) -> str | None:
        """Whether a head still incomplete after `size` bytes is already over the limit."""
        if size > self.max_bytes:
            return f"request line and headers over {self.max_bytes} bytes"
        return None

    def _over(self) -> str | None:
        return self.arriving(self.size)


def refusal_body(reason: str) -> bytes:
    """Pure: the one-line JSON reason every refusal carries."""
    return json.dumps({"error": reason}).encode()


def raw_answer(
    status: int,
    reason: str,
    default_headers: Sequence[tuple[bytes, bytes]] = (),
    retry_after: int | None = None,
) -> bytes:
    """Pure: a whole HTTP/1.1 answer with the receiver's one-line JSON reason, closing the
    connection; for refusals made before (or instead of) the app."""
    body = refusal_body(reason)
    head = [f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n".encode()]
    head += [name + b": " + value + b"\r\n" for name, value in default_headers]
    head.append(b"content-type: application/json\r\n")
    head.append(b"content-length: %d\r\n" % len(body))
    if retry_after is not None:
        head.append(b"retry-after: %d\r\n" % retry_after)
    head.append(b"connection: close\r\n\r\n")
    return b"".join(head) + body
