"""The leader's watch on hooksync's Jobs and their pods: a change wakes the reporter at once.

Without it the reporter would see a Job's end on its next poll, up to a second later. And a pod
that exits 0 has finished the run and written its summary as its termination message, but the
Job controller batches pod updates and marks the Job Complete only about a second after that;
the reporter posts the statuses of the Job's own commits from the pod (`completed_by`), and
the rest when the Job is Complete (see receiver/reporting/loop.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from kubernetes import client, watch

from hooksync import names
from receiver import jobview
from receiver.jobapi import Object

log = logging.getLogger("hooksync.receiver")

# The API server ends a watch after this long; the loop starts the next one at once.
WATCH_SECONDS = 300
RETRY_SECONDS = 1.0
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


def succeeded_container(pod: Object) -> Object | None:
    """Pure: the terminated state of the pod's container when it exited 0, else None."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated")
        if terminated and terminated.get("exitCode") == 0:
            return dict(terminated)
    return None


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
    message = terminated.get("message")
    return {**job, "status": status}, (str(message) if message else None)


class JobEvents:
    """Watches the namespace's hooksync Jobs and pods while `active()`; sets `wake` on every
    change and remembers each Job's pod that exited 0, until `forget`."""

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        wake: threading.Event,
        active: Callable[[], bool],
        stop: threading.Event,
    ) -> None:
        self.batch = client.BatchV1Api(api)
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
        listers = {"jobs": self.batch.list_namespaced_job, "pods": self.core.list_namespaced_pod}
        for name, lister in listers.items():
            threading.Thread(
                target=self._watch, args=(lister,), name=f"watch-{name}", daemon=True
            ).start()

    def _watch(self, lister: Callable[..., Any]) -> None:
        selector = f"{names.MANAGED_BY}={names.MANAGED_BY_VALUE}"
        # Each watch goes on from the last version seen, so only a dropped or expired one
        # (410 Gone) starts over with the whole namespace's Jobs or pods.
        version = ""
        while not self.stop.is_set():
            if not self.active():
                version = ""
                self.stop.wait(RETRY_SECONDS)
                continue
            try:
                stream = watch.Watch()
                for event in stream.stream(
                    lister,
                    self.namespace,
                    label_selector=selector,
                    resource_version=version or None,
                    allow_watch_bookmarks=True,
                    timeout_seconds=WATCH_SECONDS,
                    _request_timeout=(5, WATCH_SECONDS + 30),
                    deserialize=False,  # plain dicts, as the rest of the receiver reads them
                ):
                    obj = event["object"]
                    version = (obj.get("metadata") or {}).get("resourceVersion") or version
                    if event["type"] != "BOOKMARK":
                        self._seen(event["type"], obj)
                    if self.stop.is_set() or not self.active():
                        stream.stop()
                        break
            except Exception as exc:  # a dropped watch: the poll still runs; start again
                log.debug("job watch ended", extra={"reason": f"{type(exc).__name__}: {exc}"})
                version = ""
                self.stop.wait(RETRY_SECONDS)

    def _seen(self, kind: str, obj: Object) -> None:
        if obj.get("kind") == "Pod":
            job = ((obj.get("metadata") or {}).get("labels") or {}).get(JOB_NAME_LABEL)
            if job:
                with self._lock:
                    if kind == "DELETED":
                        self._succeeded.pop(job, None)
                    elif succeeded_container(obj) is not None:
                        self._succeeded[job] = obj
        self.wake.set()
