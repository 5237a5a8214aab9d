"""Dispatch: turn a Job request into a Job that exists in the API server, or say why not.

202 means persisted (design rule 3): every path here returns only after the API server has
the Job (or the annotation that folds a push into a waiting Job). An API server that cannot be
reached within a few seconds raises ApiUnavailable, which the app answers with 503.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from hooksync.config import Config, Target
from hooksync.names import job_name, waiting_job_name
from receiver import jobview
from receiver.dispatch import coalescing
from receiver.dispatch.manifests import build_job, build_sync_job, build_waiting_job
from receiver.intake.routing import PREVIEW, JobRequest
from receiver.jobapi import ApiUnavailable, JobApi, job_selector

CONFLICT_RETRIES = 5
# How long a push waits for another push to the same target to finish dispatching.
TARGET_LOCK_SECONDS = 10.0

Outcome = Literal["created", "coalesced", "duplicate"]

# One apply dispatch at a time per target in this process. Without it, concurrent pushes
# of different SHAs each see no active Job and create one apiece (their names differ by
# SHA), and their folds into the waiting Job keep losing the compare-and-swap to each other.
_target_locks: dict[tuple[str, str], threading.Lock] = {}
_target_locks_guard = threading.Lock()


def _target_lock(namespace: str, target: str) -> threading.Lock:
    with _target_locks_guard:
        return _target_locks.setdefault((namespace, target), threading.Lock())


@dataclass(frozen=True)
class Dispatched:
    """The outcome of one Job request."""

    target: str
    job: str
    outcome: Outcome
    reason: str = ""


class Dispatcher:
    """Creates Jobs in the receiver's namespace, under the configuration as it is now."""

    def __init__(self, jobs: JobApi, config: Callable[[], Config]) -> None:
        self.jobs = jobs
        self.config = config

    def dispatch(self, request: JobRequest) -> Dispatched:
        """A preview of exactly the request's SHA, or a push: a new apply Job, a waiting
        one, or a fold into the waiting one."""
        config = self.config()
        if request.mode == PREVIEW:
            return self._preview(config, request)
        lock = _target_lock(self.jobs.namespace, request.target.name)
        if not lock.acquire(timeout=TARGET_LOCK_SECONDS):
            raise ApiUnavailable(
                f"target {request.target.name}: other pushes are still dispatching"
            )
        try:
            return self._apply(config, request)
        finally:
            lock.release()

    def sync_now(self, target: Target) -> Dispatched:
        """A resync of `target` now: "created", or "duplicate" when one was started this
        minute already (see `manifests.sync_job_name`). The caller checks that the target is
        configured and not suspended."""
        body = build_sync_job(self.config(), target, time.time())
        name = jobview.name_of(body)
        if self.jobs.create_job(body):
            return Dispatched(target.name, name, "created")
        reason = f"a sync of target {target.name} was started this minute: {name}"
        return Dispatched(target.name, name, "duplicate", reason)

    def _apply(self, config: Config, request: JobRequest) -> Dispatched:
        target, sha, ref, delivery = request.target, request.sha, request.ref, request.delivery_id
        for _ in range(CONFLICT_RETRIES):
            jobs = self._release_waiting(config, self._apply_jobs(request))
            decision = coalescing.decide_push(jobs, sha, delivery)
            if isinstance(decision, coalescing.Duplicate):
                return Dispatched(target.name, decision.job_name, "duplicate", decision.reason)
            if isinstance(decision, coalescing.Create):
                name = name_past_ended(jobs, job_name(target.name, "apply", sha), target.name)
                body = build_job(config, target, "apply", sha, ref, delivery, name=name)
                if self.jobs.create_job(body):
                    return Dispatched(target.name, name, "created")
                continue  # someone created it first: look again
            if isinstance(decision, coalescing.CreateWaiting):
                body = build_waiting_job(
                    config, target, decision.active_job, sha, ref, delivery, pushed_at=time.time()
                )
                if self.jobs.create_job(body):
                    return Dispatched(target.name, jobview.name_of(body), "coalesced")
                continue
            if self._fold(decision.job, sha, delivery):
                return Dispatched(target.name, jobview.name_of(decision.job), "coalesced")
        raise ApiUnavailable(f"target {target.name}: Jobs kept changing while dispatching")

    def _preview(self, config: Config, request: JobRequest) -> Dispatched:
        """One preview Job per head SHA."""
        target, sha = request.target, request.sha
        body = build_job(
            config,
            target,
            "preview",
            sha,
            request.ref,
            request.delivery_id,
            pr_number=request.pr_number or 0,
        )
        name = jobview.name_of(body)
        if self.jobs.create_job(body):
            return Dispatched(target.name, name, "created")
        return Dispatched(target.name, name, "duplicate", f"preview of {sha[:7]} already exists")

    def _apply_jobs(self, request: JobRequest) -> list[dict[str, Any]]:
        return self.jobs.list_jobs(job_selector(target=request.target.name, mode="apply"))

    def _fold(self, job: jobview.Job, sha: str, delivery: str | None) -> bool:
        """Record `sha` on a waiting Job; False when it changed underneath (retry)."""
        patch = {
            "metadata": {
                # resourceVersion makes the merge patch a compare-and-swap.
                "resourceVersion": (job.get("metadata") or {}).get("resourceVersion"),
                "annotations": coalescing.folded_annotations(job, sha, delivery, time.time()),
            }
        }
        return self.jobs.patch_job(jobview.name_of(job), patch) is not None

    def _release_waiting(self, config: Config, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Un-suspend waiting Jobs whose predecessor ended; return the Jobs as they are now."""
        window = coalescing.BurstWindow.of(config)
        released = {jobview.name_of(j) for j in coalescing.to_release(jobs, time.time(), window)}
        for name in released:
            self.jobs.release(name)
        return [
            {**job, "spec": {**(job.get("spec") or {}), "suspend": False}}
            if jobview.name_of(job) in released
            else job
            for job in jobs
        ]


def name_past_ended(jobs: Sequence[jobview.Job], name: str, target: str) -> str:
    """`name`, or the name after it if an ended Job (kept until its TTL) holds it already.

    Pure. The same SHA pushed again (a rollback by force-push) must converge again; creating
    the SHA's name would meet 409 on every try. The new Job is named after the ended one, as a
    waiting Job would be, so racing replicas still compute one name.
    """
    ended = {jobview.name_of(j) for j in jobs if jobview.is_finished(j)}
    for _ in range(len(ended)):
        if name not in ended:
            break
        name = waiting_job_name(target, name)
    return name
