"""The fleet's newest runs, kept on one Lease so the status page need not list every Job.

Finished Jobs stay for jobTTLSeconds: a thousand targets resyncing every 15 minutes keep some
four thousand, megabytes for the API server to send on every view of the page. So when the
leader has reported a run, it adds one line for it to the Lease `hooksync-recent-runs` (never
held), which keeps the newest KEPT. The page shows those with the Jobs not reported yet (the
running, the waiting and the just ended), which every replica keeps in step anyway.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from hooksync import names
from hooksync.summary import RunSummary
from receiver import jobview
from receiver.jobapi import API_TIMEOUT, Object
from receiver.jobview import JOB_STATES
from receiver.reporting import annotated

KEPT = 20
MESSAGE_LIMIT = 200
RUNS = "hooksync.dev/recent-runs"  # the annotation: a JSON list, newest first


@dataclass(frozen=True)
class Run:
    """One run as the status page lists it."""

    job: str
    target: str
    mode: str
    state: str  # a jobview.JOB_STATES word
    result: str  # the finished run's result; empty while unknown
    commit: str  # the first SHA the Job stands for; empty for a resync
    more_commits: int  # how many more it stands for (pushes folded into it)
    created: str  # RFC 3339, the Job's creationTimestamp
    message: str

    @classmethod
    def from_json(cls, value: Any) -> Run | None:
        """The run one list item describes; None when it is not one (the Lease is data)."""
        if not isinstance(value, dict):
            return None
        text = ("job", "target", "mode", "state", "result", "commit", "created", "message")
        if not all(isinstance(value.get(key), str) for key in text):
            return None
        more = value.get("more_commits")
        if not isinstance(more, int) or isinstance(more, bool) or more < 0:
            return None
        if not value["job"] or value["state"] not in JOB_STATES:
            return None
        return cls(**{key: value[key] for key in (*text, "more_commits")})


def run_of(job: jobview.Job, summary: RunSummary | None) -> Run:
    """Pure: the run `job` is, as far as it has gone (`summary` the one saved on it, if any);
    its result once it has ended and the result is known (its summary read, or the Job
    failed without one)."""
    failure = jobview.failure_reason(job)
    result = ""
    if jobview.is_finished(job) and (summary is not None or failure is not None):
        result = jobview.run_result(job, summary)
    shas = jobview.job_shas(job)
    message = summary.message if summary is not None else (failure or "")
    return Run(
        job=jobview.name_of(job),
        target=jobview.label(job, names.TARGET) or "",
        mode=jobview.label(job, names.MODE) or "",
        state=jobview.state(job),
        result=result,
        commit=shas[0] if shas else "",
        more_commits=max(0, len(shas) - 1),
        created=jobview.created_at(job),
        message=message[:MESSAGE_LIMIT],
    )


def newest(runs: Iterable[Run], limit: int = KEPT) -> list[Run]:
    """Pure: the newest `limit` of `runs`, newest first; of two for the same Job, the first
    given (callers put what they saw last first)."""
    seen: dict[str, Run] = {}
    for run in runs:
        seen.setdefault(run.job, run)
    ordered = sorted(seen.values(), key=lambda run: (run.created, run.job), reverse=True)
    return ordered[:limit]


def parse(annotations: Mapping[str, str]) -> list[Run]:
    """Pure: the runs the Lease's annotation lists; items that are not runs are skipped, and
    an annotation that is not a JSON list reads as none."""
    try:
        items = json.loads(annotations.get(RUNS) or "[]")
    except ValueError:
        return []
    if not isinstance(items, list):
        return []
    return [run for run in map(Run.from_json, items) if run is not None]


def with_run(annotations: Mapping[str, str], run: Run) -> dict[str, str] | None:
    """Pure: the annotation with `run` in it, the oldest dropped past KEPT; None when it
    already holds `run` as it is, or `run` is older than all it keeps."""
    kept = parse(annotations)
    if run in kept:
        return None
    runs = newest([run, *kept])
    if run not in runs:
        return None
    return {RUNS: json.dumps([asdict(r) for r in runs], separators=(",", ":"))}


def recent(jobs: Sequence[jobview.Job], kept: Sequence[Run], limit: int = KEPT) -> list[Run]:
    """Pure: the newest `limit` runs of the Jobs listed and those kept, the listed Job's
    view winning (it is the newer). Only the newest `limit` Jobs are read as runs (summaries
    parsed): a Job past them has as many newer, and so has its kept run."""
    order = heapq.nlargest(limit, jobs, key=lambda j: (jobview.created_at(j), jobview.name_of(j)))
    listed = [run_of(job, jobview.summary(job)) for job in order]
    return newest([*listed, *kept], limit)


# -- I/O -------------------------------------------------------------------------------------


def add(
    api: client.ApiClient, namespace: str, run: Run, known: Mapping[str, Any] | None = None
) -> Object | None:
    """Add `run` to the fleet's recent runs; the Lease written, or None when unchanged
    (`known`, the Lease as last seen, saves a read)."""
    labels = {names.MANAGED_BY: names.MANAGED_BY_VALUE}
    return annotated.rewrite(
        api,
        namespace,
        names.RECENT_RUNS_LEASE_NAME,
        labels,
        lambda now: with_run(now, run),
        known,
    )


def load(api: client.ApiClient, namespace: str) -> list[Run]:
    """The runs the Lease keeps, newest first (none before the first is recorded)."""
    try:
        answer = client.CoordinationV1Api(api).read_namespaced_lease(
            names.RECENT_RUNS_LEASE_NAME,
            namespace,
            _preload_content=False,
            _request_timeout=API_TIMEOUT,
        )
    except ApiException as exc:
        if exc.status == 404:
            return []
        raise
    return from_leases([json.loads(answer.data)])  # type: ignore[attr-defined]


def from_leases(leases: Iterable[Mapping[str, Any]]) -> list[Run]:
    """Pure: the runs the recent runs' Lease among `leases` keeps, newest first."""
    for lease in leases:
        metadata = lease.get("metadata") or {}
        if metadata.get("name") == names.RECENT_RUNS_LEASE_NAME:
            return newest(parse(metadata.get("annotations") or {}))
    return []
