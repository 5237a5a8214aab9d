"""The run page shows payload- and Git-derived strings as text, never as markup."""

from __future__ import annotations

import html
from typing import Any

from hooksync import names
from hooksync.summary import RunSummary
from receiver.pages.run import page

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
