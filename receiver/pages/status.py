"""`GET /`: one plain HTML page with every target's state and the recent runs.

The page reads only what the receiver already may (its Jobs, CronJobs and record Leases), shows
no Secret and no configuration secret, needs no JavaScript or external asset, and escapes every
value: refs, messages and names come from payloads and Git. Set HOOKSYNC_STATUS_TOKEN (or
HOOKSYNC_STATUS_TOKEN_FILE) to require `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import datetime
import hmac
import html
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route
from urllib3.exceptions import HTTPError as Urllib3Error

from hooksync import names
from hooksync.config import Config, Target
from hooksync.refs import is_valid_sha
from hooksync.schedule import CronError, next_fire_time
from hooksync.summary import RunSummary
from hooksync.times import parse_rfc3339
from receiver.app import ReceiverState
from receiver.dispatch import coalescing
from receiver.dispatch.dispatcher import job_selector, list_jobs
from receiver.reporting import records
from receiver.reporting.links import run_url
from receiver.reporting.records import TargetRecord
from receiver.reporting.statuses import job_failure_reason

STATUS_TOKEN_ENV = "HOOKSYNC_STATUS_TOKEN"  # noqa: S105 - the variable's name, not a token
RECENT_RUNS = 20
REFRESH_SECONDS = 30
API_TIMEOUT = (2.0, 5.0)

# No script may run, whatever a value slips through; styles are inline, nothing is fetched.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

_STYLE = (
    "body{font:14px/1.45 system-ui,sans-serif;margin:1.5rem;color:#222}"
    "table{border-collapse:collapse;margin-bottom:2rem}"
    "td,th{padding:.3rem .9rem .3rem 0;text-align:left;vertical-align:top;"
    "border-bottom:1px solid #e4e4e4}th{font-weight:600}small{color:#666}"
    ".success,.no-op,.succeeded{color:#17692c}.failure,.failed,.lease-held{color:#b3261e}"
    ".running,.waiting{color:#8a5a00}code{font-size:13px}"
)

LinkFor = Callable[[str], str | None]


@dataclass(frozen=True)
class StatusInputs:
    """What the page is made of, as the API server returned it."""

    records: Mapping[str, TargetRecord]
    jobs: Sequence[Mapping[str, Any]]
    cronjobs: Sequence[Mapping[str, Any]]


# -- the route (I/O) -------------------------------------------------------------------------


def status_page_route(state: ReceiverState, tokens: Sequence[str] = ()) -> Route:
    """The `/` route; with `tokens`, only a request bearing one of them sees the page."""

    async def status_page(request: Request) -> Response:
        if tokens and not authorized(request.headers.get("authorization"), tokens):
            return PlainTextResponse(
                "a bearer token is required (HOOKSYNC_STATUS_TOKEN)\n",
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="hooksync"'},
            )
        try:
            inputs = await run_in_threadpool(gather, state)
        except (ApiException, Urllib3Error, OSError):
            return PlainTextResponse("API server unreachable; try again shortly\n",
                                     status_code=503, headers={"Retry-After": "10"})  # fmt: skip
        now = datetime.datetime.fromtimestamp(state.clock(), datetime.UTC)
        keys = state.secrets.link_keys
        config = state.config

        def link(job: str) -> str | None:
            return run_url(config.public_url, keys[0], job) if keys else None

        return HTMLResponse(render(config, inputs, now, link), headers=HEADERS)

    return Route("/", status_page, methods=["GET"])


def authorized(header: str | None, tokens: Sequence[str]) -> bool:
    """Whether an Authorization header carries one of `tokens` as a Bearer token."""
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return False
    presented = given.strip().encode()
    matched = False
    for token in tokens:  # every token is compared, so timing does not tell which matched
        matched |= hmac.compare_digest(presented, token.encode())
    return matched


def gather(state: ReceiverState) -> StatusInputs:
    """Three list calls: hooksync's Jobs, its resync CronJobs and the record Leases."""
    batch = client.BatchV1Api(state.api)
    cronjobs = batch.list_namespaced_cron_job(
        state.namespace, label_selector=job_selector(mode="resync"),
        _preload_content=False, _request_timeout=API_TIMEOUT,
    )  # fmt: skip
    return StatusInputs(
        records=records.load(state.api, state.namespace),
        jobs=list_jobs(batch, state.namespace, job_selector(), API_TIMEOUT),
        cronjobs=json.loads(cronjobs.data)["items"],  # type: ignore[attr-defined]
    )


