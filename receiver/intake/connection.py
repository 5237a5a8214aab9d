"""Per-connection limits on uvicorn's httptools protocol: deadlines, header limits, the
connection limit, and a lingering close so that a refused client reads its answer.

The rules are in `receiver/intake/limits.py`; this mixin only watches the parser's callbacks
and the clock. Refusals written here carry the same one-line JSON reason as the app's:

- 503 with Retry-After to a connection over `http.maxConnections`;
- 431 when the request line and headers pass `http.maxHeaderBytes` or `http.maxHeaders`;
- 408 when a request's head or body misses its deadline, or nothing arrives for the idle
  timeout while one is arriving; a connection silent from the start is closed without one.

A connection closed while its request is still arriving (any refusal, the app's 413 or 503
among them) is half-closed after the answer and drained for a few seconds before the close:
closing at once, with the client's bytes unread, would reset the connection, and a client
still sending would never read the answer.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, ClassVar, cast

from hooksync.config import HttpLimits
from receiver.intake.limits import (
    LINGER_BYTES,
    LINGER_SECONDS,
    OVER_LIMIT_LINGER_SECONDS,
    RETRY_AFTER_SECONDS,
    HeadTally,
    Phase,
    Timeouts,
    cutoff,
    raw_answer,
)

if TYPE_CHECKING:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    _Base = HttpToolsProtocol
else:
    _Base = object


class _Refused(Exception):
    """Raised in a parser callback after a refusal was written, to stop the parser."""


class LingeringTransport:
    """The connection's transport as uvicorn sees it: `close` is the connection's decision
    (drain first while the request is still arriving), everything else passes through."""

    def __init__(self, transport: asyncio.Transport, connection: LimitedConnection) -> None:
        self._transport = transport
        self._connection = connection

    def close(self) -> None:
        self._connection.close_connection()

    def is_closing(self) -> bool:
        return self._connection.lingering or self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class LimitedConnection(_Base):
    """Mixin for uvicorn's `HttpToolsProtocol`; `limits` is set on the class made for a
    process (`receiver.intake.protocol.http_protocol`)."""

    limits: ClassVar[HttpLimits] = HttpLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timeouts = Timeouts.from_limits(self.limits)
        now = self.loop.time()
        self._phase = Phase.HEAD
        self._since = now
        self._last_byte = now
        self._timer: asyncio.TimerHandle | None = None
        self._head = HeadTally(self.limits.max_header_bytes, self.limits.max_headers)
        self._head_arriving = 0  # bytes received while the current head is incomplete
        self._receiving = False  # a request has begun and has not arrived whole
        self._raw: asyncio.Transport | None = None
        self._linger_drained = -1  # -1 while not lingering

    @property
    def lingering(self) -> bool:
        return self._linger_drained >= 0

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._raw = cast(asyncio.Transport, transport)  # uvloop's is one, by duck typing
        super().connection_made(LingeringTransport(self._raw, self))  # type: ignore[arg-type]
        self._enter(Phase.HEAD)
        if len(self.connections) > self.limits.max_connections:
            self._refuse(
                503,
                f"the receiver is serving {self.limits.max_connections} connections, its "
                f"limit (http.maxConnections); retry in {RETRY_AFTER_SECONDS} s",
                retry_after=RETRY_AFTER_SECONDS,
                linger=OVER_LIMIT_LINGER_SECONDS,
            )

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            self._linger_drained += len(data)
            if self._linger_drained > LINGER_BYTES:
                self._close_now()
            return
        self._last_byte = self.loop.time()
        if self._phase in (Phase.HEAD, Phase.KEEP_ALIVE):
            self._head_arriving += len(data)
        super().data_received(data)
        if self._phase is Phase.HEAD and not self.lingering:
            reason = self._head.arriving(self._head_arriving)
            if reason is not None:
                self._refuse(431, reason)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        super().connection_lost(exc)

    # -- httptools callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._receiving = True
        self._head = HeadTally(self.limits.max_header_bytes, self.limits.max_headers)
        if self._phase is not Phase.HEAD:
            self._enter(Phase.HEAD)

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._check_head(self._head.add_target(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._check_head(self._head.add_header(name, value))

    def on_headers_complete(self) -> None:
        self._head_arriving = 0
        self._enter(Phase.BODY)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._receiving = False
        self._enter(Phase.ANSWERING)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # With a pipelined request behind this one, its own callbacks set the phase.
        if not self.lingering and not self._receiving and self.cycle.response_complete:
            self._enter(Phase.KEEP_ALIVE)

    def send_400_response(self, msg: str) -> None:
        if self.lingering or self._raw is None or self._raw.is_closing():
            return  # already refused, with a better reason than the parser's
        super().send_400_response(msg)

    # -- closing ------------------------------------------------------------------------------

    def close_connection(self) -> None:
        """Close, draining first while the client may still be sending its request."""
        if self.lingering:
            return  # the drain's own timer closes it
        if self._receiving:
            self._linger(LINGER_SECONDS)
        else:
            self._close_now()

    def _close_now(self) -> None:
        self._cancel_timer()
        if self._raw is not None and not self._raw.is_closing():
            self._raw.close()

    def _linger(self, seconds: float) -> None:
        raw = self._raw
        if raw is None or raw.is_closing() or self.lingering:
            return
        if not raw.can_write_eof():
            self._close_now()
            return
        raw.write_eof()  # after the answer already written
        self._linger_drained = 0
        self._cancel_timer()
        self._timer = self.loop.call_later(seconds, self._close_now)
        raw.resume_reading()  # uvicorn may have paused reading for flow control

    def _refuse(
        self,
        status: int,
        reason: str,
        retry_after: int | None = None,
        linger: float = LINGER_SECONDS,
    ) -> None:
        """Answer in place of the app, then close lingeringly."""
        raw = self._raw
        if raw is None or raw.is_closing() or self.lingering:
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if cycle.response_started:  # half an answer is out: nothing more can follow it
                self._close_now()
                return
            # The app's answer, if it still gives one, goes nowhere; a read it is waiting on
            # ends as a disconnect.
            cycle.disconnected = True
            cycle.message_event.set()
        raw.write(raw_answer(status, reason, self.server_state.default_headers, retry_after))
        self._linger(linger)

    def _check_head(self, reason: str | None) -> None:
        if reason is not None:
            self._refuse(431, reason)
            raise _Refused(reason)

    # -- deadlines ----------------------------------------------------------------------------

    def _enter(self, phase: Phase) -> None:
        self._phase = phase
        self._since = self.loop.time()
        self._cancel_timer()
        self._arm()

    def _arm(self) -> None:
        when = cutoff(self._phase, self._since, self._last_byte, self._timeouts)
        if when is not None:
            self._timer = self.loop.call_at(when, self._on_deadline)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_deadline(self) -> None:
        self._timer = None
        when = cutoff(self._phase, self._since, self._last_byte, self._timeouts)
        if when is None:
            return
        if self.loop.time() < when:  # bytes arrived since the timer was set
            self._timer = self.loop.call_at(when, self._on_deadline)
            return
        self._cut_off()

    def _cut_off(self) -> None:
        idle = self.loop.time() - self._last_byte >= self._timeouts.idle
        if self._phase is Phase.KEEP_ALIVE or (
            self._phase is Phase.HEAD and not self._receiving and self._head_arriving == 0
        ):
            self._close_now()  # nothing of a request arrived: no one to answer
        elif self._phase is Phase.HEAD:
            self._refuse(408, _late("headers", self._timeouts.header, idle, self._timeouts.idle))
        else:
            self._refuse(408, _late("body", self._timeouts.body, idle, self._timeouts.idle))


def _late(part: str, deadline: float, idle: bool, idle_timeout: float) -> str:
    if idle:
        return (
            f"nothing of the request's {part} arrived for {idle_timeout:g} s "
            "(http.idleTimeoutSeconds)"
        )
    setting = "http.headerTimeoutSeconds" if part == "headers" else "http.bodyTimeoutSeconds"
    return f"the request's {part} did not arrive within {deadline:g} s ({setting})"
