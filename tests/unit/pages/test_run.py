"""The run page shows payload- and Git-derived strings as text, never as markup."""

from __future__ import annotations

import asyncio
import html
import json
from typing import Any

import httpx
import pytest
from kubernetes.client import ApiClient
from starlette.applications import Starlette

from hooksync import names
from hooksync.config import parse_config
from hooksync.diffs import ObjectDiff, ObjectOutcome
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


def test_the_page_shows_the_sha_result_counts_and_log() -> None:
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
    assert "<span class='raw'>fetched 6113728\n</span><span class='raw'>applied 3\n</span>" in text
    assert "converged" in text
    assert "refs/heads/main" in text
    assert "finished" in text


def test_a_run_without_summary_or_log_says_so() -> None:
    running = job()
    running["status"] = {"active": 1}
    text = page(running, None, "")
    assert "No summary yet" in text
    assert "(empty)" in text
    assert "running" in text


def preview_job() -> dict[str, Any]:
    previewing = job(**{names.PULL_REQUEST: "7"})
    previewing["metadata"]["name"] = "hooksync-shop-preview-6113728"
    previewing["metadata"]["labels"][names.MODE] = "preview"
    return previewing


def log_line(message: str, **fields: Any) -> str:
    entry = {
        "time": "2026-12-01T21:14:03.123+00:00",
        "level": "info",
        "logger": "hooksync.job",
        "msg": message,
        "target": "shop",
        "mode": "preview",
        "job": "j",
    } | fields
    return json.dumps(entry)


PREVIEW_LOG = "\n".join(
    [
        "Cloning into 'repo'...",
        log_line("fetch", step="fetch", sha=SHA, ref=SHA),
        log_line(
            "would change Deployment/web",
            step="preview",
            **ObjectDiff(
                "Deployment/web",
                "change",
                "--- Deployment/web (live)\n+++ Deployment/web (after apply)\n@@ -1,3 +1,3 @@\n"
                " spec:\n-  replicas: 1\n+  replicas: 3\n",
            ).log_fields(),
        ),
        log_line(
            f"would create ConfigMap/{SCRIPT}",
            step="preview",
            **ObjectDiff(
                f"ConfigMap/{SCRIPT}", "create", f"+data:\n+  x: </pre>{SCRIPT}\n"
            ).log_fields(),
        ),
        log_line(
            "would unchanged Service/web",
            step="preview",
            **ObjectDiff("Service/web", "unchanged").log_fields(),
        ),
        log_line(
            "would prune Service/old",
            step="preview",
            **ObjectDiff("Service/old", "prune").log_fields(),
        ),
        log_line("preview", step="preview", created=1, changed=1, pruned=1),
        json.dumps(
            {"result": "success", "mode": "preview", "sha": SHA, "message": "would create 1"}
        ),
    ]
)


def test_a_preview_shows_each_diff_coloured_and_says_would() -> None:
    summary = RunSummary(
        result="success",
        sha=SHA,
        mode="preview",
        counts={"created": 1, "configured": 1, "unchanged": 1, "pruned": 1, "drifted": 0},
        objects=["Deployment/web", f"ConfigMap/{SCRIPT}", "-Service/old"],
        message="would create 1, change 1, prune 1: Deployment/web",
    )
    text = page(preview_job(), summary, PREVIEW_LOG)
    assert "converged" not in text
    assert f"checked <code>{SHA}</code> with a dry run" in text
    assert "would create 1, would change 1, unchanged 1, would prune 1" in text
    assert (
        "<span class='del'>-  replicas: 1\n</span><span class='add'>+  replicas: 3\n</span>" in text
    )
    assert "<span class='would change'>would change</span>" in text
    assert "<code>Service/old</code> <span class='would prune'>would prune</span>" in text
    assert "unchanged: <code>Service/web</code>" in text
    # Git-born text in a diff stays text.
    assert "<script" not in text and html.escape(f"+  x: </pre>{SCRIPT}") in text
    assert " style=" not in text


def test_the_log_reads_as_lines_of_time_step_message_and_fields() -> None:
    text = page(preview_job(), None, PREVIEW_LOG)
    assert "<span class='raw'>Cloning into &#x27;repo&#x27;...\n</span>" in text
    assert (
        "<span class='time'>21:14:03.123</span> <span class='step'>fetch</span> "
        "<span class='message'>fetch</span> "
        f"<span class='field'>sha=<b>{SHA}</b></span>"
    ) in text
    # A diff's line names the object and points at the diff instead of repeating it.
    assert "<span class='field'>would=<b>change</b></span>" in text
    assert "diff=<b>6 lines, shown above</b>" in text
    assert "<span class='step'>summary</span> <span class='message'>would create 1</span>" in text
    assert '{"time"' not in text and "&quot;time&quot;" not in text


def test_an_apply_shows_what_it_did_to_each_object() -> None:
    lines = [
        log_line(
            "configured Deployment/web",
            step="apply",
            **ObjectOutcome(
                "Deployment/web", "configured", True, "-  replicas: 3\n+  replicas: 1\n"
            ).log_fields(),
        ),
        log_line(
            "created ConfigMap/new",
            step="apply",
            **ObjectOutcome("ConfigMap/new", "created").log_fields(),
        ),
        log_line(
            "unchanged Service/web",
            step="apply",
            **ObjectOutcome("Service/web", "unchanged").log_fields(),
        ),
        log_line(
            "pruned Service/old",
            step="apply",
            **ObjectOutcome("Service/old", "pruned").log_fields(),
        ),
    ]
    text = page(job(), None, "\n".join(lines))
    assert "<span class='outcome configured drifted'>configured, drifted (reverted)</span>" in text
    assert "<span class='outcome created'>created</span>" in text
    assert "<span class='outcome unchanged'>unchanged</span>" in text
    assert "<span class='outcome pruned'>pruned</span>" in text
    assert "<span class='add'>+  replicas: 1\n</span>" in text
    assert "would" not in text.split("<body>")[1].split("<h3>Log</h3>")[0]


def test_a_log_longer_than_the_limit_keeps_its_start_and_its_last_lines() -> None:
    joined = runpage.joined_log("first\nsecond\npartial li", "last one\n")
    assert joined.splitlines() == [
        "first",
        "second",
        "… (log cut at 4 MiB; its last lines follow)",
        "last one",
    ]


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
