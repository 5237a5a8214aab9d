"""`GET /runs/{job}?sig=...`: one run's page, for whoever holds a signed, unexpired link.

Everything shown is HTML-escaped: refs, messages and object names come from payloads and Git.
"""

from __future__ import annotations

import html
import json
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from hooksync import names
from hooksync.summary import RunSummary
from receiver.app import ReceiverState
from receiver.dispatch import coalescing
from receiver.reporting.links import LinkError, check_run
from receiver.reporting.loop import last_termination_message

LOG_LINES = 40

_STYLE = (
    "body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:60rem;color:#222}"
    "table{border-collapse:collapse}td,th{padding:.2rem .8rem .2rem 0;text-align:left;"
    "vertical-align:top}pre{background:#f4f4f4;padding:.8rem;overflow-x:auto}"
    ".success,.no-op{color:#17692c}.failure{color:#b3261e}code{font-size:13px}"
)


def run_page_route(state: ReceiverState) -> Route:
    async def run_page(request: Request) -> Response:
        job = request.path_params["job"]
        signature = request.query_params.get("sig", "")
        keys = state.secrets.link_keys
        try:
            if not keys:
                raise LinkError("no link key configured")
            check_run(keys[0], job, signature, state.config.link_ttl_seconds)
        except LinkError:
            return PlainTextResponse("forbidden\n", status_code=403)
        page = await run_in_threadpool(render_run, state, job)
        if page is None:
            return PlainTextResponse("run not found (finished runs are kept for a while)\n",
                                     status_code=404)  # fmt: skip
        return HTMLResponse(page)

    return Route("/runs/{job}", run_page, methods=["GET"])


def render_run(state: ReceiverState, job_name: str) -> str | None:
    batch, core = client.BatchV1Api(state.api), client.CoreV1Api(state.api)
    try:
        answer = batch.read_namespaced_job(job_name, state.namespace, _preload_content=False,
                                           _request_timeout=(2, 5))  # fmt: skip
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    job: dict[str, Any] = json.loads(answer.data)  # type: ignore[attr-defined]
    annotations = (job.get("metadata") or {}).get("annotations") or {}
    summary_text = annotations.get(names.SUMMARY) or last_termination_message(
        core, state.namespace, job_name
    )
    summary = RunSummary.from_json(summary_text) if summary_text else None
    log_tail = _log_tail(core, state.namespace, job_name)
    return page(job, summary, log_tail)


def page(job: dict[str, Any], summary: RunSummary | None, log_tail: str) -> str:
    """The run page's HTML (pure, every value escaped)."""
    e = html.escape
    metadata = job.get("metadata") or {}
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    status = job.get("status") or {}
    state = "running"
    if coalescing.is_finished(job):
        state = "failed" if status.get("failed") and not status.get("succeeded") else "finished"
    elif coalescing.is_suspended(job):
        state = "waiting"
    rows = [
        ("target", labels.get(names.TARGET, "")),
        ("mode", labels.get(names.MODE, "")),
        ("state", state),
        ("commits", ", ".join(coalescing.job_shas(job))),
        ("ref", annotations.get(names.REF, "")),
        ("pull request", annotations.get(names.PULL_REQUEST, "")),
        ("created", metadata.get("creationTimestamp", "")),
        ("started", status.get("startTime", "")),
        ("finished", status.get("completionTime", "")),
    ]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>hooksync run {e(metadata.get('name', ''))}</title><style>{_STYLE}</style>",
        f"</head><body><h1>Run <code>{e(metadata.get('name', ''))}</code></h1><table>",
    ]
    parts += [f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in rows if v]
    parts.append("</table>")
    if summary is not None:
        counts = ", ".join(f"{k} {v}" for k, v in summary.counts.items())
        parts.append(
            f"<h2>Result: <span class='{e(summary.result)}'>{e(summary.result)}</span></h2>"
            f"<p>{e(summary.message)}</p><p>{e(counts)}</p>"
        )
        if summary.sha:
            parts.append(f"<p>converged <code>{e(summary.sha)}</code></p>")
        if summary.objects:
            items = "".join(f"<li><code>{e(o)}</code></li>" for o in summary.objects)
            parts.append(f"<h3>Objects touched</h3><ul>{items}</ul>")
        if summary.drifted:
            items = "".join(f"<li><code>{e(o)}</code></li>" for o in summary.drifted)
            parts.append(f"<h3>Drifted</h3><ul>{items}</ul>")
    else:
        parts.append("<h2>No summary yet</h2>")
    parts.append(f"<h3>Log (last {LOG_LINES} lines)</h3><pre>{e(log_tail) or '(empty)'}</pre>")
    parts.append("</body></html>")
    return "".join(parts)


def _log_tail(core: client.CoreV1Api, namespace: str, job: str) -> str:
    try:
        pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={job}",
                                        _request_timeout=(2, 5)).items  # fmt: skip
        if not pods:
            return ""
        pods.sort(key=lambda p: str(p.metadata.creation_timestamp if p.metadata else ""))
        newest = pods[-1].metadata
        if newest is None or newest.name is None:
            return ""
        text = core.read_namespaced_pod_log(newest.name, namespace, tail_lines=LOG_LINES,
                                            _request_timeout=(2, 5))  # fmt: skip
        return str(text)
    except (ApiException, OSError):
        return "(log not available)"
