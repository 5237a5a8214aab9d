"""The leader's watch on hooksync's Jobs and their pods: a change wakes the reporter at once.

Without it the reporter would see a Job's end on its next poll, up to a second later. The Jobs
not reported yet are kept as the watch shows them (listed once, then followed), so a pass of
the reporter lists nothing: at fleet size, during a resync wave, a list of them on every pass
took seconds and was most of the API server's work for the leader. And a pod
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

import orjson
from kubernetes import client, watch

from hooksync import names
from receiver import jobview
from receiver.jobapi import API_TIMEOUT, Object, job_selector

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


def is_newer(job: Object, than: Object) -> bool:
    """Pure: whether `job` is a later version of the Job than `than`. Resource versions are
    opaque, but the API server's are etcd revisions, which only grow; where either is not a
    number, the one seen last is taken."""
    mine = str((job.get("metadata") or {}).get("resourceVersion") or "")
    theirs = str((than.get("metadata") or {}).get("resourceVersion") or "")
    if mine.isdigit() and theirs.isdigit():
        return int(mine) >= int(theirs)
    return True


def is_reported(job: Object) -> bool:
    return jobview.label(job, names.REPORTED) == names.REPORTED_COMPLETE


class JobEvents:
    """Watches the namespace's hooksync Jobs and pods while `active()`; sets `wake` on every
    change, keeps the Jobs not reported yet, and remembers each Job's pod that exited 0, until
    `retain` forgets it."""

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
        # The newest version seen of each Job the watch shows (those not reported yet, and
        # those this replica has just reported until the watch says so); valid when synced.
        self._jobs: dict[str, Object] = {}
        self._synced = False
        self._lock = threading.Lock()

    def unreported_jobs(self) -> list[Object] | None:
        """The Jobs not reported yet, as last seen; None while the watch is not following
        (starting, broken, or this replica is not leading): list them instead."""
        with self._lock:
            if not self._synced:
                return None
            return [job for job in self._jobs.values() if not is_reported(job)]

    def remember(self, job: Object) -> None:
        """`job` as this replica's own write returned it, which can be newer than the watch's
        last event: a pass right after the write must not act on the version before it."""
        with self._lock:
            self._keep(job)

    def _keep(self, job: Object) -> None:
        name = jobview.name_of(job)
        seen = self._jobs.get(name)
        if seen is None and is_reported(job):
            return  # gone from the watch already: nothing to keep
        if seen is None or is_newer(job, seen):
            self._jobs[name] = job

    def succeeded_pod(self, job: str) -> Object | None:
        with self._lock:
            return self._succeeded.get(job)

    def retain(self, jobs: set[str]) -> None:
        """Forget the pods of Jobs other than `jobs` (those still to report)."""
        with self._lock:
            for job in set(self._succeeded) - jobs:
                del self._succeeded[job]

    def start(self) -> None:
        threading.Thread(target=self._watch_jobs, name="watch-jobs", daemon=True).start()
        threading.Thread(target=self._watch_pods, name="watch-pods", daemon=True).start()

    def _watch_jobs(self) -> None:
        """List the Jobs not reported yet, then follow them. A Job labelled reported leaves
        the selector, which the API server sends as its deletion."""
        selector = job_selector(unreported=True)
        while not self.stop.is_set():
            if not self.active():
                self._unsync()
                self.stop.wait(RETRY_SECONDS)
                continue
            try:
                answer = self.batch.list_namespaced_job(
                    self.namespace,
                    label_selector=selector,
                    _preload_content=False,
                    _request_timeout=(API_TIMEOUT[0], 60),
                )
                listed = orjson.loads(answer.data)  # type: ignore[attr-defined]
                with self._lock:
                    self._jobs = {}
                    for job in listed.get("items") or []:
                        self._keep(job)
                    self._synced = True
                self.wake.set()
                self._follow(self.batch.list_namespaced_job, selector, listed["metadata"])
            except Exception as exc:  # a dropped watch: the poll lists instead; start again
                log.debug("job watch ended", extra={"reason": f"{type(exc).__name__}: {exc}"})
            self._unsync()
            self.stop.wait(RETRY_SECONDS)

    def _unsync(self) -> None:
        with self._lock:
            self._synced = False
            self._jobs = {}

    def _watch_pods(self) -> None:
        while not self.stop.is_set():
            if not self.active():
                self.stop.wait(RETRY_SECONDS)
                continue
            try:
                selector = f"{names.MANAGED_BY}={names.MANAGED_BY_VALUE}"
                self._follow(self.core.list_namespaced_pod, selector, {})
            except Exception as exc:  # a dropped watch: the poll still runs; start again
                log.debug("pod watch ended", extra={"reason": f"{type(exc).__name__}: {exc}"})
                self.stop.wait(RETRY_SECONDS)

    def _follow(self, lister: Callable[..., Any], selector: str, listed: Object) -> None:
        """Watch from the listed version (or, without one, from the present state's events),
        going on from the last version seen each time the API server ends the watch; returns
        when this replica stops leading, raises when the watch breaks or expires (410 Gone)."""
        version = str(listed.get("resourceVersion") or "")
        while not self.stop.is_set():
            if not self.active():
                return
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
                    return

    def _seen(self, kind: str, obj: Object) -> None:
        if obj.get("kind") == "Job":
            with self._lock:
                if kind == "DELETED":
                    self._jobs.pop(jobview.name_of(obj), None)
                else:
                    self._keep(obj)
        elif obj.get("kind") == "Pod":
            job = ((obj.get("metadata") or {}).get("labels") or {}).get(JOB_NAME_LABEL)
            if job:
                with self._lock:
                    if kind == "DELETED":
                        self._succeeded.pop(job, None)
                    elif succeeded_container(obj) is not None:
                        self._succeeded[job] = obj
        self.wake.set()
