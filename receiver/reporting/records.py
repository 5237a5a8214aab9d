"""Each target's last result, kept on a Lease so it outlives the Jobs it came from.

Finished Jobs are deleted after jobTTLSeconds, and the receiver may write only Leases, Jobs and
CronJobs in its namespace. So when the leader has reported a run, it records the outcome as
annotations on the Lease `hooksync-record-<target>` (never held: a Lease is just the one
writable object with annotations). The status page reads these records.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from kubernetes import client

from hooksync import names
from hooksync.refs import is_valid_sha
from hooksync.summary import RunSummary
from hooksync.times import parse_rfc3339, rfc3339
from receiver import jobview
from receiver.jobapi import API_TIMEOUT, Object
from receiver.reporting import annotated

RECORD_LABEL = "hooksync.dev/record"  # value "true": selects record Leases in one list call
MESSAGE_LIMIT = 300

# Annotations on a record Lease.
RESULT = "hooksync.dev/last-result"
FINISHED = "hooksync.dev/last-finished"
JOB = "hooksync.dev/last-job"
MODE = "hooksync.dev/last-mode"
MESSAGE = "hooksync.dev/last-message"
DRIFTED = "hooksync.dev/drifted"
APPLIED_SHA = "hooksync.dev/applied-sha"
APPLIED_AT = "hooksync.dev/applied-at"

_OK = ("success", "no-op")


@dataclass(frozen=True)
class TargetRecord:
    """What a target's newest finished apply or resync did, and what it last applied."""

    target: str
    result: str  # success | no-op | failure | lease-held
    finished: str  # RFC 3339, UTC
    job: str
    mode: str
    message: str = ""
    drifted: int | None = None  # None: the run wrote no summary
    applied_sha: str | None = None
    applied_at: str | None = None

    def to_annotations(self) -> dict[str, str]:
        return {
            RESULT: self.result,
            FINISHED: self.finished,
            JOB: self.job,
            MODE: self.mode,
            MESSAGE: self.message[:MESSAGE_LIMIT],
            DRIFTED: "" if self.drifted is None else str(self.drifted),
            APPLIED_SHA: self.applied_sha or "",
            APPLIED_AT: self.applied_at or "",
        }

    @classmethod
    def from_annotations(cls, target: str, annotations: Mapping[str, str]) -> TargetRecord | None:
        """The record in a Lease's annotations; None when it holds none (or a damaged one)."""
        result, finished = annotations.get(RESULT), annotations.get(FINISHED)
        if not result or not finished or parse_rfc3339(finished) is None:
            return None
        drifted = annotations.get(DRIFTED) or ""
        sha = annotations.get(APPLIED_SHA) or None
        return cls(
            target=target,
            result=result,
            finished=finished,
            job=annotations.get(JOB, ""),
            mode=annotations.get(MODE, ""),
            message=annotations.get(MESSAGE, ""),
            drifted=int(drifted) if drifted.isdigit() else None,
            applied_sha=sha if sha and is_valid_sha(sha) else None,
            applied_at=annotations.get(APPLIED_AT) or None,
        )


def record_from_run(
    job: Mapping[str, Any], result: str, summary: RunSummary | None, now: datetime.datetime
) -> TargetRecord | None:
    """The record a finished apply or resync Job leaves; None for previews and unlabelled Jobs.

    `result` is the run's final result as the reporter decided it (a Job that failed counts as
    a failure whatever its summary says).
    """
    labels = jobview.labels_of(job)
    target, mode = labels.get(names.TARGET), labels.get(names.MODE, "apply")
    if not target or mode == "preview":
        return None
    finished = jobview.finished_time(job) or rfc3339(now.timestamp())
    sha = summary.sha if summary is not None else None
    applied = result in _OK and sha is not None and is_valid_sha(sha)
    return TargetRecord(
        target=str(target),
        result=result,
        finished=finished,
        job=jobview.name_of(job),
        mode=str(mode),
        message=(summary.message if summary else "")[:MESSAGE_LIMIT],
        drifted=summary.counts.get("drifted", 0) if summary is not None else None,
        applied_sha=sha if applied else None,
        applied_at=finished if applied else None,
    )


class UnreportedJob(NamedTuple):
    """What a Job the leader has not reported yet tells of its target: whether it is still
    running (or waiting), and the record it would leave, as far as that is known."""

    target: str
    running: bool
    record: TargetRecord | None


