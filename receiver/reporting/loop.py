"""The leader's loop: watch hooksync's Jobs, release waiting ones, and post commit statuses.

What has been reported is written on the Job itself (annotations), and a finalizer keeps the
Job until its final statuses are out, so neither a restart, a new leader, nor a Git host that
is down for an hour loses or repeats a report.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

import orjson
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from hooksync import logs, names
from hooksync.config import Config, ConfigError, Target
from hooksync.summary import RunSummary
from hooksync.times import parse_rfc3339
from receiver.app import ReceiverState
from receiver.dispatch import coalescing
from receiver.dispatch.dispatcher import burst_window, job_selector, list_jobs, release_job
from receiver.reporting import records
from receiver.reporting.githosts import (
    GiteaStatuses,
    GitHubStatuses,
    GitLabStatuses,
    HostRejected,
    HostUnavailable,
)
from receiver.reporting.leader import LeaderElector
from receiver.reporting.links import run_url
from receiver.reporting.statuses import (
    StatusReport,
    final_reports,
    job_failure_reason,
    pending_reports,
)

log = logging.getLogger("hooksync.receiver")

POLL_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 300.0
# How long one Job's statuses may take of a pass before the pass moves on.
JOB_BUDGET_SECONDS = 5.0


class Reporter:
    """One pass every POLL_SECONDS while this replica leads."""

    def __init__(self, state: ReceiverState, elector: LeaderElector) -> None:
        self.state = state
        self.elector = elector
        self.batch = client.BatchV1Api(state.api)
        self.core = client.CoreV1Api(state.api)
        self.stop = threading.Event()
        self._hosts: dict[str, Any] = {}
        self._hosts_config: Config | None = None
        self._not_before: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._carried: dict[str, str] = {}  # SHA -> the apply Job that stands for it

    def run(self) -> None:
        while not self.stop.is_set():
            # A Job created by this replica wakes the loop at once, so its pending status
            # goes out before a fast converge ends; otherwise it is a steady poll.
            self.state.job_created.wait(POLL_SECONDS)
            self.state.job_created.clear()
            if self.stop.is_set() or not self.elector.is_leader.is_set():
                continue
            try:
                self.pass_once()
            except Exception as exc:  # the API server may be away; the next pass retries
                log.warning("report pass failed", extra={"reason": f"{type(exc).__name__}: {exc}"})

    def release_loop(self) -> None:
        """Release waiting Jobs promptly, apart from status posting, which the Git host paces
        (GitHub asks for a second between writes, so a backlog of statuses can take minutes)."""
        while not self.stop.wait(POLL_SECONDS):
            if not self.elector.is_leader.is_set():
                continue
            try:
                selector = job_selector(mode="apply", unreported=True)
                jobs = list_jobs(self.batch, self.state.namespace, selector)
                window = burst_window(self.state.config)
                for job in coalescing.to_release(jobs, time.time(), window):
                    release_job(self.batch, self.state.namespace, coalescing.name_of(job))
            except Exception as exc:  # the next tick retries
                log.debug("release pass failed", extra={"reason": str(exc)})

    def pass_once(self) -> None:
        # Reported Jobs stay until their TTL; they need nothing more, so they are not listed.
        jobs = list_jobs(self.batch, self.state.namespace, job_selector(unreported=True), (2, 10))
        apply_jobs = [j for j in jobs if _label(j, names.MODE) == "apply"]
        # Waiting Jobs are released by release_loop, which posting statuses cannot delay.
        self._carried = {
            sha: coalescing.name_of(j) for j in apply_jobs for sha in coalescing.job_shas(j)
        }
        for job in jobs:
            if self.stop.is_set() or not self.elector.is_leader.is_set():
                return
            self.report(job)

    # -- one Job -------------------------------------------------------------------------

    def report(self, job: dict[str, Any]) -> None:
        name = coalescing.name_of(job)
        annotations = coalescing.annotations_of(job)
        target = self._target(_label(job, names.TARGET))
        if annotations.get(names.REPORTED) == names.REPORTED_COMPLETE or target is None:
            self._finish(job)
            return
        if not coalescing.is_finished(job):
            posted = self._post_all(target, name, pending_reports(job))
            if posted:
                done = coalescing.annotation_list(job, names.REPORTED_PENDING) + posted
                self._annotate(name, {names.REPORTED_PENDING: ",".join(dict.fromkeys(done))})
            return
        summary = self._summary(job)
        reports = final_reports(job, summary, job_failure_reason(job))
        # A run that deployed the branch head whose push is on another Job (folded into the
        # one waiting behind it) leaves that SHA to the other Job: one final status per SHA,
        # and no "pending" from the other Job after this one's "success".
        own = set(coalescing.job_shas(job))
        reports = [r for r in reports if r.sha in own or self._carried.get(r.sha, name) == name]
        already = set(coalescing.annotation_list(job, names.REPORTED_FINAL))
        todo = [r for r in reports if r.sha not in already]
        posted = self._post_all(target, name, todo)
        if len(posted) < len(todo):
            if posted:
                record = ",".join(dict.fromkeys([*already, *posted]))
                self._annotate(name, {names.REPORTED_FINAL: record})
            return
        self._record_result(job, target, summary)
        updated = self._annotate(
            name,
            {
                names.REPORTED: names.REPORTED_COMPLETE,
                names.REPORTED_FINAL: ",".join(r.sha for r in reports),
            },
        )
        if updated is not None:
            self._finish(updated)

    def _post_all(self, target: Target, job: str, reports: list[StatusReport]) -> list[str]:
        """Post in order; stop at the first the host cannot take now, or once this Job has
        had its share of the pass (the host paces writes, so a Job with hundreds of SHAs
        would otherwise hold the pass for minutes, and others' statuses, or this Job's own
        end, would wait). Returns the SHAs posted; the rest go out in later passes."""
        posted: list[str] = []
        provider = target.provider
        budget_ends = time.monotonic() + JOB_BUDGET_SECONDS
        for report in reports:
            now = time.monotonic()
            if now < self._not_before.get(provider, 0.0) or (posted and now > budget_ends):
                break
            try:
                self._host(provider).post(target.repo, report, self._link(job))
            except HostUnavailable as exc:
                failures = self._failures.get(provider, 0) + 1
                self._failures[provider] = failures
                wait = max(exc.retry_after, min(MAX_BACKOFF_SECONDS, 2.0 ** (failures - 1)))
                self._not_before[provider] = time.monotonic() + wait
                self.state.metrics.statuses.labels(provider, "retry").inc()
                log.warning(
                    "status not posted; will retry",
                    extra=logs.extra(job=job, target=target.name, reason=str(exc), wait=wait),
                )
                break
            except HostRejected as exc:
                # The host will never take it (unknown repository, bad token); do not block
                # the Job forever, but say so loudly.
                self.state.metrics.statuses.labels(provider, "rejected").inc()
                log.error(
                    "status rejected by the Git host",
                    extra=logs.extra(job=job, target=target.name, reason=str(exc)),
                )
                posted.append(report.sha)
                continue
            self._failures[provider] = 0
            self.state.metrics.statuses.labels(provider, "posted").inc()
            log.info(
                "status posted",
                extra=logs.extra(job=job, target=target.name, commit=report.sha,
                                 state=report.state, context=report.context),
            )  # fmt: skip
            posted.append(report.sha)
        return posted

    # -- reading the run -----------------------------------------------------------------

    def _summary(self, job: dict[str, Any]) -> RunSummary | None:
        """The run's summary: saved on the Job, else read from its last pod and saved."""
        annotations = coalescing.annotations_of(job)
        if names.SUMMARY in annotations:
            return RunSummary.from_json(annotations[names.SUMMARY])
        name = coalescing.name_of(job)
        message = last_termination_message(self.core, self.state.namespace, name)
        summary = RunSummary.from_json(message) if message else None
        if summary is not None:
            self._annotate(name, {names.SUMMARY: summary.to_json()})
        return summary

    def _record_result(
        self, job: dict[str, Any], target: Target, summary: RunSummary | None
    ) -> None:
        mode = _label(job, names.MODE) or "apply"
        metrics = self.state.metrics
        result = summary.result if summary else "failure"
        if job_failure_reason(job):
            result = "failure"
        metrics.converges.labels(target.name, mode, result).inc()
        status = job.get("status") or {}
        # A failed Job has no completionTime; its Failed condition says when it ended.
        started, ended = (
            parse_rfc3339(status.get("startTime")),
            parse_rfc3339(records.finished_time(job)),
        )
        if started and ended:
            metrics.converge_seconds.labels(target.name, mode).observe(ended - started)
        if mode != "preview" and summary and summary.sha and result in ("success", "no-op"):
            metrics.last_applied.labels(target.name).info({"sha": summary.sha})
            metrics.last_success.labels(target.name).set(ended or time.time())
        record = records.record_from_run(job, result, summary, datetime.datetime.now(datetime.UTC))
        if record is not None:
            try:
                records.save(self.state.api, self.state.namespace, record)
            except Exception as exc:  # the statuses are out; a missing record only dims the page
                log.warning(
                    "target record not saved",
                    extra=logs.extra(job=record.job, target=target.name, reason=str(exc)),
                )

    # -- small I/O helpers ---------------------------------------------------------------

    def _target(self, name: str | None) -> Target | None:
        try:
            return self.state.config.target(name or "")
        except ConfigError:
            return None

    def _host(self, provider: str) -> Any:
        if self._hosts_config is not self.state.config:
            self._hosts = {}
            self._hosts_config = self.state.config
        if provider not in self._hosts:
            secrets = self.state.secrets
            if provider == "github":
                self._hosts[provider] = GitHubStatuses(self.state.config, secrets.github_token)
            elif provider == "gitea":
                self._hosts[provider] = GiteaStatuses(self.state.config, secrets.gitea_token)
            else:
                self._hosts[provider] = GitLabStatuses(self.state.config, secrets.gitlab_token)
        return self._hosts[provider]

    def _link(self, job: str) -> str | None:
        keys = self.state.secrets.link_keys
        return run_url(self.state.config.public_url, keys[0], job) if keys else None

    def _annotate(self, job: str, annotations: Mapping[str, str]) -> dict[str, Any] | None:
        """Record `annotations` on `job`; the Job as it is now, or None once it is gone."""
        try:
            answer = self.batch.patch_namespaced_job(
                job, self.state.namespace, {"metadata": {"annotations": dict(annotations)}},
                _preload_content=False, _request_timeout=(2, 10),
            )  # fmt: skip
        except ApiException as exc:
            if exc.status != 404:
                raise
            return None
        updated: dict[str, Any] = orjson.loads(answer.data)  # type: ignore[attr-defined]
        return updated

    def _finish(self, job: dict[str, Any]) -> None:
        """Once every status of `job` is out: drop its finalizer, and label it reported so
        the leader no longer lists it (one compare-and-swap: if it fails, the next pass still
        lists the Job and tries again)."""
        metadata = job.get("metadata") or {}
        finalizers = metadata.get("finalizers") or []
        labelled = (metadata.get("labels") or {}).get(names.REPORTED) == names.REPORTED_COMPLETE
        if labelled and names.STATUS_FINALIZER not in finalizers:
            return
        remaining = [f for f in finalizers if f != names.STATUS_FINALIZER]
        patch = {"metadata": {"finalizers": remaining or None,
                              "labels": {names.REPORTED: names.REPORTED_COMPLETE},
                              "resourceVersion": metadata.get("resourceVersion")}}  # fmt: skip
        try:
            self.batch.patch_namespaced_job(
                coalescing.name_of(job), self.state.namespace, patch,
                _preload_content=False, _request_timeout=(2, 10),
            )  # fmt: skip
        except ApiException as exc:
            if exc.status not in (404, 409):  # 409: changed since listed; next pass retries
                raise


