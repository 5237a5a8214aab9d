"""The leader's loop: watch hooksync's Jobs, release waiting ones, and post commit statuses.

What has been reported is written on the Job itself (annotations), and a finalizer keeps the
Job until its final statuses are out, so neither a restart, a new leader, nor a Git host that
is down for an hour loses or repeats a report.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from typing import Any

from hooksync import logs, names
from hooksync.config import Config, ConfigError, Target
from hooksync.leases import holder_identity
from hooksync.providers import Provider
from hooksync.summary import RunSummary
from hooksync.times import parse_rfc3339
from receiver import jobview
from receiver.dispatch.coalescing import BurstWindow, to_release
from receiver.jobapi import job_selector
from receiver.reporting import records
from receiver.reporting.events import JobEvents, completed_by
from receiver.reporting.githosts import (
    GiteaStatuses,
    GitHubStatuses,
    GitLabStatuses,
    HostRejected,
    HostUnavailable,
)
from receiver.reporting.leader import LeaderElector
from receiver.reporting.links import run_link
from receiver.reporting.statuses import (
    StatusReport,
    carried_shas,
    final_reports,
    owned_reports,
    pending_reports,
)
from receiver.state import ReceiverState

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
        self.jobs = state.jobs
        self.stop = threading.Event()
        self._hosts: dict[str, Any] = {}
        self._hosts_config: Config | None = None
        self._not_before: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._carried: dict[str, str] = {}  # SHA -> the apply Job that stands for it
        self._ended: set[str] = set()  # finished Jobs this replica has seen, until reported
        # Job and pod changes wake the loop (state.job_created) instead of waiting for a poll.
        self.events = JobEvents(
            state.api, state.namespace, state.job_created, elector.leading, self.stop
        )

    def run(self) -> None:
        while not self.stop.is_set():
            # A Job created by this replica, or any change the watch sees to a Job or its pod,
            # wakes the loop at once; the poll is the fallback while the watch is down.
            self.state.job_created.wait(POLL_SECONDS)
            self.state.job_created.clear()
            if self.stop.is_set() or not self.elector.leading():
                continue
            try:
                self.pass_once()
            except Exception as exc:  # the API server may be away; the next pass retries
                log.warning("report pass failed", extra={"reason": f"{type(exc).__name__}: {exc}"})

    def release_loop(self) -> None:
        """Release waiting Jobs promptly, apart from status posting, which the Git host paces
        (GitHub asks for a second between writes, so a backlog of statuses can take minutes)."""
        while not self.stop.wait(POLL_SECONDS):
            if not self.elector.leading():
                continue
            try:
                jobs = self.jobs.list_jobs(job_selector(mode="apply", unreported=True))
                window = BurstWindow.of(self.state.config)
                for job in to_release(jobs, time.time(), window):
                    self.jobs.release(jobview.name_of(job))
            except Exception as exc:  # the next tick retries
                log.debug("release pass failed", extra={"reason": str(exc)})

    def pass_once(self) -> None:
        # Reported Jobs stay until their TTL; they need nothing more, so they are not listed.
        jobs = self.jobs.list_jobs(job_selector(unreported=True))
        # Waiting Jobs are released by release_loop, which posting statuses cannot delay.
        self._carried = carried_shas(jobs)
        listed = {jobview.name_of(job) for job in jobs}
        self.events.retain(listed)
        self._ended &= listed
        for job in jobs:
            if self.stop.is_set() or not self.elector.leading():
                return
            # A pod that exited 0 has ended the run; the Job controller marks the Job Complete
            # only a second or so later, so report from the pod at once.
            pod = self.events.succeeded_pod(jobview.name_of(job))
            ended = completed_by(job, pod) if pod is not None else None
            if ended is not None:
                self.report(*ended)
            else:
                self.report(job)

    # -- one Job -------------------------------------------------------------------------

    def report(self, job: dict[str, Any], message: str | None = None) -> None:
        """Post what `job` calls for now; `message` is its pod's termination message when
        already known."""
        name = jobview.name_of(job)
        annotations = jobview.annotations_of(job)
        target = self._target(jobview.label(job, names.TARGET))
        if annotations.get(names.REPORTED) == names.REPORTED_COMPLETE or target is None:
            self.jobs.finish(job)
            return
        if not jobview.is_finished(job):
            posted = self._post_all(target, name, pending_reports(job))
            if posted:
                done = jobview.annotation_list(job, names.REPORTED_PENDING) + posted
                self.jobs.annotate(name, {names.REPORTED_PENDING: ",".join(dict.fromkeys(done))})
            return
        if name not in self._ended:
            # When the leader learnt of the end: a figure of the push path (job end -> status).
            self._ended.add(name)
            log.info("job ended", extra=logs.extra(job=name, target=target.name))
        summary = self._summary(job, message)
        reports = final_reports(job, summary, jobview.failure_reason(job))
        reports = owned_reports(job, reports, self._carried)
        already = set(jobview.annotation_list(job, names.REPORTED_FINAL))
        todo = [r for r in reports if r.sha not in already]
        posted = self._post_all(target, name, todo)
        if len(posted) < len(todo):
            if posted:
                record = ",".join(dict.fromkeys([*already, *posted]))
                self.jobs.annotate(name, {names.REPORTED_FINAL: record})
            return
        self._record_result(job, target, summary)
        updated = self.jobs.annotate(
            name,
            {
                names.REPORTED: names.REPORTED_COMPLETE,
                names.REPORTED_FINAL: ",".join(r.sha for r in reports),
            },
        )
        self._ended.discard(name)
        if updated is not None:
            self.jobs.finish(updated)

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
                extra=logs.extra(
                    job=job,
                    target=target.name,
                    commit=report.sha,
                    state=report.state,
                    context=report.context,
                ),
            )
            posted.append(report.sha)
        return posted

    # -- reading the run -----------------------------------------------------------------

    def _summary(self, job: dict[str, Any], message: str | None = None) -> RunSummary | None:
        """The run's summary: saved on the Job, else `message` or the last pod's termination
        message, which is then saved on the Job."""
        if names.SUMMARY in jobview.annotations_of(job):
            return jobview.summary(job)
        name = jobview.name_of(job)
        message = message or self.jobs.last_termination_message(name)
        summary = RunSummary.from_json(message) if message else None
        if summary is not None:
            self.jobs.annotate(name, {names.SUMMARY: summary.to_json()})
        return summary

    def _record_result(
        self, job: dict[str, Any], target: Target, summary: RunSummary | None
    ) -> None:
        mode = jobview.label(job, names.MODE) or "apply"
        metrics = self.state.metrics
        result = jobview.run_result(job, summary)
        metrics.converges.labels(target.name, mode, result).inc()
        status = job.get("status") or {}
        # A failed Job has no completionTime; its Failed condition says when it ended.
        started = parse_rfc3339(status.get("startTime"))
        ended = parse_rfc3339(jobview.finished_time(job))
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

    def _host(self, provider: Provider) -> Any:
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
        return run_link(self.state.config.public_url, self.state.secrets.link_keys, job)


def start_reporting(state: ReceiverState) -> list[threading.Event]:
    """Start the leader election and the reporter; returns their stop events."""
    elector = LeaderElector(
        state.api,
        state.namespace,
        holder_identity(),
        on_change=lambda leading: state.metrics.leader.set(1 if leading else 0),
    )
    reporter = Reporter(state, elector)
    threading.Thread(target=elector.run, name="leader-election", daemon=True).start()
    threading.Thread(target=reporter.run, name="status-reporter", daemon=True).start()
    reporter.events.start()
    threading.Thread(target=reporter.release_loop, name="job-releaser", daemon=True).start()
    return [elector.stop, reporter.stop]
