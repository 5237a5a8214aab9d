"""The leader's watch on the pods of hooksync's Jobs: a change wakes the reporter at once.

The Jobs themselves are kept in step by `receiver.kept` (whose changes wake it too). Without
these the reporter would see a Job's end on its next poll, up to a second later. And a pod
that exits 0 has finished the run and written its summary as its termination message, but the
Job controller batches pod updates and marks the Job Complete only about a second after that;
the reporter posts the statuses of the Job's own commits from the pod (`completed_by`), and
the rest when the Job is Complete (see receiver/reporting/loop.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from kubernetes import client

from hooksync import names
from receiver import jobview
from receiver.following import RETRY_SECONDS, follow
from receiver.jobapi import Object

log = logging.getLogger("hooksync.receiver")

JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


def succeeded_container(pod: Object) -> Object | None:
    """Pure: the terminated state of the pod's container when it exited 0, else None."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated")
        if terminated and terminated.get("exitCode") == 0:
            return dict(terminated)
    return None


def termination_message(pod: Object) -> str | None:
    """Pure: what the pod's container wrote as its termination message (the run's summary)
    when it exited 0."""
    terminated = succeeded_container(pod)
    message = terminated.get("message") if terminated is not None else None
    return str(message) if message else None


def completed_by(job: Object, pod: Object) -> tuple[Object, str | None] | None:
    """Pure: `job` as it will be once the Job controller has seen its pod exit 0 (Complete,
    at the container's finish time), with the pod's termination message; None when `pod`
    did not succeed or `job` has ended already."""
    terminated = succeeded_container(pod)
    if terminated is None or jobview.is_finished(job):
        return None
    finished = terminated.get("finishedAt")
    status = dict(job.get("status") or {})
    status["conditions"] = [
        *(status.get("conditions") or []),
        {"type": "Complete", "status": "True", "lastTransitionTime": finished},
    ]
    status.setdefault("completionTime", finished)
    return {**job, "status": status}, termination_message(pod)


class JobEvents:
    """Watches the pods of the namespace's hooksync Jobs while `active()`; sets `wake` on
    every change and remembers each Job's pod that exited 0, until `retain` forgets it."""

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        wake: threading.Event,
        active: Callable[[], bool],
        stop: threading.Event,
    ) -> None:
        self.core = client.CoreV1Api(api)
        self.namespace = namespace
        self.wake = wake
        self.active = active
        self.stop = stop
        self._succeeded: dict[str, Object] = {}
        self._lock = threading.Lock()

    def succeeded_pod(self, job: str) -> Object | None:
        with self._lock:
            return self._succeeded.get(job)

    def retain(self, jobs: set[str]) -> None:
        """Forget the pods of Jobs other than `jobs` (those still to report)."""
        with self._lock:
            for job in set(self._succeeded) - jobs:
                del self._succeeded[job]

    def start(self) -> None:
        threading.Thread(target=self._watch_pods, name="watch-pods", daemon=True).start()

    def _watch_pods(self) -> None:
        selector = f"{names.MANAGED_BY}={names.MANAGED_BY_VALUE}"
        while not self.stop.is_set():
            if not self.active():
                self.stop.wait(RETRY_SECONDS)
                continue
            try:
                lister = self.core.list_namespaced_pod
                follow(lister, self.namespace, selector, "", self._seen, self._going)
            except Exception as exc:  # a dropped watch: the poll still runs; start again
                log.debug("pod watch ended", extra={"reason": f"{type(exc).__name__}: {exc}"})
                self.stop.wait(RETRY_SECONDS)

    def _going(self) -> bool:
        return not self.stop.is_set() and self.active()

    def _seen(self, kind: str, obj: Object) -> None:
        job = ((obj.get("metadata") or {}).get("labels") or {}).get(JOB_NAME_LABEL)
        if job:
            with self._lock:
                if kind == "DELETED":
                    self._succeeded.pop(job, None)
                elif succeeded_container(obj) is not None:
                    self._succeeded[job] = obj
        self.wake.set()
