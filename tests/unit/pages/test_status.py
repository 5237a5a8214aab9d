"""The status page's HTML (pure), its commit links, and who may see it."""

from __future__ import annotations

import asyncio
import datetime
import json
import threading
from dataclasses import asdict, replace
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from kubernetes.client import ApiClient, Configuration
from starlette.applications import Starlette
from urllib3.exceptions import HTTPError

from hooksync import names
from hooksync.config import Config, Target, parse_config
from hooksync.summary import RunSummary
from receiver import jobview
from receiver.following import Followed
from receiver.jobapi import ApiUnavailable
from receiver.kept import KeptObjects, unreported_job
from receiver.pages import status as statuspage
from receiver.pages._html import SECURITY_HEADERS
from receiver.pages.status import (
    StatusInputs,
    authorized,
    commit_url,
    render,
    status_page_route,
)
from receiver.reporting import records
from receiver.reporting.history import RUNS, Run
from receiver.reporting.records import TargetRecord, UnreportedJob
from receiver.secrets import ReceiverSecrets
from receiver.state import ReceiverState

SHA = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
NEW_SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
NOW = datetime.datetime(2025, 3, 10, 12, 34, 56, tzinfo=datetime.UTC)
HOSTILE = "<img src=x onerror=alert(1)>"

CONFIG_YAML = """
jobImage: ghcr.io/acme/hooksync-job:0.1.0
publicURL: https://hooksync.example.com
github: {apiURL: https://api.github.com}
gitlab: {apiURL: https://gitlab.example.com}
targets:
  - name: shop
    provider: github
    repo: acme/shop
    cloneURL: https://deploy:hunter2@github.com/acme/shop.git
    branch: feat/<b>x
    path: deploy
    namespace: shop
    serviceAccount: hooksync-shop
    gitSecret: hooksync-shop-git
    resync: "*/15 * * * *"
  - name: docs
    provider: gitlab
    repo: acme/web/docs
    branch: main
    path: .
    namespace: docs
    serviceAccount: hooksync-docs
    resync: ""
"""


def config() -> Config:
    return parse_config(CONFIG_YAML)


def job(
    name: str,
    created: str,
    *,
    target: str = "shop",
    mode: str = "apply",
    state: str = "succeeded",
    sha: str = SHA,
    summary: RunSummary | None = None,
) -> dict[str, Any]:
    annotations = {names.SHA: sha}
    if summary is not None:
        annotations[names.SUMMARY] = summary.to_json()
    status: dict[str, Any] = {"startTime": created}
    spec: dict[str, Any] = {}
    if state == "succeeded":
        status["completionTime"] = "2025-03-10T12:00:00Z"
        status["conditions"] = [{"type": "Complete", "status": "True"}]
    elif state == "failed":
        failed = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}
        status["conditions"] = [{**failed, "lastTransitionTime": "2025-03-10T12:20:00Z"}]
    elif state == "waiting":
        spec["suspend"] = True
    return {
        "metadata": {
            "name": name,
            "creationTimestamp": created,
            "labels": {names.MANAGED_BY: "hooksync", names.TARGET: target, names.MODE: mode},
            "annotations": annotations,
        },
        "spec": spec,
        "status": status,
    }


def record(**changes: Any) -> TargetRecord:
    values: dict[str, Any] = {
        "target": "shop", "result": "success", "finished": "2025-03-10T12:00:00Z",
        "job": "hooksync-shop-apply-6113728", "mode": "apply",
        "message": "applied 3, pruned 0, 0 drifted", "drifted": 0,
        "applied_sha": SHA, "applied_at": "2025-03-10T12:00:00Z",
    }  # fmt: skip
    values.update(changes)
    return TargetRecord(**values)


def cronjob(target: str, schedule: str) -> dict[str, Any]:
    return {"metadata": {"labels": {names.TARGET: target}}, "spec": {"schedule": schedule}}


def link(job_name: str) -> str:
    return f"https://hooksync.example.com/runs/{job_name}?sig=s"


