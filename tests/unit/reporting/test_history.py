"""The fleet's recent runs, kept on one Lease: a Job as a run, what is kept, and what is read."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from typing import Any

import pytest

from hooksync import names
from hooksync.summary import RunSummary
from receiver.reporting.history import (
    KEPT,
    MESSAGE_LIMIT,
    RUNS,
    Run,
    newest,
    parse,
    recent,
    run_of,
    with_run,
)

SHA = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
OTHER_SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"


def job(name: str, created: str, *, state: str = "succeeded", **annotations: str) -> dict[str, Any]:
    status: dict[str, Any] = {}
    spec: dict[str, Any] = {}
    if state == "succeeded":
        status["conditions"] = [{"type": "Complete", "status": "True"}]
    elif state == "failed":
        status["conditions"] = [
            {"type": "Failed", "status": "True", "reason": "DeadlineExceeded",
             "message": "Job was active longer than specified deadline"}
        ]  # fmt: skip
    elif state == "waiting":
        spec["suspend"] = True
    return {
        "metadata": {
            "name": name,
            "creationTimestamp": created,
            "labels": {names.TARGET: "shop", names.MODE: "apply"},
            "annotations": {names.SHA: SHA, **annotations},
        },
        "spec": spec,
        "status": status,
    }


def run(name: str, created: str, **changes: Any) -> Run:
    values: dict[str, Any] = {
        "job": name, "target": "shop", "mode": "apply", "state": "succeeded",
        "result": "success", "commit": SHA, "more_commits": 0, "created": created,
        "message": "applied 1",
    }  # fmt: skip
    values.update(changes)
    return Run(**values)


def annotation(runs: list[Run]) -> dict[str, str]:
    return {RUNS: json.dumps([asdict(r) for r in runs])}


def test_a_finished_job_is_a_run_with_its_result_message_and_commits():
    summary = RunSummary(result="no-op", sha=SHA, message="nothing to change")
    ended = job("j1", "2025-03-10T11:00:00Z", **{names.COALESCED_SHAS: f"{OTHER_SHA},{OTHER_SHA}"})
    assert run_of(ended, summary) == Run(
        job="j1", target="shop", mode="apply", state="succeeded", result="no-op", commit=SHA,
        more_commits=2, created="2025-03-10T11:00:00Z", message="nothing to change",
    )  # fmt: skip


def test_a_job_without_a_result_yet_has_none():
    running = run_of(job("j1", "t", state="running"), None)
    waiting = run_of(job("j2", "t", state="waiting"), None)
    ended_unread = run_of(job("j3", "t"), None)  # ended, summary not read yet
    assert (running.state, running.result) == ("running", "")
    assert (waiting.state, waiting.result) == ("waiting", "")
    assert (ended_unread.state, ended_unread.result) == ("succeeded", "")


def test_a_failed_job_is_a_failure_with_its_reason_and_a_long_message_is_cut():
    failed = run_of(job("j1", "t", state="failed"), None)
    assert (failed.state, failed.result) == ("failed", "failure")
    assert "deadline" in failed.message
    long = run_of(job("j2", "t"), RunSummary(result="success", sha=SHA, message="x" * 5000))
    assert len(long.message) == MESSAGE_LIMIT


def test_newest_orders_by_creation_keeps_the_first_of_a_job_and_stops_at_the_limit():
    runs = [run(f"j{i:02d}", f"2025-03-10T11:{i:02d}:00Z") for i in range(30)]
    again = replace(runs[29], state="failed", result="failure")
    kept = newest([again, *runs[::-1]])
    assert [r.job for r in kept] == [f"j{i:02d}" for i in range(29, 29 - KEPT, -1)]
    assert kept[0] == again


def test_a_run_goes_in_once_and_the_oldest_drop_out():
    full = [run(f"j{i:02d}", f"2025-03-10T11:{i:02d}:00Z") for i in range(KEPT)]
    latest = run("j99", "2025-03-10T12:00:00Z")
    written = with_run(annotation(full), latest)
    assert written is not None
    now = parse(written)
    assert len(now) == KEPT and now[0] == latest and full[0] not in now
    assert with_run(written, latest) is None  # already there: nothing to write
    assert with_run(written, run("j-old", "2025-03-10T10:00:00Z")) is None  # older than all
    # A run seen again once ended (it was kept while its result was unknown) replaces itself.
    settled = replace(latest, result="failure", state="failed")
    rewritten = with_run(written, settled)
    assert rewritten is not None and parse(rewritten)[0] == settled
    assert [r.job for r in parse(rewritten)].count("j99") == 1
    first = with_run({}, latest)  # no Lease yet
    assert first is not None and parse(first) == [latest]


@pytest.mark.parametrize(
    "value",
    [
        "not json",
        '{"job": "j1"}',
        "[1, null, []]",
        '[{"job": "j1"}]',
        '[{"job": "", "target": "", "mode": "", "state": "succeeded", "result": "", '
        '"commit": "", "more_commits": 0, "created": "", "message": ""}]',
        '[{"job": "j1", "target": "", "mode": "", "state": "exploded", "result": "", '
        '"commit": "", "more_commits": 0, "created": "", "message": ""}]',
        '[{"job": "j1", "target": "", "mode": "", "state": "failed", "result": "", '
        '"commit": "", "more_commits": true, "created": "", "message": ""}]',
        '[{"job": "j1", "target": 5, "mode": "", "state": "failed", "result": "", '
        '"commit": "", "more_commits": 0, "created": "", "message": ""}]',
    ],
)
def test_an_annotation_that_holds_no_runs_reads_as_none(value: str):
    assert parse({RUNS: value}) == []


def test_a_damaged_item_is_skipped_and_the_rest_kept():
    good = run("j1", "2025-03-10T11:00:00Z")
    value = json.dumps([{"job": "bad"}, asdict(good), "x"])
    assert parse({RUNS: value}) == [good]


def test_recent_merges_listed_jobs_with_kept_runs_the_listed_view_winning():
    kept = [run("j1", "2025-03-10T11:00:00Z"), run("j0", "2025-03-10T10:00:00Z")]
    listed = [job("j2", "2025-03-10T12:00:00Z", state="running"),
              job("j1", "2025-03-10T11:00:00Z", state="failed")]  # fmt: skip
    shown = recent(listed, kept)
    assert [(r.job, r.state) for r in shown] == [
        ("j2", "running"), ("j1", "failed"), ("j0", "succeeded"),
    ]  # fmt: skip
