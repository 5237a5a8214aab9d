"""`POST /targets/{target}/sync`: start a resync of one target now ("sync now").

Starting Jobs is more than reading the status page, so it has a token of its own: set
HOOKSYNC_SYNC_TOKEN (or HOOKSYNC_SYNC_TOKEN_FILE, one token a line, to rotate) and send
`Authorization: Bearer <token>`. Without a configured token the route refuses every request.
The Job is the one the target's resync CronJob would start, one per target and minute at most.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hooksync import logs
from receiver.jobapi import ApiUnavailable
from receiver.pages.status import authorized
from receiver.state import ReceiverState

log = logging.getLogger("hooksync.receiver")

SYNC_TOKEN_ENV = "HOOKSYNC_SYNC_TOKEN"  # noqa: S105 - the variable's name, not a token
RETRY_AFTER_SECONDS = 30
# Answers are about one request: never cached, never sniffed.
HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="hooksync"'}


def sync_now_route(state: ReceiverState, tokens: Sequence[str] = ()) -> Route:
    """The route; only a request bearing one of `tokens` starts anything (none: nobody)."""

    async def sync_now(request: Request) -> Response:
        if not tokens:
            return _answer(401, {"error": f"sync now is off: set {SYNC_TOKEN_ENV} to allow it"})
        if not authorized(request.headers.get("authorization"), tokens):
            return _answer(401, {"error": f"a bearer token is required ({SYNC_TOKEN_ENV})"})
        name = str(request.path_params["target"])
        # Looked up among the configured names only: the path never reaches a Job or a log.
        target = next((t for t in state.config.targets if t.name == name), None)
        if target is None:
            return _answer(404, {"error": "no target of that name is configured"})
        if target.suspend:
            reason = f"target {target.name} is suspended; set suspend: false to sync it"
            return _answer(409, {"error": reason})
        try:
            result = await run_in_threadpool(state.dispatcher.sync_now, target)
        except ApiUnavailable as exc:
            return _answer(503, {"error": f"{exc}; retry later"}, retry=True)
        log.info(
            "sync requested",
            extra=logs.extra(target=target.name, job=result.job, outcome=result.outcome),
        )
        body = {"target": target.name, "job": result.job}
        if result.outcome == "created":
            state.job_created.set()
            return _answer(202, {"status": "started", **body})
        return _answer(200, {"status": "already started", "reason": result.reason, **body})

    return Route("/targets/{target}/sync", sync_now, methods=["POST"])


def _answer(status: int, body: Mapping[str, Any], retry: bool = False) -> JSONResponse:
    headers = dict(HEADERS)
    if status == 401:
        headers.update(CHALLENGE)
    if retry:
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return JSONResponse(dict(body), status_code=status, headers=headers)
