"""`GET /runs/{job}?sig=...`: one run's page, for whoever holds a signed, unexpired link.

Everything shown is HTML-escaped: refs, messages and object names come from payloads and Git.
The page reads the Job's whole log (up to LOG_LIMIT_BYTES) for the per-object diffs a preview
logs and the outcomes an apply logs (`hooksync.diffs`), and shows the log as readable lines.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hooksync import diffs, names
from hooksync.summary import RunSummary
from receiver import jobview
from receiver.jobapi import ApiUnavailable, JobApi
from receiver.pages._html import document, e, page_response, text_response
from receiver.pages.runlog import log_html, outcomes_html, preview_html
from receiver.reporting.links import LinkError, check_run
from receiver.state import ReceiverState

# A run's log is read from its start up to this many bytes: enough for hundreds of objects'
# diffs (each is cut at diffs.TEXT_LIMIT characters), bounded for the receiver's memory.
LOG_LIMIT_BYTES = 4 * 2**20
# When the log is longer than that, its last lines are read too, where a failure is told.
LOG_LINES = 40
LOG_UNAVAILABLE = "(log not available)"


@dataclass(frozen=True)
class RunInputs:
    """What the page is made of, as the API server returned it."""

    job: jobview.Job
    summary: RunSummary | None
    log: str


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
        return page_response(page(inputs.job, inputs.summary, inputs.log))

    return Route("/runs/{job}", run_page, methods=["GET"])


def gather(jobs: JobApi, name: str) -> RunInputs | None:
    """The Job, its summary (saved on it, else its last pod's message) and its log (from the
    start, bounded; with its last lines when longer); None when there is no such Job."""
    job = jobs.read_job(name)
    if job is None:
        return None
    summary = jobview.summary(job)
    if summary is None:
        message = jobs.last_termination_message(name)
        summary = RunSummary.from_json(message) if message else None
    try:
        log = jobs.read_log(name, LOG_LIMIT_BYTES)
        if len(log.encode()) >= LOG_LIMIT_BYTES:
            log = joined_log(log, jobs.log_tail(name, LOG_LINES))
    except ApiUnavailable:
        log = LOG_UNAVAILABLE
    return RunInputs(job, summary, log)


def joined_log(head: str, tail: str) -> str:
    """Pure: a log cut at LOG_LIMIT_BYTES, its partial last line dropped, and its last lines."""
    kept = head[: head.rfind("\n") + 1]
    return f"{kept}… (log cut at {LOG_LIMIT_BYTES // 2**20} MiB; its last lines follow)\n{tail}"


# -- what to show (pure) ---------------------------------------------------------------------


def page(job: jobview.Job, summary: RunSummary | None, log: str) -> str:
    """The run page's HTML (pure, every value escaped). A preview says what it would do."""
    metadata = job.get("metadata") or {}
    annotations = jobview.annotations_of(job)
    status = job.get("status") or {}
    name = jobview.name_of(job)
    state = jobview.state(job)
    mode = jobview.label(job, names.MODE) or (summary.mode if summary else "") or ""
    preview = mode == "preview"
    rows = [
        ("target", e(jobview.label(job, names.TARGET) or "")),
        ("mode", e(mode)),
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
    lines = log.splitlines()
    if summary is not None:
        result = jobview.run_result(job, summary)
        parts.append(
            f"<h2>Result: <span class='result {e(result)}'>{e(result)}</span></h2>"
            f"<p>{e(summary.message)}</p><p>{e(counts_text(summary.counts, preview))}</p>"
        )
        if failure and result != summary.result:
            parts.append(f"<p>{e(failure)}</p>")
        if summary.sha and preview:
            parts.append(
                f"<p>checked <code>{e(summary.sha)}</code> with a dry run: nothing was changed</p>"
            )
        elif summary.sha:
            parts.append(f"<p>converged <code>{e(summary.sha)}</code></p>")
        if summary.objects:
            items = "".join(f"<li><code>{e(o)}</code></li>" for o in summary.objects)
            heading = "Objects it would touch" if preview else "Objects touched"
            parts.append(f"<h3>{heading}</h3><ul>{items}</ul>")
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
    if preview:
        parts.append(f"<h3>What applying it would change</h3>{preview_html(diffs.from_log(lines))}")
    else:
        outcomes = diffs.outcomes_from_log(lines)
        if outcomes:
            parts.append(f"<h3>What it did, object by object</h3>{outcomes_html(outcomes)}")
    parts.append(f"<h3>Log</h3>{log_html(log)}")
    return document(f"hooksync run {name}", "".join(parts))


# How the summary's counts read: a preview's say what it would do.
WOULD_COUNTS = {"created": "would create", "configured": "would change", "pruned": "would prune"}


def counts_text(counts: dict[str, int], preview: bool) -> str:
    """Pure: "created 1, configured 0, ..."; for a preview "would create 1, would change 0"."""
    said = WOULD_COUNTS if preview else {}
    return ", ".join(f"{said.get(key, key)} {value}" for key, value in counts.items())
