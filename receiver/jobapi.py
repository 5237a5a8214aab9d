"""The receiver's one door to the Job API: its Jobs, their pods' messages and logs, its CronJobs.

Thin I/O: every call carries the same (connect, read) timeout, takes and returns plain dicts
(cheaper than the client's model objects, and what `receiver.jobview` reads), and turns an API
server that cannot be reached or answers with an error into ApiUnavailable. The answers a
caller expects (a name taken, an object gone or changed underneath) come back as values.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Final

import orjson
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError as Urllib3Error

from hooksync import logs, names
from receiver import jobview

log = logging.getLogger("hooksync.receiver")

# (connect, read) seconds for every call: a webhook waits on some of them for its answer, and
# an API server that needs longer is answered with 503 (design rule 3) and retried.
API_TIMEOUT: Final = (2.0, 5.0)

Object = dict[str, Any]


class ApiUnavailable(Exception):
    """The API server could not be reached or answered with an error; retry later (503)."""


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


class JobApi:
    """Jobs, their pods and CronJobs in the receiver's namespace."""

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        timeout: tuple[float, float] = API_TIMEOUT,
    ) -> None:
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)
        self.namespace = namespace
        self.timeout = timeout

    # -- Jobs ----------------------------------------------------------------------------

    def list_jobs(self, selector: str) -> list[Object]:
        """The Jobs `selector` picks."""
        answer = self._call(self.batch.list_namespaced_job, self.namespace, label_selector=selector)
        return _items(answer)

    def read_job(self, name: str) -> Object | None:
        """The Job, or None when there is none of that name."""
        job: Object | None = self._call(
            self.batch.read_namespaced_job, name, self.namespace, absent=(404,)
        )
        return job

    def create_job(self, body: Mapping[str, Any]) -> bool:
        """Create a Job; False when one of that name exists already (another replica won)."""
        created = self._call(self.batch.create_namespaced_job, self.namespace, body, absent=(409,))
        if created is None:
            return False
        log.info("job created", extra=logs.extra(job=jobview.name_of(body)))
        return True

    def patch_job(self, name: str, patch: Mapping[str, Any]) -> Object | None:
        """Merge `patch` into the Job; the Job as it is now, or None when it is gone or (for a
        patch that carries a resourceVersion) changed since it was read."""
        job: Object | None = self._call(
            self.batch.patch_namespaced_job, name, self.namespace, patch, absent=(404, 409)
        )
        return job

    def annotate(self, name: str, annotations: Mapping[str, str]) -> Object | None:
        """Record `annotations` on the Job; the Job as it is now, or None once it is gone."""
        return self.patch_job(name, {"metadata": {"annotations": dict(annotations)}})

    def release(self, name: str) -> None:
        """Let a waiting Job run: it converges the branch head as it is when it starts."""
        self.patch_job(name, {"spec": {"suspend": False}})
        log.info("waiting job released", extra=logs.extra(job=name))

    def finish(self, job: jobview.Job) -> Object | None:
        """Once every status of `job` is out: drop its finalizer, and label it reported so
        the leader no longer lists it (one compare-and-swap: if it fails, the next pass still
        lists the Job and tries again). The Job as it is now; None when it is gone, changed
        meanwhile, or finished already."""
        metadata = job.get("metadata") or {}
        finalizers = metadata.get("finalizers") or []
        if jobview.is_reported(job) and names.STATUS_FINALIZER not in finalizers:
            return None
        remaining = [f for f in finalizers if f != names.STATUS_FINALIZER]
        patch = {
            "metadata": {
                "finalizers": remaining or None,
                "labels": {names.REPORTED: names.REPORTED_COMPLETE},
                "resourceVersion": metadata.get("resourceVersion"),
            }
        }
        return self.patch_job(jobview.name_of(job), patch)

    # -- the pods of a Job ---------------------------------------------------------------

    def last_termination_message(self, job: str) -> str | None:
        """The termination message of the newest terminated pod of `job`."""
        for pod in reversed(self._pods(job)):
            for status in (pod.get("status") or {}).get("containerStatuses") or []:
                terminated = (status.get("state") or {}).get("terminated")
                if terminated and terminated.get("message"):
                    return str(terminated["message"])
        return None

    def log_tail(self, job: str, lines: int) -> str:
        """The last `lines` lines of the newest pod's log; empty when the Job has no pod."""
        return self._log(job, tail_lines=lines)

    def read_log(self, job: str, limit_bytes: int) -> str:
        """The newest pod's log from its start, at most `limit_bytes` of it (the API server
        stops there, so a huge log costs no more); empty when the Job has no pod."""
        return self._log(job, limit_bytes=limit_bytes)

    def _log(self, job: str, **window: Any) -> str:
        pods = self._pods(job)
        name = (pods[-1].get("metadata") or {}).get("name") if pods else None
        if not name:
            return ""
        text = self._call(
            self.core.read_namespaced_pod_log, name, self.namespace, decode=False, **window
        )
        return str(text or "")

    def _pods(self, job: str) -> list[Object]:
        """The pods of `job`, oldest first."""
        answer = self._call(
            self.core.list_namespaced_pod, self.namespace, label_selector=f"job-name={job}"
        )
        pods = _items(answer)
        pods.sort(key=lambda p: (p.get("metadata") or {}).get("creationTimestamp") or "")
        return pods

    # -- CronJobs ------------------------------------------------------------------------

    def list_cronjobs(self, selector: str) -> list[Object]:
        answer = self._call(
            self.batch.list_namespaced_cron_job, self.namespace, label_selector=selector
        )
        return _items(answer)

    def create_cronjob(self, body: Mapping[str, Any]) -> None:
        self._call(self.batch.create_namespaced_cron_job, self.namespace, body)

    def replace_cronjob(self, name: str, body: Mapping[str, Any]) -> None:
        self._call(self.batch.replace_namespaced_cron_job, name, self.namespace, body)

    def delete_cronjob(self, name: str) -> None:
        """Delete the CronJob and, in the background, its Jobs; nothing if it is gone."""
        self._call(
            self.batch.delete_namespaced_cron_job,
            name,
            self.namespace,
            propagation_policy="Background",
            absent=(404,),
        )

    # -- every call ----------------------------------------------------------------------

    def _call(
        self, method: Callable[..., Any], *args: Any, absent: tuple[int, ...] = (), **kwargs: Any
    ) -> Any:
        """`method`'s answer as plain data; None when the API server answers a status in
        `absent`."""
        decode = kwargs.pop("decode", True)
        try:
            answer = method(*args, _request_timeout=self.timeout, _preload_content=False, **kwargs)
            # The body is read here too: a list cut off midway (the API server's own timeout on a
            # large answer, a restart) is as unavailable as no answer at all.
            data = answer.data
        except ApiException as exc:
            if exc.status in absent:
                return None
            raise _unavailable(exc) from None
        except (Urllib3Error, OSError) as exc:
            raise ApiUnavailable(f"API server unreachable: {type(exc).__name__}") from None
        if not decode:
            return data.decode("utf-8", errors="replace")
        return orjson.loads(data)


def _items(answer: Any) -> list[Object]:
    items: list[Object] = answer["items"] or []
    return items


def _unavailable(exc: ApiException) -> ApiUnavailable:
    if not exc.status:
        # Status 0: the client wraps a transport error (an SSLError as the API server restarts)
        # in an ApiException; its reason runs over several lines.
        kind = (str(exc.reason or "").split() or ["error"])[0]
        return ApiUnavailable(f"API server unreachable: {kind}")
    reason = " ".join(str(exc.reason or "error").split())
    if exc.status == 403:
        reason += " (the receiver's Role must allow Jobs, CronJobs and pods in its namespace)"
    return ApiUnavailable(f"API server answered {exc.status} {reason}")
