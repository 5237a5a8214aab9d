"""How the receiver reads one of its Jobs: names, labels, the SHAs it stands for, its state.

Pure: a Job as the API server returned it (a plain dict) in, values out. Every stage reads Jobs
through these, so a Job's state has one name everywhere (the status page, the run page and the
statuses all say the same word for the same Job).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

from hooksync import names
from hooksync.names import MODES, Mode
from hooksync.summary import RunSummary

Job = Mapping[str, Any]

JobState = Literal["waiting", "running", "succeeded", "failed"]
# waiting: suspended behind another apply Job; running: started and not ended yet;
# succeeded / failed: ended, by the Job's Complete or Failed condition.
JOB_STATES: Final[tuple[JobState, ...]] = ("waiting", "running", "succeeded", "failed")

_ENDED: Final = ("Complete", "Failed")


def name_of(job: Job) -> str:
    return str((job.get("metadata") or {}).get("name", ""))


def labels_of(job: Job) -> Mapping[str, str]:
    return (job.get("metadata") or {}).get("labels") or {}


def label(job: Job, key: str) -> str | None:
    """The label's value, or None when it is missing or empty."""
    value = labels_of(job).get(key)
    return str(value) if value else None


def mode_of(job: Job) -> Mode:
    """The Job's mode label; a Job without a known one counts as an apply."""
    value = labels_of(job).get(names.MODE)
    for mode in MODES:
        if value == mode:
            return mode
    return "apply"


def annotations_of(job: Job) -> Mapping[str, str]:
    return (job.get("metadata") or {}).get("annotations") or {}


def annotation_list(job: Job, key: str) -> list[str]:
    """A comma-separated annotation as a list (empty when it is missing)."""
    value = annotations_of(job).get(key) or ""
    return [item for item in value.split(",") if item]


def created_at(job: Job) -> str:
    """The Job's creationTimestamp (RFC 3339), empty when unknown; sorts oldest first."""
    return str((job.get("metadata") or {}).get("creationTimestamp") or "")


def job_shas(job: Job) -> list[str]:
    """Every SHA a Job stands for: its own and those folded into it."""
    own = annotations_of(job).get(names.SHA)
    return ([own] if own else []) + annotation_list(job, names.COALESCED_SHAS)


def waits_for(job: Job) -> str | None:
    """The apply Job a waiting Job is queued behind, if it is one."""
    value = annotations_of(job).get(names.WAITS_FOR)
    return str(value) if value else None


def is_finished(job: Job) -> bool:
    """Whether the Job has ended, successfully or not (a true Complete or Failed condition)."""
    return _ended_condition(job) is not None


def is_reported(job: Job) -> bool:
    """Whether the leader has labelled the Job reported: every status of it is out."""
    return label(job, names.REPORTED) == names.REPORTED_COMPLETE


def is_suspended(job: Job) -> bool:
    return bool((job.get("spec") or {}).get("suspend"))


def failure_reason(job: Job) -> str | None:
    """The Failed condition's reason and message (deadline, backoff limit, pod failure policy);
    None unless the Job failed."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            reason = condition.get("reason") or "Failed"
            message = condition.get("message") or ""
            return f"{reason}: {message}" if message else str(reason)
    return None


def finished_time(job: Job) -> str | None:
    """When a Job ended: its completionTime, else when its Complete or Failed condition came.

    A failed Job has no completionTime, only the Failed condition's transition time.
    """
    status = job.get("status") or {}
    if status.get("completionTime"):
        return str(status["completionTime"])
    condition = _ended_condition(job)
    if condition is None:
        return None
    value = condition.get("lastTransitionTime")
    return str(value) if value else None


def state(job: Job) -> JobState:
    """The Job's one state word (see JOB_STATES)."""
    if is_finished(job):
        return "failed" if failure_reason(job) is not None else "succeeded"
    return "waiting" if is_suspended(job) else "running"


def summary(job: Job) -> RunSummary | None:
    """The run's summary, once the leader has saved it on the Job."""
    text = annotations_of(job).get(names.SUMMARY)
    return RunSummary.from_json(text) if text else None


def run_result(job: Job, summary: RunSummary | None) -> str:
    """A finished run's result: failure when the Job failed or left no summary, else what its
    summary says (success, no-op, failure, lease-held)."""
    if failure_reason(job) is not None or summary is None:
        return "failure"
    return summary.result


def _ended_condition(job: Job) -> Mapping[str, Any] | None:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") in _ENDED and condition.get("status") == "True":
            return dict(condition)
    return None