class Elements(HTMLParser):
    """The element names and the text a browser would build from the page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.hrefs: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.hrefs += [value or "" for key, value in attrs if key == "href"]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parsed(page: str) -> Elements:
    elements = Elements()
    elements.feed(page)
    return elements


def test_a_target_row_shows_source_namespace_applied_commit_result_and_next_resync():
    inputs = StatusInputs(
        records={"shop": record(drifted=2)},
        jobs=[],
        cronjobs=[cronjob("shop", "*/15 * * * *")],
    )
    page = render(config(), inputs, NOW, link)
    row = page.split("<tr id='target-shop'>")[1].split("</tr>")[0]
    assert "acme/shop" in row and "<code class='namespace'>shop</code>" in row
    assert f"href='https://github.com/acme/shop/commit/{SHA}'" in row
    assert "success" in row and "34m ago" in row
    assert "<td class='drifted'>2</td>" in row
    assert "2025-03-10 12:45 UTC" in row  # the next quarter hour
    assert f"href='{link('hooksync-shop-apply-6113728')}'" in row
    docs = page.split("<tr id='target-docs'>")[1].split("</tr>")[0]
    assert "no run recorded" in docs and "off" in docs


def test_running_and_waiting_jobs_show_on_their_target():
    inputs = StatusInputs(
        records={},
        jobs=[
            job("hooksync-shop-apply-aaaaaaa", "2025-03-10T12:30:00Z", state="running"),
            job("hooksync-shop-apply-next-1", "2025-03-10T12:31:00Z", state="waiting"),
        ],
        cronjobs=[],
    )
    page = render(config(), inputs, NOW, link)
    active = page.split("<td class='active'>")[1].split("</td>")[0]
    assert "running" in active and "hooksync-shop-apply-aaaaaaa" in active
    assert "waiting" in active and "hooksync-shop-apply-next-1" in active
    # A schedule in the configuration whose CronJob is not there yet says so.
    assert "not created yet" in page


def test_a_finished_job_not_yet_recorded_updates_the_row():
    newer = RunSummary(result="success", sha=NEW_SHA, message="applied 1")
    inputs = StatusInputs(
        records={"shop": record()},
        jobs=[
            job("hooksync-shop-apply-ec26c3e", "2025-03-10T12:10:00Z", sha=NEW_SHA, summary=newer)
        ],
        cronjobs=[],
    )
    row = render(config(), inputs, NOW, link).split("<tr id='target-shop'>")[1]
    assert NEW_SHA in row.split("</tr>")[0]


def test_a_failed_job_keeps_the_last_applied_commit_on_show():
    inputs = StatusInputs(
        records={"shop": record()},
        jobs=[job("hooksync-shop-apply-ec26c3e", "2025-03-10T12:10:00Z", state="failed")],
        cronjobs=[],
    )
    row = render(config(), inputs, NOW, link).split("<tr id='target-shop'>")[1].split("</tr>")[0]
    assert "failure" in row and SHA in row and "hooksync-shop-apply-ec26c3e" in row


def test_runs_are_the_newest_twenty_newest_first_with_signed_links():
    jobs = [
        job(f"hooksync-shop-apply-{i:07d}", f"2025-03-10T11:{i:02d}:00Z",
            summary=RunSummary(result="success", sha=SHA, message=f"run {i}"))
        for i in range(25)
    ]  # fmt: skip
    page = render(config(), StatusInputs(records={}, jobs=jobs[::-1][3:] + jobs[-3:], cronjobs=[]),
                  NOW, link)  # fmt: skip
    runs = page.split("<table id='runs'>")[1]
    shown = [f"hooksync-shop-apply-{i:07d}" for i in range(24, 4, -1)]
    positions = [runs.index(f"<code>{name}</code>") for name in shown]
    assert positions == sorted(positions)
    assert "hooksync-shop-apply-0000004" not in runs
    assert f"href='{link('hooksync-shop-apply-0000024')}'" in runs


def test_runs_the_leader_kept_show_beside_the_jobs_not_reported_yet():
    kept = [
        Run(job=f"hooksync-shop-resync-{i}", target="shop", mode="resync", state="succeeded",
            result="no-op", commit="", more_commits=0, created=f"2025-03-10T11:{i:02d}:00Z",
            message=f"nothing drifted {HOSTILE}")
        for i in range(10, 30)
    ]  # fmt: skip
    running = job("hooksync-shop-apply-6113728", "2025-03-10T12:30:00Z", state="running")
    inputs = StatusInputs(records={"shop": record()}, jobs=[running], cronjobs=[], runs=kept)
    page = render(config(), inputs, NOW, link)
    runs = page.split("<table id='runs'>")[1]
    shown = [
        "hooksync-shop-apply-6113728",
        *(f"hooksync-shop-resync-{i}" for i in range(29, 10, -1)),
    ]
    positions = [runs.index(f"<code>{name}</code>") for name in shown]
    assert positions == sorted(positions)
    assert "hooksync-shop-resync-10<" not in runs  # the twenty-first
    assert "no-op" in runs and "<img" not in runs
    assert f"href='{link('hooksync-shop-resync-29')}'" in runs


def test_every_value_from_git_or_a_payload_renders_as_text():
    hostile = RunSummary(result="success", sha=SHA, message=f"deployed {HOSTILE}<script>x</script>")
    inputs = StatusInputs(
        records={"shop": record(message=HOSTILE, mode="<i>apply</i>")},
        jobs=[job("hooksync-shop-apply-6113728", "2025-03-10T12:00:00Z", summary=hostile)],
        cronjobs=[cronjob("shop", "<b>bad</b>")],
    )
    page = render(config(), inputs, NOW, link)
    elements = parsed(page)
    assert not {"img", "script", "b", "i"} & set(elements.tags)
    text = "".join(elements.text)
    assert "feat/<b>x" in text  # the branch, shown as typed
    assert f"deployed {HOSTILE}<script>x</script>" in text
    assert "schedule <b>bad</b> not understood" in text


def test_the_page_names_no_credential_from_the_configuration():
    page = render(config(), StatusInputs(records={}, jobs=[], cronjobs=[]), NOW, link)
    assert "hunter2" not in page and "hooksync-shop-git" not in page


def test_no_link_key_means_plain_job_names():
    inputs = StatusInputs(records={"shop": record()}, jobs=[], cronjobs=[])
    page = render(config(), inputs, NOW, lambda job: None)
    assert "/runs/" not in page and "hooksync-shop-apply-6113728" in page


@pytest.mark.parametrize(
    ("provider", "api", "expected"),
    [
        ("github", "https://api.github.com", f"https://github.com/acme/shop/commit/{SHA}"),
        ("github", "https://ghe.example.com/api/v3",
         f"https://ghe.example.com/acme/shop/commit/{SHA}"),
        ("gitlab", "https://gitlab.example.com", f"https://gitlab.example.com/acme/shop/-/commit/{SHA}"),
        ("gitlab", "https://git.example.com/gitlab/",
         f"https://git.example.com/gitlab/acme/shop/-/commit/{SHA}"),
    ],
)  # fmt: skip
def test_commit_links_follow_the_configured_host(provider: str, api: str, expected: str):
    cfg = Config(job_image="x", public_url="https://h", targets=(), github_api_url=api,
                 gitlab_api_url=api)  # fmt: skip
    target = Target(name="shop", provider=provider, repo="acme/shop", clone_url="https://x/y.git",
                    branch="main", path=".", namespace="shop", service_account="sa")  # fmt: skip
    assert commit_url(cfg, target, SHA) == expected
    assert commit_url(cfg, target, "not-a-sha") is None


@pytest.mark.parametrize(
    ("header", "allowed"),
    [
        ("Bearer s3cret", True),
        ("bearer s3cret", True),
        ("Bearer old-token", True),
        ("Bearer s3cret2", False),
        ("Bearer ", False),
        ("Basic s3cret", False),
        ("s3cret", False),
        (None, False),
    ],
)
def test_authorized_takes_any_configured_bearer_token(header: str | None, allowed: bool):
    assert authorized(header, ["s3cret", "old-token"]) is allowed


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> Starlette:
    monkeypatch.setattr(
        statuspage,
        "read_inputs",
        lambda state, shown: StatusInputs(records={}, jobs=[], cronjobs=[]),
    )
    state = ReceiverState(config=config(), secrets=ReceiverSecrets(), api=ApiClient(),
                          namespace="hooksync")  # fmt: skip
    return Starlette(routes=[status_page_route(state, ["s3cret"])])


def get(app: Starlette, authorization: str | None = None) -> httpx.Response:
    async def fetch() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://status") as client:
            headers = {"Authorization": authorization} if authorization else {}
            return await client.get("/", headers=headers)

    return asyncio.run(fetch())


def test_with_a_token_the_page_needs_it(app: Starlette):
    assert get(app).status_code == 401
    denied = get(app, "Bearer wrong")
    assert denied.status_code == 401
    assert denied.headers["www-authenticate"].startswith("Bearer")
    assert "acme/shop" not in denied.text
    answer = get(app, "Bearer s3cret")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert "acme/shop" in answer.text
    for header, value in SECURITY_HEADERS.items():
        assert answer.headers[header] == value


def test_a_suspended_target_says_so_instead_of_its_next_resync():
    shop = replace(config().targets[0], suspend=True)
    suspended = replace(config(), targets=(shop,))
    inputs = StatusInputs(records={}, jobs=[], cronjobs=[cronjob("shop", "*/15 * * * *")])
    row = render(suspended, inputs, NOW, link).split("<tr id='target-shop'>")[1]
    row = row.split("</tr>")[0]
    assert "<td class='active'><span class='state suspended'>suspended</span></td>" in row
    assert "<td class='next-resync'><small>suspended</small></td>" in row
    assert "2025-03-10 12:45 UTC" not in row


# --- a fleet: summarised on top, shown a page of targets at a time ---------------------------


def fleet(size: int) -> Config:
    base = config().targets[0]
    targets = tuple(
        replace(base, name=f"t{index}", namespace=f"ns{index}") for index in range(size)
    )
    return replace(config(), targets=targets)


def test_a_fleet_shows_one_page_of_targets_and_a_summary_of_all():
    big = fleet(statuspage.PAGE_SIZE * 2 + 7)
    jobs = [job("hooksync-t3-apply-1", "2025-03-10T12:30:00Z", target="t3", state="running")]
    records = {
        "t0": record(target="t0", result="failure"),
        "t100": record(target="t100", result="failure", drifted=2),
        "t1": record(target="t1"),
    }
    inputs = StatusInputs(records=records, jobs=jobs, cronjobs=[])
    first = render(big, inputs, NOW, link)
    assert first.count("<tr id='target-") == statuspage.PAGE_SIZE
    assert "<tr id='target-t49'>" in first and "<tr id='target-t50'>" not in first
    summary = first.split("<p id='summary'>")[1].split("</p>")[0]
    assert f"{len(big.targets)} targets:" in summary
    assert "failure</span> 2" in summary and "success</span> 1" in summary
    assert "1 with a Job running or waiting, 1 drifted" in summary
    assert "failing: <code>t0</code>, <code>t100</code>" in first  # from every page
    assert "page 1 of 3" in first and "?page=2" in first
    last = render(big, inputs, NOW, link, page=3)
    assert last.count("<tr id='target-") == 7
    assert "<tr id='target-t106'>" in last and "?page=2" in last and "?page=4" not in last


def test_a_small_configuration_has_no_pager():
    page = render(config(), StatusInputs(records={}, jobs=[], cronjobs=[]), NOW, link)
    assert "class='pager'" not in page
    assert page.count("<tr id='target-") == 2


@pytest.mark.parametrize("value", ["0", "2", "-1", "1.5", "x", "\uff11", "9" * 40, ""])
def test_a_page_out_of_range_or_malformed_is_refused_in_one_line(app: Starlette, value: str):
    async def fetch() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://status") as client:
            return await client.get(
                "/", params={"page": value}, headers={"Authorization": "Bearer s3cret"}
            )

    answer = asyncio.run(fetch())
    assert answer.status_code == 400
    assert answer.text == "page must be a whole number from 1 to 1\n"


def test_the_recorded_runs_job_still_speaks_for_it_and_older_jobs_do_not():
    """Jobs older than a complete record are skipped unread; the record's own run is read."""
    summary = RunSummary(result="success", sha=SHA, mode="apply", message="from the Job")
    own = job("hooksync-shop-apply-6113728", "2025-03-10T11:59:00Z", summary=summary)
    older = job("hooksync-shop-apply-0000000", "2025-03-10T10:00:00Z",
                summary=replace(summary, message="from an older Job"))  # fmt: skip
    older["status"]["completionTime"] = "2025-03-10T10:01:00Z"
    inputs = StatusInputs(records={"shop": record()}, jobs=[older, own], cronjobs=[])
    row = render(config(), inputs, NOW, link).split("<tr id='target-shop'>")[1].split("</tr>")[0]
    assert "from the Job" in row and "from an older Job" not in row


