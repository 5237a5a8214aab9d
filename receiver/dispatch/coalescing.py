"""Deciding what a push does to a target's apply Jobs: create, wait, fold in, or nothing.

Pure: it reads the target's current apply Jobs (as the API server returned them) and returns a
decision. The API server is the lock and the queue (design rule 2): the decision only ever
creates Jobs with deterministic names, so racing replicas end up with one object.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hooksync import names
from hooksync.config import Config
from hooksync.times import parse_rfc3339, rfc3339
from receiver.jobview import (
    annotation_list,
    annotations_of,
    created_at,
    is_finished,
    is_suspended,
    job_shas,
    name_of,
    waits_for,
)

# SHAs one waiting Job stands for (with their delivery ids, under 100 KiB of annotations, well
# within the API server's 256 KiB); the next push waits behind it in a Job of its own.
MAX_RECORDED = 500


@dataclass(frozen=True)
class Create:
    """No apply Job is active: create the Job for this SHA."""


@dataclass(frozen=True)
class CreateWaiting:
    """An apply Job runs and none waits behind it, or the last waiting Job is full: create the
    suspended Job that waits behind `active_job`."""

    active_job: str


@dataclass(frozen=True)
class FoldInto:
    """A Job already waits: record this SHA (and delivery) on it instead of a new Job."""

    job: Mapping[str, Any]


@dataclass(frozen=True)
class Duplicate:
    """This delivery or SHA is already on an unfinished Job (or a recent one): nothing to do."""

    job_name: str
    reason: str


Decision = Create | CreateWaiting | FoldInto | Duplicate


@dataclass(frozen=True)
class BurstWindow:
    """How long a waiting Job holds on while pushes keep arriving.

    It runs once `quiet_seconds` have passed since the last push recorded on it, and at the
    latest `max_wait_seconds` after it was created, so a burst that outlasts one converge still
    costs one more Job rather than one per converge, and a push stream that never pauses still
    deploys.
    """

    quiet_seconds: float = 0.0
    max_wait_seconds: float = 0.0

    @classmethod
    def of(cls, config: Config) -> BurstWindow:
        """The window the configuration sets (burstQuietSeconds, burstMaxWaitSeconds)."""
        return cls(config.burst_quiet_seconds, config.burst_max_wait_seconds)

    def is_over(self, job: Mapping[str, Any], now: float) -> bool:
        last_push = parse_rfc3339(annotations_of(job).get(names.LAST_PUSH))
        if last_push is None or now - last_push >= self.quiet_seconds:
            return True
        created = parse_rfc3339((job.get("metadata") or {}).get("creationTimestamp"))
        return created is not None and now - created >= self.max_wait_seconds


def to_release(
    jobs: Sequence[Mapping[str, Any]], now: float, window: BurstWindow = BurstWindow()
) -> list[Mapping[str, Any]]:
    """Waiting Jobs whose predecessor has ended (or is gone) and whose burst is over."""
    unfinished = {name_of(j) for j in jobs if not is_finished(j)}
    return [
        job
        for job in jobs
        if is_suspended(job)
        and not is_finished(job)
        and waits_for(job) not in unfinished
        and window.is_over(job, now)
    ]


def decide_push(jobs: Sequence[Mapping[str, Any]], sha: str, delivery: str | None) -> Decision:
    """What a push of `sha` should do, given the target's apply Jobs (after releases).

    A push folds into the last waiting Job until that Job stands for MAX_RECORDED SHAs; the
    next one waits behind it in a Job of its own, so no SHA is ever dropped from a Job and
    every pending status ends with the run that deployed it (design rule 4).
    """
    for job in jobs:
        if delivery and delivery in annotation_list(job, names.DELIVERY):
            return Duplicate(name_of(job), f"delivery {delivery} already dispatched")
    for job in jobs:
        if not is_finished(job) and sha in job_shas(job):
            return Duplicate(name_of(job), f"{sha[:7]} is already on {name_of(job)}")
    unfinished = sorted((j for j in jobs if not is_finished(j)), key=created_at)
    waited_for = {waits_for(j) for j in unfinished}
    # The end of the queue: a waiting Job nothing waits behind (creation times only have
    # seconds, so they cannot tell a chain's order).
    last = [j for j in unfinished if is_suspended(j) and name_of(j) not in waited_for]
    if last:
        if len(job_shas(last[-1])) >= MAX_RECORDED:
            return CreateWaiting(name_of(last[-1]))
        return FoldInto(last[-1])
    running = [j for j in unfinished if not is_suspended(j)]
    if not running:
        return Create()
    return CreateWaiting(name_of(running[-1]))


def folded_annotations(
    job: Mapping[str, Any], sha: str, delivery: str | None, now: float
) -> dict[str, str]:
    """The annotations that record `sha` and `delivery` (pushed at `now`) on a waiting Job.

    Nothing recorded is ever dropped: `decide_push` folds into a Job only while it has room.
    """
    shas = annotation_list(job, names.COALESCED_SHAS)
    if sha not in job_shas(job):
        shas.append(sha)
    deliveries = annotation_list(job, names.DELIVERY)
    if delivery and delivery not in deliveries:
        deliveries.append(delivery)
    return {
        names.COALESCED_SHAS: ",".join(shas),
        names.DELIVERY: ",".join(deliveries),
        names.LAST_PUSH: rfc3339(now, milliseconds=True),
    }
