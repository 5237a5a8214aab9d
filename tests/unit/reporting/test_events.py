"""Reporting from a pod that exited 0, before the Job controller marks the Job Complete."""

from __future__ import annotations

from typing import Any

from hooksync import names
from receiver import jobview
from receiver.reporting.events import completed_by, succeeded_container, termination_message
from receiver.reporting.statuses import SUCCESS, final_reports
from tests.unit.reporting.test_statuses import COMPLETE, SHA_A, failed, job, summary

FINISHED_AT = "2026-12-01T21:00:07Z"


def pod(exit_code: int | None, message: str | None = None) -> dict[str, Any]:
    """A Job's pod as the watch delivers it; `exit_code` None while it runs."""
    state: dict[str, Any] = {"running": {"startedAt": "2026-12-01T21:00:05Z"}}
    if exit_code is not None:
        terminated: dict[str, Any] = {"exitCode": exit_code, "finishedAt": FINISHED_AT}
        if message is not None:
            terminated["message"] = message
        state = {"terminated": terminated}
    return {
        "kind": "Pod",
        "metadata": {"labels": {"batch.kubernetes.io/job-name": "hooksync-shop-apply-6113728"}},
        "status": {"containerStatuses": [{"name": "converge", "state": state}]},
    }


def test_a_pod_that_exited_0_ends_the_job_with_its_summary() -> None:
    ran = summary()
    ended = completed_by(job(), pod(0, ran.to_json()))
    assert ended is not None
    as_complete, message = ended
    assert jobview.is_finished(as_complete)
    assert jobview.failure_reason(as_complete) is None
    assert jobview.finished_time(as_complete) == FINISHED_AT
    assert message == ran.to_json()
    reports = final_reports(as_complete, ran, None)
    assert [(r.sha, r.state) for r in reports] == [(SHA_A, SUCCESS)]


def test_a_running_or_failed_pod_does_not_end_the_job() -> None:
    assert completed_by(job(), pod(None)) is None
    assert completed_by(job(), pod(1, "")) is None
    assert completed_by(job(), pod(2, summary(result="failure").to_json())) is None
    assert succeeded_container(pod(3)) is None


def test_a_job_that_has_ended_is_left_as_the_job_controller_wrote_it() -> None:
    assert completed_by(job(conditions=COMPLETE), pod(0, summary().to_json())) is None
    assert completed_by(job(conditions=failed("DeadlineExceeded")), pod(0, "")) is None


def test_the_job_keeps_its_annotations_and_labels() -> None:
    original = job(coalesced=["ec26c3e57ca3a959ca5aad62de7213c562f8c821"])
    ended = completed_by(original, pod(0))
    assert ended is not None
    as_complete, message = ended
    assert message is None
    assert as_complete["metadata"] == original["metadata"]
    assert jobview.annotations_of(as_complete)[names.SHA] == SHA_A
    assert original["status"]["conditions"] == []  # the Job read from the API is not changed


def test_the_termination_message_is_read_from_a_pod_that_exited_0_only() -> None:
    ran = summary().to_json()
    assert termination_message(pod(0, ran)) == ran
    assert termination_message(pod(1, ran)) is None
    assert termination_message(pod(None)) is None
    assert termination_message(pod(0)) is None
