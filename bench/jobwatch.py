"""Counting a namespace's apply Jobs over time with a watch: how many at once, how many in all."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client, watch

from hooksync import names


@dataclass
class JobState:
    name: str
    first_seen: float
    suspended: bool = False
    finished: bool = False
    shas: list[str] = field(default_factory=list)
    released: float | None = None  # when it was seen not suspended (monotonic)
    ended: float | None = None  # when it was seen Complete or Failed (monotonic)
    pods_failed: int = 0
    pods_succeeded: int = 0


def _finished(job: Any) -> bool:
    conditions = (job.status.conditions if job.status else None) or []
    return any(c.type in ("Complete", "Failed") and c.status == "True" for c in conditions)


def _shas(job: Any) -> list[str]:
    annotations = job.metadata.annotations or {}
    own = annotations.get(names.SHA)
    folded = [s for s in (annotations.get(names.COALESCED_SHAS) or "").split(",") if s]
    return ([own] if own else []) + folded


class JobCensus:
    """Watches apply Jobs in `namespace`; `peak_unfinished` and `peak_running` since start.

    Unfinished = running or waiting (suspended) and not yet Complete or Failed; running =
    unfinished and not suspended. Jobs that existed before `start()` count in the peaks but
    not in `created`.
    """

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.batch = client.BatchV1Api(api)
        self.namespace = namespace
        self.selector = f"{names.MANAGED_BY}={names.MANAGED_BY_VALUE},{names.MODE}=apply"
        self.jobs: dict[str, JobState] = {}
        self.before: set[str] = set()
        self.peak_unfinished = 0
        self.peak_running = 0
        self.errors = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> JobCensus:
        version = self._relist()
        with self._lock:
            self.before = set(self.jobs)
        self._thread = threading.Thread(
            target=self._run, args=(version,), name="job-census", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)

    @property
    def created(self) -> list[JobState]:
        with self._lock:
            return [j for n, j in self.jobs.items() if n not in self.before]

    def _relist(self) -> str:
        answer = self.batch.list_namespaced_job(
            self.namespace, label_selector=self.selector, _request_timeout=30
        )
        for job in answer.items:
            self._record(job)
        return str(answer.metadata.resource_version)

    def _record(self, job: Any, deleted: bool = False) -> None:
        with self._lock:
            name = job.metadata.name
            state = self.jobs.get(name)
            if state is None:
                state = self.jobs[name] = JobState(name, time.monotonic())
            now = time.monotonic()
            state.suspended = bool(job.spec.suspend) if job.spec else False
            if not state.suspended and state.released is None:
                state.released = now
            state.finished = state.finished or _finished(job) or deleted
            if state.finished and state.ended is None:
                state.ended = now
            state.shas = _shas(job)
            if job.status is not None:
                state.pods_failed = job.status.failed or 0
                state.pods_succeeded = job.status.succeeded or 0
            unfinished = [j for j in self.jobs.values() if not j.finished]
            self.peak_unfinished = max(self.peak_unfinished, len(unfinished))
            running = sum(1 for j in unfinished if not j.suspended)
            self.peak_running = max(self.peak_running, running)

    def _run(self, version: str) -> None:
        while not self._stop.is_set():
            stream = watch.Watch()
            try:
                for event in stream.stream(
                    self.batch.list_namespaced_job,
                    self.namespace,
                    label_selector=self.selector,
                    resource_version=version,
                    timeout_seconds=2,
                    _request_timeout=30,
                ):
                    job = event["object"]
                    version = job.metadata.resource_version
                    self._record(job, deleted=event["type"] == "DELETED")
                    if self._stop.is_set():
                        stream.stop()
                        break
            except Exception:
                # 410 Gone or a dropped connection: list again and carry on from there.
                self.errors += 1
                if self._stop.wait(0.5):
                    return
                try:
                    version = self._relist()
                except Exception:
                    self.errors += 1
