"""The run page shows payload- and Git-derived strings as text, never as markup."""

from __future__ import annotations

import asyncio
import html
from typing import Any

import httpx
import pytest
from kubernetes.client import ApiClient
from starlette.applications import Starlette

from hooksync import names
from hooksync.config import parse_config
from hooksync.summary import RunSummary
from receiver.pages import run as runpage
from receiver.pages._html import SECURITY_HEADERS
from receiver.pages.run import RunInputs, page, run_page_route
from receiver.reporting.links import sign_run
from receiver.secrets import ReceiverSecrets
from receiver.state import ReceiverState

SHA = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(2)>'


def job(**annotations: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "hooksync-shop-apply-6113728",
            "labels": {names.TARGET: "shop", names.MODE: "apply"},
            "annotations": {names.SHA: SHA, **annotations},
            "creationTimestamp": "2025-01-01T00:00:00Z",
        },
        "spec": {},
        "status": {
            "startTime": "2025-01-01T00:00:01Z",
            "completionTime": "2025-01-01T00:00:09Z",
            "succeeded": 1,
            "conditions": [{"type": "Complete", "status": "True"}],
        },
    }


def hostile_summary() -> RunSummary:
    return RunSummary(
        result="success",
        sha=SHA,
        counts={"created": 1, "configured": 0, "unchanged": 2, "pruned": 0, "drifted": 1},
        objects=[f"ConfigMap/{SCRIPT}"],
        drifted=[f"Secret/{IMG}"],
        message=f"applied 3, pruned 0, 1 drifted: {SCRIPT}",
    )


def test_refs_messages_and_object_names_are_escaped() -> None:
    text = page(
        job(**{names.REF: f"refs/heads/{SCRIPT}", names.PULL_REQUEST: IMG}),
        hostile_summary(),
        f"step fetch</pre>{SCRIPT}\n",
    )
    assert "<script" not in text
    assert "<img" not in text
    assert "</pre><script" not in text
    assert text.count("</pre>") == 1
    assert html.escape(f"refs/heads/{SCRIPT}") in text
    assert html.escape(IMG) in text
    assert html.escape(f"ConfigMap/{SCRIPT}") in text
    assert html.escape(f"Secret/{IMG}") in text
    assert html.escape(f"step fetch</pre>{SCRIPT}") in text


def test_the_page_shows_the_sha_result_counts_and_log_tail() -> None:
    summary = RunSummary(
        result="success",
        sha=SHA,
        counts={"created": 3, "configured": 0, "unchanged": 0, "pruned": 0, "drifted": 0},
        objects=["ConfigMap/web", "Service/web", "Deployment/web"],
        message="applied 3, pruned 0, 0 drifted",
    )
    text = page(job(**{names.REF: "refs/heads/main"}), summary, "fetched 6113728\napplied 3\n")
    assert SHA in text
    assert "applied 3, pruned 0, 0 drifted" in text
    assert "created 3" in text
    assert "fetched 6113728\napplied 3" in text
    assert "refs/heads/main" in text
    assert "finished" in text


def test_a_run_without_summary_or_log_says_so() -> None:
    running = job()
    running["status"] = {"active": 1}
    text = page(running, None, "")
    assert "No summary yet" in text
    assert "(empty)" in text
    assert "running" in text


# The route: who may open the page, and the headers it carries.

KEY = "4f1c0c2a9e6b4d7f8a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f"
NEW_KEY = "c0ffee" * 10
NAME = "hooksync-shop-apply-6113728"


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> Starlette:
    """The run page with two link keys, the new one first; the Job is read as listed here."""
    inputs = RunInputs(job(**{names.REF: "refs/heads/main"}), None, "fetched\n")
    monkeypatch.setattr(runpage, "gather", lambda jobs, name: inputs if name == NAME else None)
    config = parse_config(
        "jobImage: img\npublicURL: https://h\n"
        "targets:\n- {name: shop, provider: github, repo: acme/shop, branch: main,"
        " namespace: shop, serviceAccount: sa}\n"
    )
    secrets = ReceiverSecrets(link_keys=(NEW_KEY, KEY))
    state = ReceiverState(config=config, secrets=secrets, api=ApiClient(), namespace="hooksync")
    return Starlette(routes=[run_page_route(state)])


def get(app: Starlette, path: str, signature: str | None) -> httpx.Response:
    async def fetch() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://runs") as client:
            params = {"sig": signature} if signature is not None else {}
            return await client.get(path, params=params)

    return asyncio.run(fetch())


def test_links_signed_with_the_old_or_the_new_key_open_the_page(app: Starlette) -> None:
    for key in (KEY, NEW_KEY):
        answer = get(app, f"/runs/{NAME}", sign_run(key, NAME))
        assert answer.status_code == 200, key
        assert SHA in answer.text and "fetched" in answer.text


def test_other_keys_and_other_runs_are_forbidden(app: Starlette) -> None:
    assert get(app, f"/runs/{NAME}", sign_run("d" * 64, NAME)).status_code == 403
    assert (
        get(app, f"/runs/{NAME}", sign_run(KEY, "hooksync-shop-apply-ec26c3e")).status_code == 403
    )
    assert get(app, f"/runs/{NAME}", None).status_code == 403
    gone = "hooksync-shop-apply-ec26c3e"
    assert get(app, f"/runs/{gone}", sign_run(NEW_KEY, gone)).status_code == 404


def test_the_run_page_sends_the_same_security_headers_as_the_status_page(app: Starlette) -> None:
    answers = [
        get(app, f"/runs/{NAME}", sign_run(NEW_KEY, NAME)),
        get(app, f"/runs/{NAME}", "forged"),
    ]
    assert [a.status_code for a in answers] == [200, 403]
    for answer in answers:
        for header, value in SECURITY_HEADERS.items():
            assert answer.headers[header] == value
    assert answers[0].headers["content-type"].startswith("text/html")
