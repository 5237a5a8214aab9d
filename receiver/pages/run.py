"""`GET /runs/{job}?sig=...`: one run's page, for whoever holds a signed, unexpired link.

Everything shown is HTML-escaped: refs, messages and object names come from payloads and Git.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hooksync import names
from hooksync.summary import RunSummary
from receiver import jobview
from receiver.jobapi import ApiUnavailable, JobApi
from receiver.pages._html import document, e, page_response, text_response
from receiver.reporting.links import LinkError, check_run
from receiver.state import ReceiverState

LOG_LINES = 40
LOG_UNAVAILABLE = "(log not available)"


@dataclass(frozen=True)
class RunInputs:
    """What the page is made of, as the API server returned it."""

    job: jobview.Job
    summary: RunSummary | None
    log_tail: str


# -- the route (I/O) -------------------------------------------------------------------------


def run_page_route(state: ReceiverState) -> Route:
    """The `/runs/{job}` route: a link signed with any configured link key opens it."""

    async def run_page(request: Request) -> Response:
        job = request.path_params["job"]
        signature = request.query_params.get("sig", "")
        try:
            check_run(state.secrets.link_keys, job, signature, state.config.link_ttl_seconds)
        except LinkError:
            return text_response("forbidden\n", 403)
        try:
            inputs = await run_in_threadpool(gather, state.jobs, job)
        except ApiUnavailable:
            return text_response(
                "API server unreachable; try again shortly\n", 503, {"Retry-After": "10"}
            )
        if inputs is None:
            return text_response("run not found (finished runs are kept for a while)\n", 404)
        return page_response(page(inputs.job, inputs.summary, inputs.log_tail))

    return Route("/runs/{job}", run_page, methods=["GET"])


def gather(jobs: JobApi, name: str) -> RunInputs | None:
    """The Job, its summary (saved on it, else its last pod's message) and its log's tail;
    None when there is no such Job."""
    job = jobs.read_job(name)
    if job is None:
        return None
    summary = jobview.summary(job)
    if summary is None:
        message = jobs.last_termination_message(name)
        summary = RunSummary.from_json(message) if message else None
    try:
        log_tail = jobs.log_tail(name, LOG_LINES)
    except ApiUnavailable:
        log_tail = LOG_UNAVAILABLE
    return RunInputs(job, summary, log_tail)


# -- what to show (pure) ---------------------------------------------------------------------


def page(job: jobview.Job, summary: RunSummary | None, log_tail: str) -> str:
    """The run page's HTML (pure, every value escaped)."""
    metadata = job.get("metadata") or {}
    annotations = jobview.annotations_of(job)
    status = job.get("status") or {}
    name = jobview.name_of(job)
    state = jobview.state(job)
    rows = [
        ("target", e(jobview.label(job, names.TARGET) or "")),
        ("mode", e(jobview.label(job, names.MODE) or "")),
        ("state", f"<span class='state {state}'>{state}</span>"),
        ("commits", e(", ".join(jobview.job_shas(job)))),
        ("ref", e(annotations.get(names.REF, ""))),
        ("pull request", e(annotations.get(names.PULL_REQUEST, ""))),
        ("created", e(metadata.get("creationTimestamp", ""))),
        ("started", e(status.get("startTime", ""))),
        ("finished", e(jobview.finished_time(job) or "")),
    ]
    parts = [f"<h1>Run <code>{e(name)}</code></h1><table>"]
    parts += [f"<tr><th>{e(k)}</th><td>{v}</td></tr>" for k, v in rows if v]
    parts.append("</table>")
    failure = jobview.failure_reason(job)
    if summary is not None:
        result = jobview.run_result(job, summary)
        counts = ", ".join(f"{k} {v}" for k, v in summary.counts.items())
        parts.append(
            f"<h2>Result: <span class='result {e(result)}'>{e(result)}</span></h2>"
            f"<p>{e(summary.message)}</p><p>{e(counts)}</p>"
        )
        if failure and result != summary.result:
            parts.append(f"<p>{e(failure)}</p>")
        if summary.sha:
            parts.append(f"<p>converged <code>{e(summary.sha)}</code></p>")
        if summary.objects:
            items = "".join(f"<li><code>{e(o)}</code></li>" for o in summary.objects)
            parts.append(f"<h3>Objects touched</h3><ul>{items}</ul>")
        if summary.drifted:
            items = "".join(f"<li><code>{e(o)}</code></li>" for o in summary.drifted)
            parts.append(f"<h3>Drifted</h3><ul>{items}</ul>")
    elif failure:
        parts.append(
            "<h2>Result: <span class='result failure'>failure</span></h2>"
            f"<p>the Job ended without a summary: {e(failure)}</p>"
        )
    else:
        parts.append("<h2>No summary yet</h2>")
    parts.append(f"<h3>Log (last {LOG_LINES} lines)</h3><pre>{e(log_tail) or '(empty)'}</pre>")
    return document(f"hooksync run {name}", "".join(parts))