# -- what to show (pure) ---------------------------------------------------------------------


def commit_url(config: Config, target: Target, sha: str) -> str | None:
    """The commit's page on the Git host, from the API URL the configuration names."""
    if not is_valid_sha(sha):
        return None
    if target.provider == "github":
        api = config.github_api_url.rstrip("/")
        if urlsplit(api).netloc == "api.github.com":
            base = "https://github.com"
        else:  # GitHub Enterprise serves its API at https://host/api/v3
            base = api.removesuffix("/api/v3")
        return f"{base}/{target.repo}/commit/{sha}"
    if target.provider == "gitea":
        return f"{config.gitea_api_url.removesuffix('/api/v1')}/{target.repo}/commit/{sha}"
    base = config.gitlab_api_url.rstrip("/").removesuffix("/api/v4")
    return f"{base}/{target.repo}/-/commit/{sha}"


def job_state(job: Mapping[str, Any]) -> str:
    """waiting | running | succeeded | failed."""
    if coalescing.is_finished(job):
        return "failed" if job_failure_reason(job) else "succeeded"
    return "waiting" if coalescing.is_suspended(job) else "running"


def job_summary(job: Mapping[str, Any]) -> RunSummary | None:
    text = ((job.get("metadata") or {}).get("annotations") or {}).get(names.SUMMARY)
    return RunSummary.from_json(text) if text else None


def target_record(
    target: str,
    recorded: TargetRecord | None,
    jobs: Sequence[Mapping[str, Any]],
    now: datetime.datetime,
) -> TargetRecord | None:
    """The target's record, brought up to date with finished Jobs the leader has not recorded
    yet (a summary annotation is there, or the Job failed outright)."""
    candidates: list[TargetRecord | None] = [recorded]
    for job in jobs:
        if _label(job, names.TARGET) != target or not coalescing.is_finished(job):
            continue
        summary = job_summary(job)
        failed = job_failure_reason(job) is not None
        if summary is None and not failed:
            continue  # finished, but its summary has not been read yet
        result = "failure" if failed or summary is None else summary.result
        candidates.append(records.record_from_run(job, result, summary, now))
    return records.newest(candidates)


def render(config: Config, inputs: StatusInputs, now: datetime.datetime, run_link: LinkFor) -> str:
    """The whole page's HTML (pure; every value escaped)."""
    schedules = {
        _label(c, names.TARGET) or "": str((c.get("spec") or {}).get("schedule") or "")
        for c in inputs.cronjobs
    }
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<meta http-equiv='refresh' content='{REFRESH_SECONDS}'>",
        f"<title>hooksync</title><style>{_STYLE}</style></head><body>",
        f"<h1>hooksync</h1><p><small>as of {_e(_stamp(now))}</small></p>",
        "<h2>Targets</h2><table id='targets'><thead><tr><th>target</th><th>source</th>"
        "<th>namespace</th><th>applied</th><th>last result</th><th>drifted</th>"
        "<th>now</th><th>next resync</th></tr></thead><tbody>",
    ]
    for target in config.targets:
        record = target_record(target.name, inputs.records.get(target.name), inputs.jobs, now)
        parts.append(_target_row(config, target, record, inputs.jobs,
                                 schedules.get(target.name), now, run_link))  # fmt: skip
    parts.append("</tbody></table>")
    parts.append(_runs_table(inputs.jobs, now, run_link))
    parts.append("</body></html>")
    return "".join(parts)


def recent_runs(jobs: Sequence[Mapping[str, Any]], limit: int = RECENT_RUNS) -> list[Any]:
    """The newest `limit` Jobs, newest first."""
    return sorted(
        jobs,
        key=lambda j: (str((j.get("metadata") or {}).get("creationTimestamp") or ""),
                       coalescing.name_of(j)),
        reverse=True,
    )[:limit]  # fmt: skip


