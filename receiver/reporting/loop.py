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
from dataclasses import replace
from typing import Any

from hooksync import diffs, logs, names
from hooksync.config import Config, ConfigError, Target
from hooksync.leases import holder_identity
from hooksync.providers import Provider
from hooksync.summary import RunSummary
from hooksync.times import parse_rfc3339
from receiver import jobview
from receiver.dispatch.coalescing import BurstWindow, to_release
from receiver.jobapi import ApiUnavailable, job_selector
from receiver.reporting import comments, history, records
from receiver.reporting.deployments import (
    DeploymentUpdate,
    GitHubDeployments,
    GitLabDeployments,
)
from receiver.reporting.events import JobEvents, completed_by, termination_message
from receiver.reporting.githosts import (
    GiteaStatuses,
    GitHubStatuses,
    GitLabStatuses,
    HostRejected,
    HostUnavailable,
)
from receiver.reporting.leader import LeaderElector
from receiver.reporting.links import run_link
from receiver.reporting.pullcomments import GiteaComments, GitHubComments, GitLabComments
from receiver.reporting.statuses import (
    StatusReport,
    carried_shas,
    final_reports,
    owned_reports,
    pending_reports,
    reports_at_exit,
)
from receiver.state import ReceiverState

log = logging.getLogger("hooksync.receiver")

POLL_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 300.0
# How long one Job's statuses may take of a pass before the pass moves on.
JOB_BUDGET_SECONDS = 5.0
# How long, from its first, a pass starts writes to the Git hosts. The hosts pace writes (about
# one a second on GitHub), so after a burst a pass could spend minutes on them, and the Jobs
# that need none (a no-op resync: a record, a label) would wait behind them. Past this, the
# pass does only those; the writes go on in the next pass, which follows at once.
PASS_HOST_SECONDS = 3.0
# How much of a preview's log is read for its diffs (they come before its summary).
DIFF_LOG_BYTES = 4 * 1024 * 1024
# A comment or deployment the host cannot take now is tried this many times (paced like
# statuses), then given up: it must not hold the Job's end for long.
HOST_WRITE_ATTEMPTS = 3
DONE = "done"