def test_a_page_from_what_the_receiver_keeps_reads_nothing_from_the_api_server():
    record_lease = {"metadata": {
        "name": names.record_name("shop"), "labels": {names.TARGET: "shop"},
        "annotations": record(job="hooksync-shop-apply-6113728").to_annotations(),
    }}  # fmt: skip
    kept_run = Run(job="hooksync-shop-resync-1", target="shop", mode="resync", state="succeeded",
                   result="no-op", commit="", more_commits=0, created="2025-03-10T11:00:00Z",
                   message="ok")  # fmt: skip
    runs_lease = {"metadata": {"name": names.RECENT_RUNS_LEASE_NAME,
                               "annotations": {RUNS: json.dumps([asdict(kept_run)])}}}  # fmt: skip
    running = job("hooksync-shop-apply-ec26c3e", "2025-03-10T12:30:00Z", state="running")
    ended = job("hooksync-shop-resync-2", "2025-03-10T11:59:00Z", mode="resync",
                summary=RunSummary(result="no-op", sha=SHA, mode="resync"))  # fmt: skip
    schedules = [cronjob("shop", "*/15 * * * *"), cronjob("docs", "0 * * * *")]

    def kept(*objects: dict[str, Any], derive: Any = None) -> Followed:
        followed = Followed(
            "x", lambda *a, **k: None, "hooksync", "", threading.Event(), derive=derive
        )
        for obj in objects:
            followed._keep({**obj, "metadata": {"resourceVersion": "1", **obj["metadata"]}})
        followed._synced = True
        return followed

    for index, schedule in enumerate(schedules):
        schedule["metadata"]["name"] = f"cronjob-{index}"
    # An API client with no server: any read would fail.
    state = ReceiverState(config=config(), secrets=ReceiverSecrets(),
                          api=ApiClient(Configuration(host="http://127.0.0.1:9")),
                          namespace="hooksync")  # fmt: skip
    state.kept = KeptObjects(
        jobs=kept(running, ended, derive=unreported_job),
        leases=kept(record_lease, runs_lease, derive=records.record_of_lease),
        cronjobs=kept(*schedules),
    )
    inputs = statuspage.kept_inputs(state, config().targets[:1])
    assert inputs is not None
    assert inputs.records == {"shop": record(job="hooksync-shop-apply-6113728")}
    assert [jobview.name_of(j) for j in inputs.jobs] == [
        "hooksync-shop-apply-ec26c3e", "hooksync-shop-resync-2"
    ]  # fmt: skip
    # What each Job tells of its target was worked out as it was kept.
    assert inputs.worked_out["hooksync-shop-apply-ec26c3e"] == UnreportedJob("shop", True, None)
    assert inputs.worked_out["hooksync-shop-resync-2"].record == replace(
        record(job="hooksync-shop-resync-2"), result="no-op", mode="resync", message="",
        finished="2025-03-10T12:00:00Z", applied_at="2025-03-10T12:00:00Z",
    )  # fmt: skip
    assert [jobview.label(c, names.TARGET) for c in inputs.cronjobs] == ["shop"]
    assert inputs.runs == [kept_run]
    # Not following (the watch broke): the page reads, and says when it cannot.
    state.kept = KeptObjects(jobs=kept(derive=unreported_job),
                             leases=kept(derive=records.record_of_lease), cronjobs=Followed(
        "x", lambda *a, **k: None, "hooksync", "", threading.Event()))  # fmt: skip
    assert statuspage.kept_inputs(state, config().targets[:1]) is None
    with pytest.raises((ApiUnavailable, HTTPError)):  # the route answers 503
        statuspage.read_inputs(state, config().targets[:1])