def _target_row(
    config: Config,
    target: Target,
    record: TargetRecord | None,
    jobs: Sequence[Mapping[str, Any]],
    schedule: str | None,
    now: datetime.datetime,
    run_link: LinkFor,
) -> str:
    source = (
        f"{_e(target.repo)} <small>({_e(target.provider)})</small><br>"
        f"branch <code class='branch'>{_e(target.branch)}</code>"
    )
    applied = "<small>nothing yet</small>"
    result = "<small>no run recorded</small>"
    drifted = "-"
    if record is not None:
        if record.applied_sha:
            url = commit_url(config, target, record.applied_sha)
            sha = f"<code class='sha'>{_e(record.applied_sha[:12])}</code>"
            if url:
                sha = f"<a href='{_e(url)}' title='{_e(record.applied_sha)}'>{sha}</a>"
            applied = f"{sha}<br><small>{_e(_age(record.applied_at, now))}</small>"
        result = (
            f"<span class='result {_e(record.result)}'>{_e(record.result)}</span> "
            f"<small>{_e(record.mode)}, {_e(_age(record.finished, now))}</small>"
            f"<br>{_job_link(record.job, run_link)}"
        )
        if record.message:
            result += f"<br><small class='message'>{_e(record.message)}</small>"
        if record.drifted is not None:
            drifted = str(record.drifted)
    active = [
        f"<span class='{job_state(j)}'>{job_state(j)}</span> "
        + _job_link(coalescing.name_of(j), run_link)
        for j in jobs
        if _label(j, names.TARGET) == target.name and not coalescing.is_finished(j)
    ]
    return (
        f"<tr id='target-{_e(target.name)}'><td><strong>{_e(target.name)}</strong></td>"
        f"<td>{source}</td><td><code class='namespace'>{_e(target.namespace)}</code></td>"
        f"<td class='applied'>{applied}</td><td class='last-result'>{result}</td>"
        f"<td class='drifted'>{_e(drifted)}</td>"
        f"<td class='active'>{'<br>'.join(active) or '<small>idle</small>'}</td>"
        f"<td class='next-resync'>{_next_resync(schedule, target, now)}</td></tr>"
    )


def _next_resync(schedule: str | None, target: Target, now: datetime.datetime) -> str:
    if schedule is None:
        if target.resync:
            return f"<small>CronJob for {_e(target.resync)} not created yet</small>"
        return "<small>off</small>"
    try:
        when = next_fire_time(schedule, now)
    except CronError:
        return f"<small>schedule {_e(schedule)} not understood</small>"
    if when is None:
        return f"<small>{_e(schedule)} never fires</small>"
    return (
        f"<time datetime='{when.strftime('%Y-%m-%dT%H:%MZ')}'>{_e(_stamp(when))}</time>"
        f"<br><small>{_e(schedule)}</small>"
    )


def _runs_table(
    jobs: Sequence[Mapping[str, Any]], now: datetime.datetime, run_link: LinkFor
) -> str:
    rows = []
    for job in recent_runs(jobs):
        metadata = job.get("metadata") or {}
        summary = job_summary(job)
        state = job_state(job)
        shas = coalescing.job_shas(job)
        commits = _e(shas[0][:7]) if shas else ""
        if len(shas) > 1:
            commits += f" <small>+{len(shas) - 1}</small>"
        # The run's own word once it has one (success, no-op, failure), else the Job's state.
        word = summary.result if summary is not None else state
        outcome = f"<span class='result {_e(word)}'>{_e(word)}</span>"
        message = summary.message if summary else (job_failure_reason(job) or "")
        rows.append(
            f"<tr><td>{_job_link(coalescing.name_of(job), run_link)}</td>"
            f"<td>{_e(_label(job, names.TARGET) or '')}</td>"
            f"<td>{_e(_label(job, names.MODE) or '')}</td>"
            f"<td>{outcome}</td><td><code>{commits}</code></td>"
            f"<td>{_e(_age(metadata.get('creationTimestamp'), now))}</td>"
            f"<td class='message'>{_e(message)}</td></tr>"
        )
    if not rows:
        return "<h2>Recent runs</h2><p><small>no runs kept</small></p>"
    return (
        f"<h2>Recent runs</h2><table id='runs'><thead><tr><th>run</th><th>target</th>"
        "<th>mode</th><th>state</th><th>commit</th><th>created</th><th>message</th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _job_link(job: str, run_link: LinkFor) -> str:
    if not job:
        return ""
    url = run_link(job)
    text = f"<code>{_e(job)}</code>"
    return f"<a href='{_e(url)}'>{text}</a>" if url else text


def _age(value: str | None, now: datetime.datetime) -> str:
    """`value` (RFC 3339) as "5m ago"; empty when unknown."""
    then = parse_rfc3339(value)
    if then is None:
        return ""
    seconds = int(now.timestamp() - then)
    if seconds < 0:
        return "just now"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def _stamp(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _label(job: Mapping[str, Any], key: str) -> str | None:
    value = ((job.get("metadata") or {}).get("labels") or {}).get(key)
    return str(value) if value else None


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)
