"""Dispatch: turn a routed event into a Job that exists in the API server, or say why not.

202 means persisted (design rule 3): every path here returns only after the API server has
the Job (or the annotation that folds a push into a waiting Job). An API server that cannot be
reached within a few seconds raises ApiUnavailable, which the app answers with 503.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import orjson
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError as Urllib3Error

from hooksync import logs, names
from hooksync.config import Config, Target
from receiver.dispatch import coalescing
from receiver.dispatch.manifests import build_job, build_waiting_job

log = logging.getLogger("hooksync.receiver")

# (connect, read) seconds for every API call made while a webhook waits for its answer.
API_TIMEOUT = (2.0, 5.0)
CONFLICT_RETRIES = 5
# How long a push waits for another push to the same target to finish dispatching.
TARGET_LOCK_SECONDS = 10.0

# One apply dispatch at a time per target in this process. Without it, concurrent pushes
# of different SHAs each see no active Job and create one apiece (their names differ by
# SHA), and their folds into the waiting Job keep losing the compare-and-swap to each other.
_target_locks: dict[tuple[str, str], threading.Lock] = {}
_target_locks_guard = threading.Lock()


def _target_lock(namespace: str, target: str) -> threading.Lock:
    with _target_locks_guard:
        return _target_locks.setdefault((namespace, target), threading.Lock())


class ApiUnavailable(Exception):
    """The API server could not be reached or answered with an error; the caller answers 503."""


@dataclass(frozen=True)
class Dispatched:
    """The outcome of one event for one target."""

    target: str
    job: str
    outcome: str  # "created" | "coalesced" | "duplicate"
    reason: str = ""


class Dispatcher:
    """Creates Jobs in the receiver's namespace with the admin of that namespace's Jobs."""

    def __init__(self, api: client.ApiClient, config: Config, namespace: str) -> None:
        self.batch = client.BatchV1Api(api)
        self.config = config
        self.namespace = namespace

    def apply(self, target: Target, sha: str, ref: str, delivery: str | None) -> Dispatched:
        """Dispatch a push: a new apply Job, a waiting one, or a fold into the waiting one."""
        lock = _target_lock(self.namespace, target.name)
        if not lock.acquire(timeout=TARGET_LOCK_SECONDS):
            raise ApiUnavailable(f"target {target.name}: other pushes are still dispatching")
        try:
            return self._apply(target, sha, ref, delivery)
        finally:
            lock.release()

    def _apply(self, target: Target, sha: str, ref: str, delivery: str | None) -> Dispatched:
        for _ in range(CONFLICT_RETRIES):
            jobs = self._apply_jobs(target)
            jobs = self._release_waiting(jobs)
            decision = coalescing.decide_push(jobs, sha, delivery)
            if isinstance(decision, coalescing.Duplicate):
                return Dispatched(target.name, decision.job_name, "duplicate", decision.reason)
            if isinstance(decision, coalescing.Create):
                body = build_job(self.config, target, "apply", sha, ref, delivery)
                body = self._past_ended(body, jobs, target, sha, ref, delivery)
                created = self._create(body)
                if created:
                    return Dispatched(target.name, coalescing.name_of(body), "created")
                continue  # someone created it first: look again
            if isinstance(decision, coalescing.CreateWaiting):
                body = build_waiting_job(
                    self.config, target, decision.active_job, sha, ref, delivery,
                    pushed_at=time.time(),
                )  # fmt: skip
                if self._create(body):
                    return Dispatched(target.name, coalescing.name_of(body), "coalesced")
                continue
            if self._fold(decision.job, sha, delivery):
                return Dispatched(target.name, coalescing.name_of(decision.job), "coalesced")
        raise ApiUnavailable(f"target {target.name}: Jobs kept changing while dispatching")

    def _past_ended(
        self,
        body: dict[str, Any],
        jobs: list[dict[str, Any]],
        target: Target,
        sha: str,
        ref: str,
        delivery: str | None,
    ) -> dict[str, Any]:
        """Rename `body` if an ended Job (kept until its TTL) holds its name already.

        The same SHA pushed again (a rollback by force-push) must converge again; creating
        the SHA's name would meet 409 on every try. The new Job is named after the ended
        one, as a waiting Job would be, so racing replicas still compute one name.
        """
        ended = {coalescing.name_of(j) for j in jobs if coalescing.is_finished(j)}
        for _ in range(len(ended)):
            name = coalescing.name_of(body)
            if name not in ended:
                break
            body = build_waiting_job(self.config, target, name, sha, ref, delivery)
            body["spec"]["suspend"] = False
            body["metadata"]["annotations"].pop(names.WAITS_FOR, None)
        return body

    def preview(
        self, target: Target, sha: str, ref: str, delivery: str | None, number: int
    ) -> Dispatched:
        """Dispatch a preview of exactly `sha`; one Job per head SHA."""
        body = build_job(self.config, target, "preview", sha, ref, delivery, pr_number=number)
        name = coalescing.name_of(body)
        if self._create(body):
            return Dispatched(target.name, name, "created")
        return Dispatched(target.name, name, "duplicate", f"preview of {sha[:7]} already exists")

    # -- API calls -----------------------------------------------------------------------

    def _apply_jobs(self, target: Target) -> list[dict[str, Any]]:
        selector = job_selector(target=target.name, mode="apply")
        jobs: list[dict[str, Any]] = self._call(list_jobs, self.batch, self.namespace, selector)
        return jobs

    def _create(self, body: dict[str, Any]) -> bool:
        """Create a Job; False when one of that name exists already (another replica won)."""
        try:
            self._call(
                self.batch.create_namespaced_job, self.namespace, body, _preload_content=False
            )
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise _unavailable(exc) from None
        log.info("job created", extra=logs.extra(job=coalescing.name_of(body)))
        return True

    def _fold(self, job: dict[str, Any] | Any, sha: str, delivery: str | None) -> bool:
        """Record `sha` on a waiting Job; False when it changed underneath (retry)."""
        metadata = job.get("metadata") or {}
        patch = {
            "metadata": {
                # resourceVersion makes the merge patch a compare-and-swap.
                "resourceVersion": metadata.get("resourceVersion"),
                "annotations": coalescing.folded_annotations(job, sha, delivery, time.time()),
            }
        }
        try:
            self._call(
                self.batch.patch_namespaced_job,
                metadata["name"],
                self.namespace,
                patch,
                _preload_content=False,
            )
        except ApiException as exc:
            if exc.status in (404, 409):
                return False
            raise _unavailable(exc) from None
        return True

    def _release_waiting(self, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Un-suspend waiting Jobs whose predecessor ended; return the Jobs as they are now."""
        window = burst_window(self.config)
        released = {coalescing.name_of(j) for j in coalescing.to_release(jobs, time.time(), window)}
        for name in released:
            release_job(self.batch, self.namespace, name)
        if not released:
            return jobs
        return self._apply_jobs_by_name(jobs, released)

    def _apply_jobs_by_name(
        self, jobs: list[dict[str, Any]], released: set[str]
    ) -> list[dict[str, Any]]:
        result = []
        for job in jobs:
            if coalescing.name_of(job) in released:
                job = {**job, "spec": {**(job.get("spec") or {}), "suspend": False}}
            result.append(job)
        return result

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, _request_timeout=API_TIMEOUT, **kwargs)
        except ApiException as exc:
            if exc.status in (409, 404):
                raise
            raise _unavailable(exc) from None
        except (Urllib3Error, OSError) as exc:
            raise ApiUnavailable(f"API server unreachable: {type(exc).__name__}") from None