class Reporter:
    """One pass every POLL_SECONDS while this replica leads."""

    def __init__(self, state: ReceiverState, elector: LeaderElector) -> None:
        self.state = state
        self.elector = elector
        self.jobs = state.jobs
        self.stop = threading.Event()
        self._hosts: dict[str, Any] = {}
        self._extras: dict[tuple[str, str], Any] = {}
        self._hosts_config: Config | None = None
        self._not_before: dict[str, float] = {}
        self._host_until: float | None = None  # this pass starts no host write after this
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
                jobs = [job for job in self._unreported() if jobview.mode_of(job) == "apply"]
                window = BurstWindow.of(self.state.config)
                for job in to_release(jobs, time.time(), window):
                    self.jobs.release(jobview.name_of(job))
            except Exception as exc:  # the next tick retries
                log.debug("release pass failed", extra={"reason": str(exc)})

    def _unreported(self) -> list[dict[str, Any]]:
        """The Jobs not reported yet: as the watch keeps them, or listed while it cannot.
        Reported Jobs stay until their TTL; they need nothing more, so they are not listed."""
        kept = self.state.kept.jobs.items() if self.state.kept is not None else None
        return kept if kept is not None else self.jobs.list_jobs(job_selector(unreported=True))

    def pass_once(self) -> None:
        self._host_until = None
        jobs = self._unreported()
        # Waiting Jobs are released by release_loop, which posting statuses cannot delay.
        self._carried = carried_shas(jobs)
        listed = {jobview.name_of(job) for job in jobs}
        self.events.retain(listed)
        self._ended &= listed
        # Ended runs first: their final statuses are what people wait for, and the host paces
        # writes, so the pending statuses of queued commits must not hold them back.
        jobs.sort(key=lambda job: not self._ended_run(job))
        for job in jobs:
            if self.stop.is_set() or not self.elector.leading():
                return
            # A pod that exited 0 has ended the run, about a second before the Job controller
            # marks the Job Complete: its own commits' final statuses go out now.
            pod = self.events.succeeded_pod(jobview.name_of(job))
            ended = completed_by(job, pod) if pod is not None else None
            if ended is not None:
                self.report_own(*ended)
            else:
                # Its summary is the pod's termination message, when the watch has the pod.
                self.report(job, termination_message(pod) if pod is not None else None)
        if self._host_until is not None and time.monotonic() > self._host_until:
            self.state.job_created.set()  # host writes may be waiting: the next pass at once

    def _ended_run(self, job: dict[str, Any]) -> bool:
        """Whether `job` has ended, or its pod has exited 0."""
        if jobview.is_finished(job):
            return True
        return self.events.succeeded_pod(jobview.name_of(job)) is not None

    # -- one Job -------------------------------------------------------------------------

    def report(self, job: dict[str, Any], message: str | None = None) -> None:
        """Post what `job` calls for now; `message` is its pod's termination message when
        already known."""
        name = jobview.name_of(job)
        annotations = jobview.annotations_of(job)
        target = self._target(jobview.label(job, names.TARGET))
        if annotations.get(names.REPORTED) == names.REPORTED_COMPLETE or target is None:
            self._finish(job)
            return
        if not jobview.is_finished(job):
            posted = self._post_all(target, name, pending_reports(job))
            if posted:
                done = jobview.annotation_list(job, names.REPORTED_PENDING) + posted
                self._annotate(name, {names.REPORTED_PENDING: ",".join(dict.fromkeys(done))})
            if jobview.state(job) == "running":
                self._start_deployment(job, target)
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
                self._annotate(name, {names.REPORTED_FINAL: record})
            return
        if not self._after_statuses(job, target, summary):
            # Statuses are all out; a comment or deployment waits for the host's pace.
            self._annotate(name, {names.REPORTED_FINAL: ",".join(r.sha for r in reports)})
            return
        self._record_result(job, target, summary)
        updated = self._annotate(
            name,
            {
                names.REPORTED: names.REPORTED_COMPLETE,
                names.REPORTED_FINAL: ",".join(r.sha for r in reports),
            },
        )
        self._ended.discard(name)
        if updated is not None:
            self._finish(updated)

    def report_own(self, job: dict[str, Any], message: str | None) -> None:
        """Post the final statuses of the commits `job` itself stands for, from its pod that
        exited 0 (`job` as it will be once Complete, `message` the pod's summary).

        Only its own commits (`reports_at_exit`); a newer head it deployed, the comment or
        deployment and the Job's own end wait for Complete (`report`).
        """
        name = jobview.name_of(job)
        annotations = jobview.annotations_of(job)
        target = self._target(jobview.label(job, names.TARGET))
        if annotations.get(names.REPORTED) == names.REPORTED_COMPLETE or target is None:
            return
        if name not in self._ended:
            self._ended.add(name)
            log.info("job ended", extra=logs.extra(job=name, target=target.name))
        already = jobview.annotation_list(job, names.REPORTED_FINAL)
        summary = self._summary(job, message)
        todo = reports_at_exit(job, final_reports(job, summary, None))
        posted = self._post_all(target, name, todo)
        if posted:
            record = ",".join(dict.fromkeys([*already, *posted]))
            self._annotate(name, {names.REPORTED_FINAL: record})

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
            if self._host_waits(provider) or (posted and now > budget_ends):
                break
            try:
                self._host(provider).post(target.repo, report, self._link(job))
            except HostUnavailable as exc:
                self._back_off(provider, exc)
                wait = max(0.0, self._not_before[provider] - time.monotonic())
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

    # -- comments and deployments, after the statuses ------------------------------------

    def _after_statuses(
        self, job: dict[str, Any], target: Target, summary: RunSummary | None
    ) -> bool:
        """Write the preview's comment or the apply's final deployment state; False while one
        waits for the host (rate limit, outage), to be tried in a later pass."""
        mode = jobview.mode_of(job)
        done = True
        if mode == "preview" and target.preview_comments:
            done = self._host_write(job, target, "comment", names.COMMENT, self._comment) and done
        if mode == "apply" and target.deployments is not None:
            done = (
                self._host_write(
                    job, target, "deployment", names.DEPLOYMENT_FINAL, self._finish_deployment
                )
                and done
            )
        return done

    def _host_write(
        self,
        job: dict[str, Any],
        target: Target,
        kind: str,
        key: str,
        write: Any,
    ) -> bool:
        """Run `write(job, target)` once for this Job, recording its fate under `key`. A
        failure is logged in one line and counted, never raised: statuses are already out."""
        name = jobview.name_of(job)
        fate = jobview.annotations_of(job).get(key, "")
        if not fate.isdigit() and fate:
            return True  # done, or given up
        if self._host_waits(target.provider):
            return False
        tries = int(fate or 0) + 1
        metric = self.state.metrics.host_writes
        try:
            write(job, target)
        except HostUnavailable as exc:
            metric.labels(target.provider, kind, "retry").inc()
            self._back_off(target.provider, exc)
            given_up = tries >= HOST_WRITE_ATTEMPTS
            log.warning(
                f"{kind} not written" + ("; giving up" if given_up else "; will retry"),
                extra=logs.extra(job=name, target=target.name, reason=str(exc)),
            )
            self._annotate(name, {key: "gave-up" if given_up else str(tries)})
            return given_up
        except ApiUnavailable:
            raise  # the API server is away (reading the log): the next pass tries again
        except Exception as exc:  # rejected, or a bug: one line, never the status's problem
            metric.labels(target.provider, kind, "failed").inc()
            log.error(
                f"{kind} not written",
                extra=logs.extra(job=name, target=target.name, reason=_reason(exc)),
            )
            self._annotate(name, {key: "failed"})
            return True
        self._failures[target.provider] = 0
        metric.labels(target.provider, kind, "posted").inc()
        self._annotate(name, {key: DONE})
        return True

    def _comment(self, job: dict[str, Any], target: Target) -> None:
        number = jobview.annotations_of(job).get(names.PULL_REQUEST, "")
        if not number.isdigit() or int(number) < 1:
            return  # a preview without a request to comment on (a manual run)
        name = jobview.name_of(job)
        summary = self._summary(job)
        if summary is None:
            line = f"preview failed: {jobview.failure_reason(job) or 'no summary'}"
        else:
            line = summary.message
        found = diffs.from_log(self.jobs.read_log(name, DIFF_LOG_BYTES).splitlines())
        sha = jobview.annotations_of(job).get(names.SHA) or (summary.sha if summary else "") or ""
        limit = comments.LIMITS[target.provider]
        text = comments.comment_text(target.name, sha, line, found, self._link(name), limit)
        outcome = self._extra(target.provider, "comment").upsert(
            target.repo, int(number), target.name, text
        )
        log.info(
            "preview comment written",
            extra=logs.extra(job=name, target=target.name, outcome=outcome, objects=len(found)),
        )

    def _start_deployment(self, job: dict[str, Any], target: Target) -> None:
        """Open the deployment of a running apply Job, once (its id goes on the Job)."""
        settings = target.deployments
        if settings is None or jobview.mode_of(job) != "apply" or target.provider == "gitea":
            return
        if jobview.annotations_of(job).get(names.DEPLOYMENT):
            return
        sha = jobview.annotations_of(job).get(names.SHA)
        if not sha or self._host_waits(target.provider):
            return
        name = jobview.name_of(job)
        host = self._extra(target.provider, "deployment")
        metric = self.state.metrics.host_writes
        try:
            deployment = host.create(target.repo, sha, target.branch, settings)
            self._annotate(name, {names.DEPLOYMENT: deployment})
            running = DeploymentUpdate("running", "applying the branch head", self._link(name))
            host.update(target.repo, deployment, settings, running)
        except ApiUnavailable:
            raise
        except HostUnavailable as exc:
            metric.labels(target.provider, "deployment", "retry").inc()
            self._back_off(target.provider, exc)
            log.warning(
                "deployment not started; will retry",
                extra=logs.extra(job=name, target=target.name, reason=str(exc)),
            )
            return
        except Exception as exc:
            metric.labels(target.provider, "deployment", "failed").inc()
            log.error(
                "deployment not started",
                extra=logs.extra(job=name, target=target.name, reason=_reason(exc)),
            )
            self._annotate(name, {names.DEPLOYMENT: "failed"})
            return
        metric.labels(target.provider, "deployment", "posted").inc()

    def _finish_deployment(self, job: dict[str, Any], target: Target) -> None:
        """The final state of the apply's deployment, on the deployment of the SHA it applied
        (made now when the Job ran too briefly to be seen running, or applied a newer head)."""
        settings = target.deployments
        if settings is None or target.provider == "gitea":
            return
        name = jobview.name_of(job)
        summary = self._summary(job)
        host = self._extra(target.provider, "deployment")
        result = jobview.run_result(job, summary)
        ok = result in ("success", "no-op")
        message = summary.message if summary else (jobview.failure_reason(job) or "failed")
        final = DeploymentUpdate("success" if ok else "failure", message, self._link(name))
        opened = jobview.annotations_of(job).get(names.DEPLOYMENT, "")
        own_sha = jobview.annotations_of(job).get(names.SHA)
        applied = summary.sha if summary and summary.sha else own_sha
        if opened.isdigit() and applied and applied != own_sha and ok:
            # The Job converged a newer head than its push: that head is what was deployed.
            included = DeploymentUpdate("success", f"included in {applied[:7]}", final.log_url)
            host.update(target.repo, opened, settings, included)
            opened = ""
        if not opened.isdigit():
            if not applied:
                return
            opened = host.create(target.repo, applied, target.branch, settings)
            self._annotate(name, {names.DEPLOYMENT: opened})
        host.update(target.repo, opened, settings, final)

    def _host_waits(self, provider: Provider) -> bool:
        """Whether a write to `provider`'s host waits for a later pass: the host asked to
        back off, or this pass has had its PASS_HOST_SECONDS of host writes."""
        now = time.monotonic()
        if now < self._not_before.get(provider, 0.0):
            return True
        if self._host_until is None:
            self._host_until = now + PASS_HOST_SECONDS
        return now > self._host_until

    def _back_off(self, provider: Provider, exc: HostUnavailable) -> None:
        failures = self._failures.get(provider, 0) + 1
        self._failures[provider] = failures
        wait = max(exc.retry_after, min(MAX_BACKOFF_SECONDS, 2.0 ** (failures - 1)))
        self._not_before[provider] = time.monotonic() + wait

    def _extra(self, provider: Provider, kind: str) -> Any:
        """The client for `kind` (comment, deployment) writes on `provider`'s host."""
        self._host(provider)  # drops every cached client when the configuration changed
        key = (provider, kind)
        if key not in self._extras:
            config, secrets = self.state.config, self.state.secrets
            if kind == "comment":
                if provider == "github":
                    self._extras[key] = GitHubComments(config, secrets.github_token)
                elif provider == "gitea":
                    self._extras[key] = GiteaComments(config, secrets.gitea_token)
                else:
                    self._extras[key] = GitLabComments(config, secrets.gitlab_token)
            elif provider == "github":
                self._extras[key] = GitHubDeployments(config, secrets.github_token)
            else:
                self._extras[key] = GitLabDeployments(config, secrets.gitlab_token)
        return self._extras[key]

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
            self._annotate(name, {names.SUMMARY: summary.to_json()})
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
        # The statuses are out: a record or a run missing from the page only dims it.
        if record is not None:
            try:
                name = names.record_name(record.target)
                self._remember_lease(
                    records.save(self.state.api, self.state.namespace, record, self._lease(name))
                )
            except Exception as exc:
                log.warning(
                    "target record not saved",
                    extra=logs.extra(job=record.job, target=target.name, reason=str(exc)),
                )
        try:
            run = replace(history.run_of(job, summary), result=result)
            known = self._lease(names.RECENT_RUNS_LEASE_NAME)
            self._remember_lease(history.add(self.state.api, self.state.namespace, run, known))
        except Exception as exc:
            log.warning(
                "run not kept among the recent runs",
                extra=logs.extra(job=jobview.name_of(job), target=target.name, reason=str(exc)),
            )

    # -- small I/O helpers ---------------------------------------------------------------

    def _annotate(self, name: str, annotations: dict[str, str]) -> dict[str, Any] | None:
        """Annotate the Job, and keep what the write returned: the next pass must see it even
        before the watch does."""
        updated = self.jobs.annotate(name, annotations)
        if updated is not None and self.state.kept is not None:
            self.state.kept.jobs.remember(updated)
        return updated

    def _lease(self, name: str) -> dict[str, Any] | None:
        """The Lease as this replica last saw or wrote it (saves a read before a write)."""
        return self.state.kept.leases.get(name) if self.state.kept is not None else None

    def _remember_lease(self, lease: dict[str, Any] | None) -> None:
        if lease is not None and self.state.kept is not None:
            self.state.kept.leases.remember(lease)

    def _finish(self, job: dict[str, Any]) -> None:
        finished = self.jobs.finish(job)
        if finished is not None and self.state.kept is not None:
            self.state.kept.jobs.remember(finished)

    def _target(self, name: str | None) -> Target | None:
        try:
            return self.state.config.target(name or "")
        except ConfigError:
            return None

    def _host(self, provider: Provider) -> Any:
        if self._hosts_config is not self.state.config:
            self._hosts = {}
            self._extras = {}
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


def _reason(exc: Exception) -> str:
    """One line for the log: the exception's type and the start of its message."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


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
