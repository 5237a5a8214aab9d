"""Reporting from a pod that exited 0, before the Job controller marks the Job Complete."""

from __future__ import annotations

import threading
from typing import Any

from kubernetes.client import ApiClient

from hooksync import names
from receiver import jobview
from receiver.reporting.events import JobEvents, completed_by, is_newer, succeeded_container
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


def versioned(name: str, version: str, **labels: str) -> dict[str, Any]:
    """A Job as the watch or a write returns it, at `version`."""
    return {"kind": "Job", "metadata": {"name": name, "resourceVersion": version, "labels": labels}}


def following() -> JobEvents:
    """The leader's view, as the watch's list and events build it (no API server needed: the
    watch threads are not started)."""
    events = JobEvents(ApiClient(), "hooksync", threading.Event(), lambda: True, threading.Event())
    events._keep(versioned("a", "10"))
    events._synced = True
    return events


def test_the_kept_jobs_are_unknown_until_the_watch_has_listed_them() -> None:
    events = JobEvents(ApiClient(), "hooksync", threading.Event(), lambda: True, threading.Event())
    assert events.unreported_jobs() is None  # the reporter lists instead
    assert [jobview.name_of(j) for j in following().unreported_jobs() or []] == ["a"]


def test_an_own_write_is_not_undone_by_an_older_event() -> None:
    events = following()
    events.remember(versioned("a", "12"))
    events._seen("MODIFIED", versioned("a", "11"))  # sent before the write, delivered after
    assert [j["metadata"]["resourceVersion"] for j in events.unreported_jobs() or []] == ["12"]
    events._seen("MODIFIED", versioned("a", "13"))
    assert [j["metadata"]["resourceVersion"] for j in events.unreported_jobs() or []] == ["13"]


def test_a_job_reported_by_this_replica_is_not_shown_again_by_older_events() -> None:
    events = following()
    events.remember(versioned("a", "12", **{names.REPORTED: names.REPORTED_COMPLETE}))
    assert events.unreported_jobs() == []
    events._seen("MODIFIED", versioned("a", "11"))
    assert events.unreported_jobs() == []
    # The API server then sends its leaving the selector as a deletion: forgotten.
    events._seen("DELETED", versioned("a", "12", **{names.REPORTED: names.REPORTED_COMPLETE}))
    assert events._jobs == {}
    # A reported Job the watch no longer shows is not kept at all.
    events.remember(versioned("a", "12", **{names.REPORTED: names.REPORTED_COMPLETE}))
    assert events._jobs == {}


def test_resource_versions_that_are_not_numbers_take_the_last_seen() -> None:
    assert is_newer(versioned("a", "9"), versioned("a", "10")) is False
    assert is_newer(versioned("a", "10"), versioned("a", "9")) is True
    assert is_newer(versioned("a", "x1"), versioned("a", "10")) is True