def job_selector(
    target: str | None = None, mode: str | None = None, *, unreported: bool = False
) -> str:
    """The label selector for hooksync's Jobs, optionally of one target and mode, and only
    those whose final statuses are not all out yet."""
    selector = f"{names.MANAGED_BY}={names.MANAGED_BY_VALUE}"
    if target:
        selector += f",{names.TARGET}={target}"
    if mode:
        selector += f",{names.MODE}={mode}"
    if unreported:
        selector += f",!{names.REPORTED}"
    return selector


def list_jobs(
    batch: client.BatchV1Api,
    namespace: str,
    selector: str,
    _request_timeout: tuple[float, float] = API_TIMEOUT,
) -> list[dict[str, Any]]:
    """The Jobs `selector` picks, as plain dicts (cheaper than the client's model objects)."""
    answer: Any = batch.list_namespaced_job(
        namespace, label_selector=selector, _preload_content=False,
        _request_timeout=_request_timeout,
    )  # fmt: skip
    items: list[dict[str, Any]] = orjson.loads(answer.data)["items"]
    return items


def burst_window(config: Config) -> coalescing.BurstWindow:
    return coalescing.BurstWindow(config.burst_quiet_seconds, config.burst_max_wait_seconds)


def release_job(batch: client.BatchV1Api, namespace: str, name: str) -> None:
    """Let a waiting Job run: it converges the branch head as it is when it starts."""
    try:
        batch.patch_namespaced_job(
            name,
            namespace,
            {"spec": {"suspend": False}},
            _request_timeout=API_TIMEOUT,
            _preload_content=False,
        )
    except ApiException as exc:
        if exc.status != 404:
            raise _unavailable(exc) from None
    except (Urllib3Error, OSError) as exc:
        raise ApiUnavailable(f"API server unreachable: {type(exc).__name__}") from None
    log.info("waiting job released", extra=logs.extra(job=name))


def _unavailable(exc: ApiException) -> ApiUnavailable:
    reason = exc.reason or "error"
    if exc.status == 403:
        reason += " (the receiver's Role must allow Jobs in its namespace)"
    return ApiUnavailable(f"API server answered {exc.status} {reason}")
