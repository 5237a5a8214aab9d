"""Request bodies are admitted against the shared budget as they arrive (ASGI middleware).

Every chunk the app receives is charged to the `BodyBudget` until the body is whole (intake
then checks its signature before anything else runs) or the request ends. A chunk the budget
cannot hold makes `receive` raise `ReceiverBusy`, which intake answers like any refusal; this
layer adds `Retry-After`. An answer that starts before the whole body has arrived (413, 503)
also closes the connection, so the client is not expected to send the rest for nothing.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from receiver.intake.errors import ReceiverBusy
from receiver.intake.limits import RETRY_AFTER_SECONDS, BodyBudget, refusal_body


class BodyAdmission:
    """Wraps the receiver's ASGI app; one instance, and one budget, per process."""

    def __init__(self, app: ASGIApp, budget: BodyBudget) -> None:
        self.app = app
        self.budget = budget

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        budget = self.budget
        hold = budget.hold()
        declared, has_body = _framing(scope["headers"])
        whole = not has_body
        busy = False
        started = False

        async def admitted_receive() -> Message:
            nonlocal whole, busy
            if hold.received == 0 and declared is not None and not budget.admits(declared):
                busy = True
                raise ReceiverBusy(_busy_reason(budget))
            message = await receive()
            if message["type"] == "http.request":
                if not hold.take(len(message.get("body", b""))):
                    hold.release()
                    busy = True
                    raise ReceiverBusy(_busy_reason(budget))
                if not message.get("more_body", False):
                    whole = True
                    hold.release()
            return message

        async def closing_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                extra = []
                if not whole:
                    extra.append((b"connection", b"close"))
                if busy and message["status"] == ReceiverBusy.status:
                    extra.append((b"retry-after", b"%d" % RETRY_AFTER_SECONDS))
                if extra:
                    message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        try:
            await self.app(scope, admitted_receive, closing_send)
        except ReceiverBusy as exc:  # an app that does not answer refusals itself
            if started:
                raise
            await _answer_busy(send, exc.reason)
        finally:
            hold.release()


def _framing(headers: list[tuple[bytes, bytes]]) -> tuple[int | None, bool]:
    """The declared Content-Length (None if absent or unreadable), and whether a body comes."""
    declared: int | None = None
    chunked = False
    for name, value in headers:
        if name == b"content-length":
            declared = int(value) if value.isdigit() else None
        elif name == b"transfer-encoding":
            chunked = True
    return declared, chunked or bool(declared)


def _busy_reason(budget: BodyBudget) -> str:
    return (
        f"the receiver holds {budget.used} bytes of unverified bodies, its limit "
        f"(http.unverifiedBodyBytes {budget.total}); retry in {RETRY_AFTER_SECONDS} s"
    )


async def _answer_busy(send: Send, reason: str) -> None:
    body = refusal_body(reason)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
        (b"retry-after", b"%d" % RETRY_AFTER_SECONDS),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})