def unreported_job(job: Mapping[str, Any], now: datetime.datetime) -> UnreportedJob:
    """Pure: the Job as `UnreportedJob`. Its record is None while it runs, and once it has
    ended until its summary is read (unless it failed outright)."""
    target = jobview.label(job, names.TARGET) or ""
    if not jobview.is_finished(job):
        return UnreportedJob(target, True, None)
    summary = jobview.summary(job)
    if summary is None and jobview.failure_reason(job) is None:
        return UnreportedJob(target, False, None)
    record = record_from_run(job, jobview.run_result(job, summary), summary, now)
    return UnreportedJob(target, False, record)


def merge(old: TargetRecord | None, new: TargetRecord) -> TargetRecord | None:
    """The record to keep once `new` is in; None when `old` is newer and stays as it is.

    A failed run leaves the last applied SHA (and the drift seen by the last run that could
    tell) as they were: the namespace still runs what was last applied.
    """
    if old is None:
        return new
    if (parse_rfc3339(old.finished) or 0.0) > (parse_rfc3339(new.finished) or 0.0):
        return None
    return _after(old, new)


def _after(old: TargetRecord, new: TargetRecord) -> TargetRecord:
    """`new`, a later run than `old`, with what it does not know taken from `old`."""
    merged = new
    if merged.applied_sha is None:
        merged = replace(merged, applied_sha=old.applied_sha, applied_at=old.applied_at)
    if merged.drifted is None:
        merged = replace(merged, drifted=old.drifted)
    return merged


def newest(records: list[TargetRecord | None]) -> TargetRecord | None:
    """Fold `records` (in any order) into one, as `merge` would have recorded them."""
    present = [r for r in records if r is not None]
    if len(present) < 2:
        return present[0] if present else None
    present.sort(key=lambda r: parse_rfc3339(r.finished) or 0.0)  # stable: ties keep order
    kept = present[0]
    for record in present[1:]:
        kept = _after(kept, record)
    return kept


# -- I/O -------------------------------------------------------------------------------------


def save(
    api: client.ApiClient,
    namespace: str,
    record: TargetRecord,
    known: Mapping[str, Any] | None = None,
) -> Object | None:
    """Write `record` onto its target's record Lease unless a newer one is there.

    Returns the Lease written, or None when it was left as it was (`annotated.rewrite`:
    compare-and-swap, so an old leader finishing its pass cannot undo a newer record; `known`,
    the Lease as last seen, saves a read).
    """

    def merged_into(annotations: Mapping[str, str]) -> dict[str, str] | None:
        merged = merge(TargetRecord.from_annotations(record.target, annotations), record)
        return merged.to_annotations() if merged is not None else None

    labels = {
        names.MANAGED_BY: names.MANAGED_BY_VALUE,
        names.TARGET: record.target,
        RECORD_LABEL: "true",
    }
    name = names.record_name(record.target)
    return annotated.rewrite(api, namespace, name, labels, merged_into, known)


def load(api: client.ApiClient, namespace: str) -> dict[str, TargetRecord]:
    """Every target's record in `namespace`, by target name."""
    answer = client.CoordinationV1Api(api).list_namespaced_lease(
        namespace,
        label_selector=f"{RECORD_LABEL}=true",
        _preload_content=False,
        _request_timeout=API_TIMEOUT,
    )
    return from_leases(json.loads(answer.data)["items"])  # type: ignore[attr-defined]


def from_leases(leases: Iterable[Mapping[str, Any]]) -> dict[str, TargetRecord]:
    """Pure: the records among `leases` (as the API server returns them), by target name."""
    return by_target(record_of_lease(lease) for lease in leases)


def record_of_lease(lease: Mapping[str, Any]) -> TargetRecord | None:
    """Pure: the record a Lease holds; None for another Lease or a damaged record."""
    metadata = lease.get("metadata") or {}
    target = (metadata.get("labels") or {}).get(names.TARGET)
    if not target or metadata.get("name") != names.record_name(target):
        return None
    return TargetRecord.from_annotations(target, metadata.get("annotations") or {})


def by_target(found: Iterable[TargetRecord | None]) -> dict[str, TargetRecord]:
    """Pure: the records by their target's name."""
    return {record.target: record for record in found if record is not None}