def test_records_worked_out_ahead_make_the_same_page():
    # What the receiver keeps comes with each ended Job's record; the page must not differ
    # from one that reads every summary itself, whatever the mix of Jobs.
    ended = [
        job("hooksync-shop-resync-1", "2025-03-10T11:00:00Z", mode="resync",
            summary=RunSummary(result="no-op", sha=SHA, mode="resync")),
        job("hooksync-shop-apply-2", "2025-03-10T11:30:00Z", state="failed"),
        job("hooksync-docs-apply-3", "2025-03-10T11:40:00Z", target="docs",
            summary=RunSummary(result="success", sha=SHA)),
        job("hooksync-docs-apply-4", "2025-03-10T11:50:00Z", target="docs"),  # summary unread
        job("hooksync-docs-resync-5", "2025-03-10T12:29:00Z", target="docs", state="running"),
    ]  # fmt: skip
    worked_out = {jobview.name_of(j): unreported_job(j) for j in ended}
    plain = StatusInputs(records={"shop": record()}, jobs=ended, cronjobs=[])
    ahead = replace(plain, worked_out=worked_out)
    page = render(config(), plain, NOW, link)
    assert render(config(), ahead, NOW, link) == page
    assert "BackoffLimitExceeded" in page and "docs" in page
    # The page takes what was worked out and does not read the Job again: the summary of
    # hooksync-docs-apply-4, read as it arrived, shows though the Job's copy here has none.
    arrived = UnreportedJob("docs", False, replace(
        record(target="docs", job="hooksync-docs-apply-4"), message="read as it arrived",
        finished="2025-03-10T12:10:00Z",
    ))  # fmt: skip
    later = replace(ahead, worked_out={**worked_out, "hooksync-docs-apply-4": arrived})
    assert "read as it arrived" in render(config(), later, NOW, link)
    assert "read as it arrived" not in page
