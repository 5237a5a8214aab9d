"""The intake's answers that need no API server: refusals in the same order on both paths, and
the answer a set of dispatch results makes."""

from __future__ import annotations

import asyncio
import hashlib
import hmac

import httpx
import pytest
from kubernetes.client import ApiClient

from hooksync.config import parse_config
from receiver.app import ReceiverApp, answer_for, create_app
from receiver.dispatch.dispatcher import Dispatched
from receiver.intake.events import IgnoredEvent, PingEvent, PushEvent
from receiver.intake.routing import route
from receiver.secrets import ReceiverSecrets
from receiver.state import ReceiverState

SECRET = "webhook-secret"
TOKEN = "gitlab-token"
SHA = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
CONFIG = parse_config(
    "jobImage: img\npublicURL: https://h\n"
    "targets:\n- {name: shop, provider: github, repo: acme/shop, branch: main,"
    " namespace: shop, serviceAccount: sa}\n"
)
BODY = b'{"zen": "Keep it logically awesome."}'


@pytest.fixture
def app() -> ReceiverApp:
    secrets = ReceiverSecrets(github_webhook=(SECRET,), gitlab_webhook_tokens=(TOKEN,))
    # No delivery here reaches dispatch, so the API client is never called.
    return create_app(
        ReceiverState(config=CONFIG, secrets=secrets, api=ApiClient(), namespace="hooksync")
    )


def post(app: ReceiverApp, path: str, headers: dict[str, str]) -> httpx.Response:
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
            return await client.post(path, content=BODY, headers=headers)

    return asyncio.run(send())


def github_signature(body: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    ("path", "event"),
    [("/hooks/github", {"X-GitHub-Event": "ping"}), ("/hooks/gitlab", {"X-Gitlab-Event": "x"})],
)
def test_an_unsigned_delivery_is_401_whatever_its_content_type(
    app: ReceiverApp, path: str, event: dict[str, str]
) -> None:
    answer = post(app, path, {**event, "Content-Type": "text/plain"})
    assert answer.status_code == 401, answer.text


def test_a_signed_delivery_of_another_content_type_is_415_on_both_paths(
    app: ReceiverApp,
) -> None:
    github = post(
        app,
        "/hooks/github",
        {
            "X-GitHub-Event": "ping",
            "X-Hub-Signature-256": github_signature(BODY),
            "Content-Type": "text/plain",
        },
    )
    gitlab = post(
        app,
        "/hooks/gitlab",
        {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": TOKEN, "Content-Type": "text/plain"},
    )
    assert (github.status_code, gitlab.status_code) == (415, 415)
    assert "content type" in github.json()["error"] and "content type" in gitlab.json()["error"]


def test_a_signed_ping_is_answered_200_with_its_zen(app: ReceiverApp) -> None:
    headers = {
        "X-GitHub-Event": "ping",
        "X-Hub-Signature-256": github_signature(BODY),
        "Content-Type": "application/json",
    }
    answer = post(app, "/hooks/github", headers)
    assert answer.status_code == 200
    assert answer.json() == {
        "status": "ping",
        "reason": "ping from github: Keep it logically awesome.",
        "zen": "Keep it logically awesome.",
    }


# answer_for (pure)


PUSH = PushEvent(
    provider="github", repo="acme/shop", ref="refs/heads/main", after=SHA, before=SHA, branch="main"
)


def test_an_event_no_target_follows_is_200_ignored() -> None:
    event = IgnoredEvent("tag v1 deploys nothing")
    answer = answer_for(event, route(event, CONFIG.targets), [])
    assert (answer.status, answer.outcome) == (200, "ignored")
    assert answer.body == {"status": "ignored", "reason": "tag v1 deploys nothing"}


def test_a_ping_is_200_with_its_zen() -> None:
    event = PingEvent(provider="github", zen="Design for failure.")
    answer = answer_for(event, route(event, CONFIG.targets), [])
    assert (answer.status, answer.outcome, answer.body["zen"]) == (
        200,
        "ping",
        "Design for failure.",
    )


def test_jobs_created_or_folded_into_are_202_and_named() -> None:
    routing = route(PUSH, CONFIG.targets)
    results = [Dispatched("shop", "hooksync-shop-apply-6113728", "coalesced")]
    answer = answer_for(PUSH, routing, results)
    assert (answer.status, answer.outcome) == (202, "dispatched")
    assert answer.body == {
        "status": "dispatched",
        "reason": "apply 6113728 for target shop",
        "jobs": [{"target": "shop", "job": "hooksync-shop-apply-6113728", "outcome": "coalesced"}],
    }


def test_a_delivery_whose_jobs_all_exist_is_200_already_dispatched() -> None:
    routing = route(PUSH, CONFIG.targets)
    results = [Dispatched("shop", "hooksync-shop-apply-6113728", "duplicate", "delivery d-1 seen")]
    answer = answer_for(PUSH, routing, results)
    assert (answer.status, answer.outcome) == (200, "duplicate")
    assert answer.body["status"] == "already dispatched"
    assert answer.body["reason"] == "delivery d-1 seen"


def test_a_delivery_for_suspended_targets_only_is_200_suspended() -> None:
    suspended = parse_config(
        "jobImage: img\npublicURL: https://h\n"
        "targets:\n- {name: shop, provider: github, repo: acme/shop, branch: main,"
        " namespace: shop, serviceAccount: sa, suspend: true}\n"
    )
    answer = answer_for(PUSH, route(PUSH, suspended.targets), [])
    assert (answer.status, answer.outcome) == (200, "suspended")
    assert answer.body == {
        "status": "suspended",
        "reason": "target shop is suspended (suspend: true); no Job started",
    }
