"""The receiver's HTTP surface: webhook intake, health, metrics.

Each webhook goes read (bounded) -> verify -> parse -> route -> dispatch; only dispatch does
I/O, in a worker thread with a bounded timeout, so a slow API server turns into a 503, never a
hung request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse as _StarletteJSONResponse
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from hooksync import logs
from hooksync.jsontext import dump_json
from hooksync.providers import Provider
from receiver.dispatch.dispatcher import Dispatched
from receiver.intake.errors import (
    MalformedDelivery,
    PayloadTooLarge,
    RejectedDelivery,
    SignatureError,
)
from receiver.intake.events import Event, PingEvent, parse_github, parse_gitlab
from receiver.intake.gitea import intake_gitea
from receiver.intake.headers import ReceivedHeaders
from receiver.intake.routing import Routing, route
from receiver.intake.verification import verify_github_delivery, verify_gitlab_signature
from receiver.jobapi import ApiUnavailable
from receiver.state import ReceiverState

log = logging.getLogger("hooksync.receiver")

RETRY_AFTER_SECONDS = 30


def render_json(content: Any) -> bytes:
    """Compact JSON; a reason quoting a payload string never fails to encode (dump_json)."""
    return dump_json(content)


class JSONResponse(_StarletteJSONResponse):
    """Starlette's JSONResponse, rendered by `render_json`."""

    def render(self, content: Any) -> bytes:
        return render_json(content)


class Answer:
    """The JSON answer to a webhook delivery, as an ASGI app of its own.

    What a JSONResponse would send, without the general machinery (header merging, background
    tasks) that intake, the one path under load, never uses.
    """

    __slots__ = ("body", "raw_headers", "status_code")

    def __init__(
        self, content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None
    ) -> None:
        self.status_code = status_code
        self.body = render_json(content)
        self.raw_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self.body)).encode("ascii")),
        ]
        for name, value in (headers or {}).items():
            self.raw_headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        await send({"type": "http.response.body", "body": self.body})


HOOK_PATHS: dict[str, Provider] = {
    "/hooks/github": "github",
    "/hooks/gitlab": "gitlab",
    "/hooks/gitea": "gitea",
}
# The header each provider names its event in (Forgejo sends Gitea's too).
EVENT_HEADERS: dict[Provider, str] = {
    "github": "x-github-event",
    "gitlab": "x-gitlab-event",
    "gitea": "x-gitea-event",
}


class ReceiverApp:
    """The receiver's ASGI app. A POST to a webhook path, the one path under load, goes
    straight to intake without the framework's routing and request objects; every other
    request goes through the Starlette app (health, metrics, pages, and the JSON 404 and 405
    answers, including those for webhook paths)."""

    def __init__(self, state: ReceiverState, pages: Starlette) -> None:
        self.state = state
        self.pages = pages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            provider = HOOK_PATHS.get(scope["path"])
            if provider is not None:
                response = await _intake(self.state, scope, receive, provider)
                await response(scope, receive, send)
                return
        await self.pages(scope, receive, send)


