"""`POST /targets/{target}/sync`: who may start a resync, and the answers that need no Job.

The route runs in Starlette with a real (unreachable) API client: every refusal here is
decided before any call, and the one request that gets through meets a closed port (503).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import httpx
import pytest
from kubernetes.client import ApiClient, Configuration
from starlette.applications import Starlette

from hooksync.config import parse_config
from receiver.pages.sync import sync_now_route
from receiver.secrets import ReceiverSecrets
from receiver.state import ReceiverState

CONFIG = parse_config(
    "jobImage: img\npublicURL: https://h\n"
    "targets:\n"
    "- {name: shop, provider: github, repo: acme/shop, namespace: shop, serviceAccount: sa}\n"
    "- {name: paused, provider: github, repo: acme/paused, namespace: paused,"
    " serviceAccount: sa, suspend: true}\n"
)


def app(tokens: Sequence[str]) -> Starlette:
    configuration = Configuration()
    configuration.host = "http://127.0.0.1:9"  # the discard port: nothing answers
    state = ReceiverState(
        config=CONFIG, secrets=ReceiverSecrets(), api=ApiClient(configuration), namespace="h"
    )
    return Starlette(routes=[sync_now_route(state, tokens)])


def post(app: Starlette, path: str, authorization: str | None = None) -> httpx.Response:
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
            headers = {"Authorization": authorization} if authorization else {}
            return await client.post(path, headers=headers)

    return asyncio.run(send())


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic c3luYw==", "Bearer "])
def test_without_the_token_nothing_is_told_or_started(authorization: str | None) -> None:
    for path in ("/targets/shop/sync", "/targets/nope/sync", "/targets/paused/sync"):
        answer = post(app(["sync-token", "old-token"]), path, authorization)
        assert answer.status_code == 401
        assert answer.json() == {"error": "a bearer token is required (HOOKSYNC_SYNC_TOKEN)"}
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert answer.headers["cache-control"] == "no-store"


def test_with_no_token_configured_the_route_is_off() -> None:
    answer = post(app([]), "/targets/shop/sync", "Bearer anything")
    assert answer.status_code == 401
    assert "sync now is off" in answer.json()["error"]


def test_an_unknown_target_is_404_and_a_suspended_one_409() -> None:
    hostile = "/targets/%3Cscript%3E/sync"
    for path in ("/targets/nope/sync", hostile):
        answer = post(app(["sync-token"]), path, "Bearer sync-token")
        assert answer.status_code == 404
        assert answer.json() == {"error": "no target of that name is configured"}
    answer = post(app(["sync-token"]), "/targets/paused/sync", "Bearer old-token")
    assert answer.status_code == 401
    answer = post(app(["sync-token", "old-token"]), "/targets/paused/sync", "Bearer old-token")
    assert answer.status_code == 409
    assert answer.json() == {"error": "target paused is suspended; set suspend: false to sync it"}


def test_an_unreachable_api_server_is_503_with_retry_after() -> None:
    answer = post(app(["sync-token"]), "/targets/shop/sync", "Bearer sync-token")
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "30"
    assert answer.json()["error"].endswith("retry later")
