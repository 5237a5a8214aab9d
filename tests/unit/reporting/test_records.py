"""Each target's last result, as recorded on its Lease: what a run leaves, and what wins."""

from __future__ import annotations

import datetime
from typing import Any

from hooksync import names
from hooksync.summary import RunSummary
from receiver.jobview import finished_time
from receiver.reporting.records import (
    TargetRecord,
    merge,
    newest,
    record_from_run,
)

SHA = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
OLD_SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
NOW = datetime.datetime(2025, 3, 10, 12, 0, tzinfo=datetime.UTC)


def job(name: str, mode: str = "apply", *, ended: str = "2025-03-10T11:00:00Z",
        failed: bool = False) -> dict[str, Any]:  # fmt: skip
    condition = {"type": "Failed" if failed else "Complete", "status": "True",
                 "lastTransitionTime": ended}  # fmt: skip
    status: dict[str, Any] = {"conditions": [condition], "startTime": "2025-03-10T10:59:00Z"}
    if not failed:
        status["completionTime"] = ended
    return {
        "metadata": {"name": name, "labels": {names.TARGET: "shop", names.MODE: mode}},
        "status": status,
    }


def summary(result: str = "success", sha: str | None = SHA, drifted: int = 0) -> RunSummary:
    counts = {"created": 1, "configured": 0, "unchanged": 2, "pruned": 0, "drifted": drifted}
    return RunSummary(result=result, sha=sha, counts=counts, message="applied 1, pruned 0")


def test_a_successful_apply_records_its_sha_result_time_and_drift():
    record = record_from_run(job("j1"), "success", summary(drifted=2), NOW)
    assert record == TargetRecord(
        target="shop", result="success", finished="2025-03-10T11:00:00Z", job="j1",
        mode="apply", message="applied 1, pruned 0", drifted=2, applied_sha=SHA,
        applied_at="2025-03-10T11:00:00Z",
    )  # fmt: skip


def test_previews_leave_no_record():
    assert record_from_run(job("p1", "preview"), "success", summary(), NOW) is None


def test_a_failed_job_ends_at_its_failed_condition():
    failed = job("j2", ended="2025-03-10T11:30:00Z", failed=True)
    assert finished_time(failed) == "2025-03-10T11:30:00Z"
    record = record_from_run(failed, "failure", None, NOW)
    assert record is not None
    assert (record.result, record.applied_sha, record.drifted) == ("failure", None, None)


def test_annotations_round_trip():
    record = record_from_run(job("j1"), "no-op", summary("no-op"), NOW)
    assert record is not None
    assert TargetRecord.from_annotations("shop", record.to_annotations()) == record


def test_damaged_annotations_read_as_no_record():
    assert TargetRecord.from_annotations("shop", {}) is None
    annotations = {"hooksync.dev/last-result": "success", "hooksync.dev/last-finished": "soon"}
    assert TargetRecord.from_annotations("shop", annotations) is None
    good = record_from_run(job("j1"), "success", summary(), NOW)
    assert good is not None
    tampered = {**good.to_annotations(), "hooksync.dev/applied-sha": "<b>not a sha</b>"}
    reread = TargetRecord.from_annotations("shop", tampered)
    assert reread is not None and reread.applied_sha is None


def test_a_failure_keeps_what_was_last_applied():
    applied = record_from_run(job("j1"), "success", summary(sha=OLD_SHA, drifted=1), NOW)
    failed = record_from_run(job("j2", ended="2025-03-10T11:30:00Z", failed=True), "failure",
                             None, NOW)  # fmt: skip
    assert failed is not None
    merged = merge(applied, failed)
    assert merged is not None
    assert merged.result == "failure" and merged.job == "j2"
    assert merged.applied_sha == OLD_SHA and merged.applied_at == "2025-03-10T11:00:00Z"
    assert merged.drifted == 1


def test_an_older_run_never_overwrites_a_newer_record():
    newer = record_from_run(job("j2", ended="2025-03-10T11:30:00Z"), "success", summary(), NOW)
    older = record_from_run(job("j1"), "success", summary(sha=OLD_SHA), NOW)
    assert older is not None and newer is not None
    assert merge(newer, older) is None
    assert newest([newer, older, None]) == newer
    assert newest([older, newer]) == newer