def create_app(state: ReceiverState, pages: Sequence[BaseRoute] = ()) -> ReceiverApp:
    """The ASGI app for one receiver process, serving `pages` beside its own routes."""

    async def github(request: Request) -> Answer:
        return await _intake(state, request.scope, request.receive, "github")

    async def gitlab(request: Request) -> Answer:
        return await _intake(state, request.scope, request.receive, "gitlab")

    async def gitea(request: Request) -> Answer:
        return await _intake(state, request.scope, request.receive, "gitea")

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        if not await run_in_threadpool(state.api_reachable):
            return PlainTextResponse("API server unreachable\n", status_code=503)
        return PlainTextResponse("ok\n")

    async def metrics(request: Request) -> Response:
        return Response(state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    routes = [
        # Reached by other methods (405 with Allow: POST), and under a root path.
        Route("/hooks/github", github, methods=["POST"]),
        Route("/hooks/gitlab", gitlab, methods=["POST"]),
        Route("/hooks/gitea", gitea, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        *pages,
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        # Starlette's own refusals (404, 405 with Allow) answer in the same JSON as ours.
        assert isinstance(exc, HTTPException)
        return JSONResponse(
            {"error": exc.detail.splitlines()[0] if exc.detail else "refused"},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    routed = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
    return ReceiverApp(state, routed)


async def _intake(
    state: ReceiverState, scope: Scope, receive: Receive, provider: Provider
) -> Answer:
    started = time.perf_counter()
    # The first value of each header for plain lookups, and every value of a repeated one
    # for the signature checks, which refuse those.
    headers = ReceivedHeaders.from_asgi(scope["headers"])
    event_name = headers.get(EVENT_HEADERS[provider], "")
    delivery = _delivery_id(headers, provider)
    fields = {"provider": provider, "event": event_name[:40], "delivery": delivery}
    metrics = state.metrics
    try:
        body = await read_body(receive, headers.get("content-length"), state.config.max_body_bytes)
        if provider == "github":
            verify_github_delivery(body, headers, state.secrets.github_webhook)
            event = parse_github(event_name, body, headers.get("content-type"), delivery)
        elif provider == "gitea":
            event = intake_gitea(
                body, headers, headers.get("content-type"), state.secrets.gitea_webhook
            )
        else:
            verify_gitlab_signature(
                body,
                headers,
                state.secrets.gitlab_signing_keys,
                state.secrets.gitlab_webhook_tokens,
                state.clock(),
            )
            event = parse_gitlab(
                body, event_name or None, delivery, content_type=headers.get("content-type")
            )
        routing = route(event, state.config.targets)
        response = await _dispatch(state, event, routing, fields)
    except RejectedDelivery as exc:
        label = type(exc).__name__
        if isinstance(exc, SignatureError):
            metrics.signature_failures.labels(provider).inc()
        metrics.rejected.labels(provider, label).inc()
        metrics.count_delivery(provider, event_name, "rejected")
        log.info(
            "delivery rejected", extra=logs.extra(**fields, status=exc.status, reason=exc.reason)
        )
        response = _error(exc.status, exc.reason)
    except ClientDisconnect:
        metrics.rejected.labels(provider, "ClientDisconnect").inc()
        response = _error(400, "the client closed the connection before the body was complete")
    except ApiUnavailable as exc:
        metrics.count_delivery(provider, event_name, "unavailable")
        log.warning("API server unavailable", extra=logs.extra(**fields, reason=str(exc)))
        response = Answer(
            {"error": f"{exc}; retry later"},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    metrics.observe_request(provider, time.perf_counter() - started)
    return response


async def _dispatch(
    state: ReceiverState, event: Event, routing: Routing, fields: dict[str, Any]
) -> Answer:
    metrics = state.metrics
    results: list[Dispatched] = []
    for request in routing.requests:
        result = await run_in_threadpool(state.dispatcher.dispatch, request)
        results.append(result)
        if result.outcome != "duplicate":
            state.job_created.set()
        if result.outcome == "created":
            metrics.jobs_created.labels(result.target, request.mode).inc()
        elif result.outcome == "coalesced":
            metrics.jobs_coalesced.labels(result.target).inc()
        log.info(
            "delivery dispatched",
            extra=logs.extra(
                **fields, target=result.target, job=result.job, outcome=result.outcome
            ),
        )
    answer = answer_for(event, routing, results)
    metrics.count_delivery(fields["provider"], fields["event"], answer.outcome)
    # Debug only: an organisation's webhook brings every branch of every repository, and
    # the reason is in the answer, which the Git host shows beside each delivery.
    if not results and log.isEnabledFor(logging.DEBUG):
        log.debug("delivery ignored", extra=logs.extra(**fields, reason=routing.reason))
    return Answer(answer.body, status_code=answer.status)


@dataclass(frozen=True)
class DeliveryAnswer:
    """The answer to a delivery that was understood, and the outcome it counts as."""

    outcome: str  # ping | ignored | suspended | duplicate | dispatched
    status: int
    body: dict[str, Any]


def answer_for(event: Event, routing: Routing, results: Sequence[Dispatched]) -> DeliveryAnswer:
    """Pure: 202 once any Job was created or folded into; 200 when the delivery needs nothing
    (a ping, a branch no target follows, only suspended targets) or every Job it asks for
    exists already."""
    if not results:
        outcome = "ping" if isinstance(event, PingEvent) else "ignored"
        if routing.suspended:
            outcome = "suspended"
        body: dict[str, Any] = {"status": outcome, "reason": routing.reason}
        if isinstance(event, PingEvent):
            body["zen"] = event.zen
        return DeliveryAnswer(outcome, 200, body)
    jobs = [{"target": r.target, "job": r.job, "outcome": r.outcome} for r in results]
    if all(r.outcome == "duplicate" for r in results):
        reasons = "; ".join(r.reason for r in results)
        body = {"status": "already dispatched", "reason": reasons, "jobs": jobs}
        return DeliveryAnswer("duplicate", 200, body)
    body = {"status": "dispatched", "reason": routing.reason, "jobs": jobs}
    if routing.suspended:
        body["suspended"] = list(routing.suspended)
    return DeliveryAnswer("dispatched", 202, body)


async def read_body(receive: Receive, declared: str | None, limit: int) -> bytes:
    """The raw body, refusing (413) as soon as it passes `limit` without reading the rest.

    `declared` is the Content-Length header, if one was sent.
    """
    if declared is not None:
        if not declared.isdigit():
            raise MalformedDelivery("Content-Length is not a number")
        if int(declared) > limit:
            raise PayloadTooLarge(f"body of {declared} bytes is over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body is over the {limit}-byte limit")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _delivery_id(headers: Mapping[str, str], provider: Provider) -> str | None:
    if provider == "github":
        return headers.get("x-github-delivery")
    if provider == "gitea":
        return headers.get("x-gitea-delivery") or headers.get("x-forgejo-delivery")
    return (
        headers.get("webhook-id")
        or headers.get("idempotency-key")
        or headers.get("x-gitlab-webhook-uuid")
        or headers.get("x-gitlab-event-uuid")
    )


def _error(status: int, reason: str) -> Answer:
    return Answer({"error": reason.splitlines()[0] if reason else "rejected"}, status_code=status)
