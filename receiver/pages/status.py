"""`GET /`: one plain HTML page with every target's state and the recent runs.

It is made of the record Leases (each target's last result), the Jobs not reported yet
(running, waiting, just ended), the recent runs' Lease and the CronJobs of the targets on the
page, as the receiver keeps them in step with the API server (`receiver.kept`): a view reads
nothing from the API server. Reported Jobs, kept for jobTTLSeconds and thousands at fleet size,
are never read: their outcome is on the records and the recent runs.

The page reads only what the receiver already may (its Jobs, CronJobs and record Leases), shows
no Secret and no configuration secret, needs no JavaScript or external asset, and escapes every
value: refs, messages and names come from payloads and Git. Set HOOKSYNC_STATUS_TOKEN (or
HOOKSYNC_STATUS_TOKEN_FILE) to require `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import datetime
import hmac
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from urllib3.exceptions import HTTPError as Urllib3Error

from hooksync import names
from hooksync.config import Config, Target, web_base
from hooksync.refs import is_valid_sha
from hooksync.schedule import CronError, next_fire_time
from hooksync.times import parse_rfc3339
from receiver import jobview
from receiver.jobapi import ApiUnavailable, job_selector
from receiver.pages._html import document, e, page_response, text_response
from receiver.reporting import history, records
from receiver.reporting.history import Run
from receiver.reporting.links import run_link
from receiver.reporting.records import TargetRecord, UnreportedJob
from receiver.state import ReceiverState

STATUS_TOKEN_ENV = "HOOKSYNC_STATUS_TOKEN"  # noqa: S105 - the variable's name, not a token
FAILING_SHOWN = 20
# Targets per page: a fleet of a thousand is summarised on top and shown a page at a time, so
# the page stays small and quick to build (`?page=N`).
PAGE_SIZE = 50
REFRESH_SECONDS = 30
LinkFor = Callable[[str], str | None]


@dataclass(frozen=True)
class StatusInputs:
    """What the page is made of, as the API server returned it."""

    records: Mapping[str, TargetRecord]
    jobs: Sequence[Mapping[str, Any]]  # not reported yet
    cronjobs: Sequence[Mapping[str, Any]]
    runs: Sequence[Run] = ()  # the recent runs the leader keeps
    # By Job name, `records.unreported_job` of the Jobs, where already worked out.
    worked_out: Mapping[str, UnreportedJob] = field(default_factory=dict)


# -- the route (I/O) -------------------------------------------------------------------------


def status_page_route(state: ReceiverState, tokens: Sequence[str] = ()) -> Route:
    """The `/` route; with `tokens`, only a request bearing one of them sees the page."""

    async def status_page(request: Request) -> Response:
        if tokens and not authorized(request.headers.get("authorization"), tokens):
            return text_response(
                "a bearer token is required (HOOKSYNC_STATUS_TOKEN)\n",
                401,
                {"WWW-Authenticate": 'Bearer realm="hooksync"'},
            )
        config = state.config
        pages = page_count(len(config.targets))
        page = parse_page(request.query_params.get("page"), pages)
        if page is None:
            return text_response(f"page must be a whole number from 1 to {pages}\n", 400)
        shown = page_targets(config, page)
        # What the replica keeps is read in place: a hop to a worker thread and back costs
        # more than the read when the machine is busy. Only the reads go to a thread.
        inputs = kept_inputs(state, shown)
        try:
            if inputs is None:
                inputs = await run_in_threadpool(read_inputs, state, shown)
        except (ApiUnavailable, ApiException, Urllib3Error, OSError):
            return text_response(
                "API server unreachable; try again shortly\n", 503, {"Retry-After": "10"}
            )
        now = datetime.datetime.fromtimestamp(state.clock(), datetime.UTC)
        keys = state.secrets.link_keys

        def link(job: str) -> str | None:
            return run_link(config.public_url, keys, job)

        return page_response(render(config, inputs, now, link, page))

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


def kept_inputs(state: ReceiverState, shown: Sequence[Target]) -> StatusInputs | None:
    """The inputs as this replica keeps them; None while a watch is not in step. The records
    and what each Job tells of its target come worked out already (`receiver.kept`)."""
    kept = state.kept
    if kept is None:
        return None
    recorded, jobs, cronjobs = kept.leases.derived(), kept.jobs.items(), kept.cronjobs.items()
    if recorded is None or jobs is None or cronjobs is None:
        return None
    wanted = {target.name for target in shown}
    runs = kept.leases.get(names.RECENT_RUNS_LEASE_NAME)
    return StatusInputs(
        records=records.by_target(recorded.values()),
        jobs=jobs,
        cronjobs=[c for c in cronjobs if jobview.label(c, names.TARGET) in wanted],
        runs=history.from_leases([runs]) if runs is not None else [],
        worked_out=kept.jobs.derived() or {},
    )


def read_inputs(state: ReceiverState, shown: Sequence[Target]) -> StatusInputs:
    """The inputs read from the API server, side by side: the record Leases and the Jobs not
    reported yet (the summary needs every target's), the recent runs' Lease, and the resync
    CronJobs of the targets `shown` only (only the page's rows show a schedule)."""
    selector = job_selector(mode="resync")
    if shown:
        selector += f",{names.TARGET} in ({','.join(sorted(t.name for t in shown))})"
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="status-page") as pool:
        found_records = pool.submit(records.load, state.api, state.namespace)
        unreported = pool.submit(state.jobs.list_jobs, job_selector(unreported=True))
        runs = pool.submit(history.load, state.api, state.namespace)
        listed = pool.submit(state.jobs.list_cronjobs, selector) if shown else None
        return StatusInputs(
            records=found_records.result(),
            jobs=unreported.result(),
            cronjobs=listed.result() if listed is not None else [],
            runs=runs.result(),
        )


# -- what to show (pure) ---------------------------------------------------------------------


def commit_url(config: Config, target: Target, sha: str) -> str | None:
    """The commit's page on the Git host, from the API URL the configuration names."""
    if not is_valid_sha(sha):
        return None
    base = web_base(target.provider, config.api_url(target.provider))
    if target.provider == "github":
        return f"{base}/{target.repo}/commit/{sha}"
    if target.provider == "gitea":
        return f"{base}/{target.repo}/commit/{sha}"
    return f"{base}/{target.repo}/-/commit/{sha}"


def page_count(targets: int) -> int:
    """How many pages `targets` fill (one at least, so an empty configuration still has one)."""
    return max(1, -(-targets // PAGE_SIZE))


def page_targets(config: Config, page: int) -> tuple[Target, ...]:
    """The targets page `page` shows, in the configuration's order."""
    return config.targets[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]


def parse_page(value: str | None, pages: int) -> int | None:
    """The `page` query parameter as a page number (1 when absent); None when it is not a
    whole number from 1 to `pages`."""
    if value is None:
        return 1
    if not value.isascii() or not value.isdigit() or len(value) > 6:
        return None
    page = int(value)
    return page if 1 <= page <= pages else None


def jobs_by_target(
    inputs: StatusInputs, now: datetime.datetime
) -> dict[str, list[tuple[Mapping[str, Any], UnreportedJob]]]:
    """The Jobs, each with what it tells of its target (as worked out already, or now),
    grouped by target, each group in the list's order; one pass, so a page for a thousand
    targets does not look at every Job once per target."""
    known = inputs.worked_out
    grouped: dict[str, list[tuple[Mapping[str, Any], UnreportedJob]]] = {}
    for job in inputs.jobs:
        seen = known.get(jobview.name_of(job)) or records.unreported_job(job, now)
        grouped.setdefault(seen.target, []).append((job, seen))
    return grouped


def render(
    config: Config,
    inputs: StatusInputs,
    now: datetime.datetime,
    run_link: LinkFor,
    page: int = 1,
) -> str:
    """The whole page's HTML (pure; every value escaped): a summary of every target, the
    targets of page `page` (PAGE_SIZE each) and the recent runs."""
    schedules = {
        jobview.label(c, names.TARGET) or "": str((c.get("spec") or {}).get("schedule") or "")
        for c in inputs.cronjobs
    }
    grouped = jobs_by_target(inputs, now)
    rows = []
    tally = _Tally()
    first = (page - 1) * PAGE_SIZE
    for index, target in enumerate(config.targets):
        jobs = grouped.get(target.name, [])
        # The target's record, brought up to date with its finished Jobs not recorded yet.
        record = records.newest([inputs.records.get(target.name), *(j.record for _, j in jobs)])
        running = [job for job, seen in jobs if seen.running]
        tally.count(target, record, bool(running))
        if first <= index < first + PAGE_SIZE:
            schedule = schedules.get(target.name)
            rows.append(_target_row(config, target, record, running, schedule, now, run_link))
    pages = page_count(len(config.targets))
    parts = [
        f"<h1>hooksync</h1><p><small>as of {e(_stamp(now))}</small></p>",
        tally.html(),
        "<h2>Targets</h2>",
        _pager(page, pages, len(config.targets)),
        "<table id='targets'><thead><tr><th>target</th><th>source</th>"
        "<th>namespace</th><th>applied</th><th>last result</th><th>drifted</th>"
        "<th>now</th><th>next resync</th></tr></thead><tbody>",
        *rows,
        "</tbody></table>",
        _runs_table(history.recent(inputs.jobs, inputs.runs), now, run_link),
    ]
    return document("hooksync", "".join(parts), refresh_seconds=REFRESH_SECONDS)


@dataclass
class _Tally:
    """The summary over every target, whichever page is shown."""

    targets: int = 0
    results: dict[str, int] = field(default_factory=dict)
    running: int = 0
    drifted: int = 0
    suspended: int = 0
    failing: list[str] = field(default_factory=list)

    def count(self, target: Target, record: TargetRecord | None, running: bool) -> None:
        self.targets += 1
        result = record.result if record is not None else "none"
        self.results[result] = self.results.get(result, 0) + 1
        if result == "failure":
            self.failing.append(target.name)
        if record is not None and record.drifted:
            self.drifted += 1
        self.suspended += target.suspend
        self.running += running

    def html(self) -> str:
        results = ", ".join(
            f"<span class='result {e(word)}'>{e(word if word != 'none' else 'no run yet')}</span> "
            f"{count}"
            for word, count in sorted(self.results.items())
        )
        failing = ""
        if self.failing:
            shown = ", ".join(f"<code>{e(name)}</code>" for name in self.failing[:FAILING_SHOWN])
            more = len(self.failing) - FAILING_SHOWN
            failing = (
                f"<p class='failing'>failing: {shown}{f' and {more} more' if more > 0 else ''}</p>"
            )
        return (
            f"<p id='summary'>{self.targets} targets: {results or 'none'}; "
            f"{self.running} with a Job running or waiting, {self.drifted} drifted at their "
            f"last run, {self.suspended} suspended</p>{failing}"
        )


def _pager(page: int, pages: int, targets: int) -> str:
    if pages == 1:
        return ""
    first = (page - 1) * PAGE_SIZE + 1
    last = min(page * PAGE_SIZE, targets)
    links = []
    if page > 1:
        links.append(f"<a href='?page={page - 1}' rel='prev'>previous</a>")
    if page < pages:
        links.append(f"<a href='?page={page + 1}' rel='next'>next</a>")
    return (
        f"<p class='pager'>targets {first}-{last} of {targets} (page {page} of {pages}) "
        f"{' '.join(links)}</p>"
    )


def _target_row(
    config: Config,
    target: Target,
    record: TargetRecord | None,
    running: Sequence[Mapping[str, Any]],
    schedule: str | None,
    now: datetime.datetime,
    run_link: LinkFor,
) -> str:
    source = (
        f"{e(target.repo)} <small>({e(target.provider)})</small><br>"
        f"branch <code class='branch'>{e(target.branch)}</code>"
    )
    applied = "<small>nothing yet</small>"
    result = "<small>no run recorded</small>"
    drifted = "-"
    if record is not None:
        if record.applied_sha:
            url = commit_url(config, target, record.applied_sha)
            sha = f"<code class='sha'>{e(record.applied_sha[:12])}</code>"
            if url:
                sha = f"<a href='{e(url)}' title='{e(record.applied_sha)}'>{sha}</a>"
            applied = f"{sha}<br><small>{e(_age(record.applied_at, now))}</small>"
        result = (
            f"<span class='result {e(record.result)}'>{e(record.result)}</span> "
            f"<small>{e(record.mode)}, {e(_age(record.finished, now))}</small>"
            f"<br>{_job_link(record.job, run_link)}"
        )
        if record.message:
            result += f"<br><small class='message'>{e(record.message)}</small>"
        if record.drifted is not None:
            drifted = str(record.drifted)
    active = [f"{_state(j)} {_job_link(jobview.name_of(j), run_link)}" for j in running]
    next_resync = _next_resync(schedule, target, now)
    if target.suspend:
        # Jobs started before the suspend still show; nothing new starts until it is lifted.
        active.insert(0, "<span class='state suspended'>suspended</span>")
        next_resync = "<small>suspended</small>"
    return (
        f"<tr id='target-{e(target.name)}'><td><strong>{e(target.name)}</strong></td>"
        f"<td>{source}</td><td><code class='namespace'>{e(target.namespace)}</code>"
        f"{opt_out_badges(target)}</td>"
        f"<td class='applied'>{applied}</td><td class='last-result'>{result}</td>"
        f"<td class='drifted'>{e(drifted)}</td>"
        f"<td class='active'>{'<br>'.join(active) or '<small>idle</small>'}</td>"
        f"<td class='next-resync'>{next_resync}</td></tr>"
    )


# --- the target's security opt-outs -------------------------------------------------------------


def opt_out_badges(target: Target) -> str:
    """Pure: a badge for each guard the target's configuration turns off, so nobody misses it."""
    badges = []
    if target.allow_unenforced_pod_security:
        badges.append(
            "<span class='opt-out' title='allowUnenforcedPodSecurity: true'>"
            "Pod Security not required</span>"
        )
    if target.allowed_subject_namespaces:
        listed = ", ".join(target.allowed_subject_namespaces)
        badges.append(
            f"<span class='opt-out' title='allowedSubjectNamespaces'>"
            f"binds subjects of {e(listed)}</span>"
        )
    return "".join(f"<br>{badge}" for badge in badges)


def _next_resync(schedule: str | None, target: Target, now: datetime.datetime) -> str:
    if schedule is None:
        if target.resync:
            return f"<small>CronJob for {e(target.resync)} not created yet</small>"
        return "<small>off</small>"
    try:
        when = next_fire_time(schedule, now)
    except CronError:
        return f"<small>schedule {e(schedule)} not understood</small>"
    if when is None:
        return f"<small>{e(schedule)} never fires</small>"
    return (
        f"<time datetime='{when.strftime('%Y-%m-%dT%H:%MZ')}'>{e(_stamp(when))}</time>"
        f"<br><small>{e(schedule)}</small>"
    )


def _runs_table(runs: Sequence[Run], now: datetime.datetime, run_link: LinkFor) -> str:
    rows = []
    for run in runs:
        commits = e(run.commit[:7])
        if run.more_commits:
            commits += f" <small>+{run.more_commits}</small>"
        result = (
            f"<span class='result {e(run.result)}'>{e(run.result)}</span>" if run.result else ""
        )
        rows.append(
            f"<tr><td>{_job_link(run.job, run_link)}</td>"
            f"<td>{e(run.target)}</td><td>{e(run.mode)}</td>"
            f"<td>{_state_word(run.state)}</td><td>{result}</td><td><code>{commits}</code></td>"
            f"<td>{e(_age(run.created, now))}</td>"
            f"<td class='message'>{e(run.message)}</td></tr>"
        )
    if not rows:
        return "<h2>Recent runs</h2><p><small>no runs kept</small></p>"
    return (
        f"<h2>Recent runs</h2><table id='runs'><thead><tr><th>run</th><th>target</th>"
        "<th>mode</th><th>state</th><th>result</th><th>commit</th><th>created</th>"
        f"<th>message</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _state(job: jobview.Job) -> str:
    """The Job's state word (the same the run page shows), marked up for the stylesheet."""
    return _state_word(jobview.state(job))


def _state_word(word: str) -> str:
    return f"<span class='state {e(word)}'>{e(word)}</span>"


def _job_link(job: str, run_link: LinkFor) -> str:
    if not job:
        return ""
    url = run_link(job)
    text = f"<code>{e(job)}</code>"
    return f"<a href='{e(url)}'>{text}</a>" if url else text


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