def last_termination_message(core: client.CoreV1Api, namespace: str, job: str) -> str | None:
    """The termination message of the newest terminated pod of `job`."""
    answer = core.list_namespaced_pod(
        namespace, label_selector=f"job-name={job}", _preload_content=False,
        _request_timeout=(2, 10),
    )  # fmt: skip
    pods = orjson.loads(answer.data)["items"]  # type: ignore[attr-defined]
    pods.sort(key=lambda p: (p.get("metadata") or {}).get("creationTimestamp") or "")
    for pod in reversed(pods):
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            terminated = (status.get("state") or {}).get("terminated")
            if terminated and terminated.get("message"):
                return str(terminated["message"])
    return None


def _label(job: Mapping[str, Any], key: str) -> str | None:
    value = ((job.get("metadata") or {}).get("labels") or {}).get(key)
    return str(value) if value else None


def identity() -> str:
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"


def start_reporting(state: ReceiverState) -> list[threading.Event]:
    """Start the leader election and the reporter; returns their stop events."""
    elector = LeaderElector(
        state.api,
        state.namespace,
        identity(),
        on_change=lambda leading: state.metrics.leader.set(1 if leading else 0),
    )
    reporter = Reporter(state, elector)
    threading.Thread(target=elector.run, name="leader-election", daemon=True).start()
    threading.Thread(target=reporter.run, name="status-reporter", daemon=True).start()
    threading.Thread(target=reporter.release_loop, name="job-releaser", daemon=True).start()
    state.elector = elector
    return [elector.stop, reporter.stop]
