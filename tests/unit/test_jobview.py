"""A Job read one way: its state has one word, and both pages show that word."""

from __future__ import annotations

import datetime
import re
from typing import Any

import pytest

from hooksync import names
from hooksync.config import parse_config
from hooksync.summary import RunSummary
from receiver import jobview
from receiver.pages import run as runpage
from receiver.pages import status as statuspage

SHA = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
OTHER_SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
NOW = datetime.datetime(2025, 3, 10, 12, 0, tzinfo=datetime.UTC)
CONFIG = parse_config(
    "jobImage: img\npublicURL: https://h\n"
    "targets:\n- {name: shop, provider: github, repo: acme/shop, branch: main,"
    " namespace: shop, serviceAccount: sa}\n"
)
FAILED = {
    "type": "Failed",
    "status": "True",
    "reason": "BackoffLimitExceeded",
    "message": "Job has reached the specified backoff limit",
    "lastTransitionTime": "2025-03-10T11:58:00Z",
}


def job(
    *,
    suspend: bool = False,
    conditions: list[dict[str, str]] | None = None,
    status: dict[str, Any] | None = None,
    summary: RunSummary | None = None,
) -> dict[str, Any]:
    annotations = {names.SHA: SHA, names.COALESCED_SHAS: OTHER_SHA, names.WAITS_FOR: "before"}
    if summary is not None:
        annotations[names.SUMMARY] = summary.to_json()
    return {
        "metadata": {
            "name": "hooksync-shop-apply-6113728",
            "creationTimestamp": "2025-03-10T11:50:00Z",
            "labels": {names.TARGET: "shop", names.MODE: "apply"},
            "annotations": annotations,
        },
        "spec": {"suspend": suspend},
        "status": {**(status or {}), "conditions": conditions or []},
    }


SUCCESS = RunSummary(result="success", sha=SHA, message="applied 2")
JOBS = {
    "waiting": job(suspend=True),
    "running": job(status={"active": 1, "startTime": "2025-03-10T11:51:00Z"}),
    "succeeded": job(
        conditions=[{"type": "Complete", "status": "True"}],
        status={"succeeded": 1, "completionTime": "2025-03-10T11:55:00Z"},
        summary=SUCCESS,
    ),
    # A pod failed before another succeeded: the Job still succeeded.
    "succeeded after a retry": job(
        conditions=[{"type": "Complete", "status": "True"}],
        status={"failed": 1, "succeeded": 1, "completionTime": "2025-03-10T11:55:00Z"},
        summary=SUCCESS,
    ),
    "failed": job(conditions=[FAILED], status={"failed": 3}),
    # The Job failed (its deadline passed) although its pod had written a success.
    "failed with a summary": job(conditions=[FAILED], summary=SUCCESS),
}
EXPECTED = {
    "waiting": "waiting",
    "running": "running",
    "succeeded": "succeeded",
    "succeeded after a retry": "succeeded",
    "failed": "failed",
    "failed with a summary": "failed",
}
STATE_WORD = re.compile(r"class='state ([a-z-]+)'>([a-z-]+)<")


def shown_states(page: str) -> set[str]:
    words = set()
    for css, word in STATE_WORD.findall(page):
        assert css == word
        words.add(word)
    return words


@pytest.mark.parametrize("case", sorted(JOBS))
def test_a_job_has_one_state_word(case: str) -> None:
    assert jobview.state(JOBS[case]) == EXPECTED[case]
    assert jobview.state(JOBS[case]) in jobview.JOB_STATES


@pytest.mark.parametrize("case", sorted(JOBS))
def test_both_pages_show_the_same_state_word_for_the_same_job(case: str) -> None:
    the_job = JOBS[case]
    inputs = statuspage.StatusInputs(records={}, jobs=[the_job], cronjobs=[])
    status_page = statuspage.render(CONFIG, inputs, NOW, lambda name: None)
    run_page = runpage.page(the_job, jobview.summary(the_job), "")
    assert shown_states(status_page) == {EXPECTED[case]}
    assert shown_states(run_page) == {EXPECTED[case]}


@pytest.mark.parametrize(
    ("case", "result"),
    [("succeeded", "success"), ("failed", "failure"), ("failed with a summary", "failure")],
)
def test_a_finished_run_has_one_result_on_both_pages(case: str, result: str) -> None:
    the_job = JOBS[case]
    summary = jobview.summary(the_job)
    assert jobview.run_result(the_job, summary) == result
    inputs = statuspage.StatusInputs(records={}, jobs=[the_job], cronjobs=[])
    status_page = statuspage.render(CONFIG, inputs, NOW, lambda name: None)
    assert f"<span class='result {result}'>{result}</span>" in status_page
    assert f"<span class='result {result}'>{result}</span>" in runpage.page(the_job, summary, "")


def test_a_run_without_summary_is_a_failure_only_once_the_job_failed() -> None:
    assert jobview.run_result(JOBS["failed"], None) == "failure"
    assert jobview.run_result(JOBS["succeeded"], None) == "failure"
    assert jobview.run_result(JOBS["succeeded"], SUCCESS) == "success"
    lease_held = RunSummary(result="lease-held")
    assert jobview.run_result(JOBS["succeeded"], lease_held) == "lease-held"


def test_shas_and_waits_for_read_the_annotations() -> None:
    waiting = JOBS["waiting"]
    assert jobview.job_shas(waiting) == [SHA, OTHER_SHA]
    assert jobview.waits_for(waiting) == "before"
    assert jobview.annotation_list(waiting, names.DELIVERY) == []
    assert jobview.job_shas({}) == [] and jobview.name_of({}) == ""


def test_a_failed_job_ends_at_its_failed_condition() -> None:
    assert jobview.finished_time(JOBS["failed"]) == "2025-03-10T11:58:00Z"
    assert jobview.finished_time(JOBS["succeeded"]) == "2025-03-10T11:55:00Z"
    assert jobview.finished_time(JOBS["running"]) is None
    assert jobview.failure_reason(JOBS["failed"]) == (
        "BackoffLimitExceeded: Job has reached the specified backoff limit"
    )
    assert jobview.failure_reason(JOBS["succeeded"]) is None
