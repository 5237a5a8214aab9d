"""Webhook intake and dispatch end to end: the real `hooksync-receiver` process on loopback,
real GitHub and GitLab payloads, and the local control plane holding the Jobs.

Every test asserts what a Git host and an operator can observe: the HTTP answer (status, the
one-line JSON reason, Retry-After) and the Job and CronJob objects in the API server (names,
labels, annotations, suspend, container args). What the Jobs do when they run is not asserted.

The targets name a ServiceAccount that does not exist, so the API server refuses the Jobs'
pods: every Job stays active (no pod runs, none finishes), which keeps coalescing and
duplicate detection deterministic and the process kubelet idle.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from kubernetes import client, config

from hooksync import names
from world.cluster import LocalCluster
from world.controlplane import ControlPlane
from world.kubelet import wait_until
from world.receiver import ReceiverProcess
from world.stage import Stage
from world.webhooks import (
    ABSENT_SERVICE_ACCOUNT,
    NOWHERE_CLONE_URL,
    RECEIVER_ENV,
    Delivery,
    Provider,
    chunked,
    github_delivery,
    gitlab_signed_delivery,
    gitlab_token_delivery,
    new_signing_key,
    random_sha,
    send,
    target_config,
)

pytestmark = pytest.mark.cluster

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "webhooks"

WRONG_SIGNING_KEY = new_signing_key()

MAX_BODY_BYTES = 64 * 1024
OVERSIZE_BYTES = 1024 * 1024
# Beside the targets in every receiver configuration here.
SETTINGS = {"maxBodyBytes": MAX_BODY_BYTES}

# What the fixtures carry (see SOURCES.md next to them).
GITHUB_REPO = "Codertocat/Hello-World"
GITHUB_PUSH_SHA = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
GITHUB_PR_HEAD_SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
GITHUB_PR_NUMBER = 2
GITHUB_ZEN = "Anything added dilutes everything else."
GITLAB_PUSH_REPO = "mike/diaspora"
GITLAB_MR_REPO = "gitlabhq/gitlab-test"
GITLAB_TAG_REPO = "jsmith/example"
GITLAB_SHA = "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"
GITLAB_MR_IID = 1

HTTP_TIMEOUT = 30.0


def fixture(relative: str) -> bytes:
    return (FIXTURES / relative).read_bytes()


# --- targets and configuration --------------------------------------------------------------------


def target(name: str, provider: Provider, repo: str, **extra: Any) -> dict[str, Any]:
    """A target following the fixtures' branch (master), previews on, whose Jobs never run."""
    return target_config(name, provider, repo, branch="master", previews=True, **extra)


# The targets the fixtures reach: each fixture routes to exactly one of them (or to none).
FIXTURE_TARGETS = [
    target("gh", "github", GITHUB_REPO),
    target("gl", "gitlab", GITLAB_PUSH_REPO),
    target("glmr", "gitlab", GITLAB_MR_REPO),
    # Follows the repository of tag_push.json: a tag push still deploys nothing.
    target("gltag", "gitlab", GITLAB_TAG_REPO),
]
# Targets of synthetic pushes (the fixture push with another repository and SHA).
BURST_REPO = "hooksync-test/burst"
PAIR_REPOS = {"concurrent": "hooksync-test/pair-concurrent", "sequential": "hooksync-test/pair-seq"}
AGAIN_REPO = "hooksync-test/again"
SHARED_TARGETS = [
    *FIXTURE_TARGETS,
    target("burst", "github", BURST_REPO),
    target("pair-c", "github", PAIR_REPOS["concurrent"]),
    target("pair-s", "github", PAIR_REPOS["sequential"]),
    target("again", "github", AGAIN_REPO),
]


def synthetic_push(repo: str, sha: str) -> bytes:
    """The fixture branch push, moved to another repository and head commit."""
    doc = json.loads(fixture("github/push/with-new-branch.payload.json"))
    doc["repository"]["full_name"] = repo
    doc["repository"]["name"] = repo.split("/")[1]
    doc["after"] = sha
    doc["head_commit"]["id"] = sha
    doc["commits"][0]["id"] = sha
    return json.dumps(doc).encode()


# --- the receiver and its Jobs --------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared(
    cluster: LocalCluster, kube: client.ApiClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stage]:
    """One receiver for the module: rejections, replays, the burst and the two-replica race.

    Each of those tests uses targets (or, for rejections, no Job at all) that no other test
    touches, so no state carries from one test to the next.
    """
    stage = Stage(
        kube,
        cluster.kubeconfig,
        tmp_path_factory.mktemp("shared"),
        SHARED_TARGETS,
        settings=SETTINGS,
    )
    try:
        yield stage
    finally:
        stage.close()


@pytest.fixture
def fresh(cluster: LocalCluster, kube: client.ApiClient, tmp_path: Path) -> Iterator[Stage]:
    """A receiver of its own with the fixture targets and an empty namespace (under 1 s)."""
    stage = Stage(
        kube,
        cluster.kubeconfig,
        tmp_path / "receiver",
        FIXTURE_TARGETS,
        settings=SETTINGS,
    )
    try:
        yield stage
    finally:
        stage.close()


# --- assertions -----------------------------------------------------------------------------------


def answer(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/json"), response.text
    body: dict[str, Any] = response.json()
    return body


def assert_rejected(response: httpx.Response, status: int, reason_part: str) -> None:
    assert response.status_code == status, response.text
    body = answer(response)
    assert set(body) == {"error"}, body
    reason = body["error"]
    assert isinstance(reason, str) and reason, body
    assert "\n" not in reason and len(reason) < 400, reason
    assert reason_part.lower() in reason.lower(), reason


def container_of(job: dict[str, Any]) -> dict[str, Any]:
    [only] = job["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = only
    return result


def arg_value(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


def assert_job(
    job: dict[str, Any],
    *,
    target: str,
    mode: str,
    sha: str,
    ref: str,
    delivery_id: str,
    number: int | None = None,
    branch: str = "master",
) -> None:
    metadata = job["metadata"]
    assert metadata["labels"] == {
        names.MANAGED_BY: names.MANAGED_BY_VALUE,
        names.TARGET: target,
        names.MODE: mode,
    }
    annotations = metadata["annotations"]
    assert annotations[names.SHA] == sha
    assert annotations[names.REF] == ref
    assert annotations[names.DELIVERY] == delivery_id
    if number is None:
        assert names.PULL_REQUEST not in annotations
    else:
        assert annotations[names.PULL_REQUEST] == str(number)
    assert names.WAITS_FOR not in annotations
    assert not job["spec"].get("suspend")
    # The Job controller adds its own labels to the pod template; ours are all there.
    assert metadata["labels"].items() <= job["spec"]["template"]["metadata"]["labels"].items()
    container = container_of(job)
    assert container["command"] == ["hooksync-job"]
    args = container["args"]
    assert args[0] == mode
    assert arg_value(args, "--target") == target
    assert arg_value(args, "--clone-url") == NOWHERE_CLONE_URL
    assert arg_value(args, "--branch") == branch
    assert arg_value(args, "--namespace") == f"app-{target}"
    if mode == "preview":
        assert arg_value(args, "--sha") == sha
    else:
        # An apply converges the branch head as fetched when it runs, never the event's SHA.
        assert "--sha" not in args
        assert sha not in args


def assert_dispatched(response: httpx.Response, target: str, job: str) -> None:
    assert response.status_code == 202, response.text
    body = answer(response)
    assert body["status"] == "dispatched", body
    assert body["jobs"] == [{"target": target, "job": job, "outcome": "created"}], body


def assert_nothing_to_do(response: httpx.Response, status: str, reason_part: str) -> None:
    assert response.status_code == 200, response.text
    body = answer(response)
    assert body["status"] == status, body
    assert reason_part.lower() in body["reason"].lower(), body
    assert "jobs" not in body, body


# --- each fixture, signed correctly ---------------------------------------------------------------


def test_github_branch_push_creates_one_apply_job(fresh: Stage) -> None:
    delivery = github_delivery("push", fixture("github/push/with-new-branch.payload.json"))
    response = fresh.send(delivery)
    name = f"hooksync-gh-apply-{GITHUB_PUSH_SHA[:7]}"
    assert_dispatched(response, "gh", name)
    jobs = fresh.jobs()
    assert list(jobs) == [name], fresh.explain()
    assert_job(
        jobs[name],
        target="gh",
        mode="apply",
        sha=GITHUB_PUSH_SHA,
        ref="refs/heads/master",
        delivery_id=delivery.delivery_id,
    )


def test_github_form_encoded_push_creates_one_apply_job(fresh: Stage) -> None:
    payload = fixture("github/push/with-new-branch.payload.json").decode()
    form = urlencode({"payload": payload}).encode()
    delivery = github_delivery("push", form, content_type="application/x-www-form-urlencoded")
    response = fresh.send(delivery)
    name = f"hooksync-gh-apply-{GITHUB_PUSH_SHA[:7]}"
    assert_dispatched(response, "gh", name)
    jobs = fresh.jobs()
    assert list(jobs) == [name], fresh.explain()
    assert_job(
        jobs[name],
        target="gh",
        mode="apply",
        sha=GITHUB_PUSH_SHA,
        ref="refs/heads/master",
        delivery_id=delivery.delivery_id,
    )


@pytest.mark.parametrize("action", ["opened", "reopened", "synchronize"])
def test_github_pull_request_creates_one_preview_job(fresh: Stage, action: str) -> None:
    body = fixture(f"github/pull_request/{action}.payload.json")
    delivery = github_delivery("pull_request", body)
    response = fresh.send(delivery)
    name = f"hooksync-gh-preview-{GITHUB_PR_HEAD_SHA[:7]}"
    assert_dispatched(response, "gh", name)
    jobs = fresh.jobs()
    assert list(jobs) == [name], fresh.explain()
    assert_job(
        jobs[name],
        target="gh",
        mode="preview",
        sha=GITHUB_PR_HEAD_SHA,
        ref=f"refs/pull/{GITHUB_PR_NUMBER}/head",
        delivery_id=delivery.delivery_id,
        number=GITHUB_PR_NUMBER,
    )


def test_github_pull_request_events_for_one_head_share_one_preview_job(fresh: Stage) -> None:
    first = fresh.send(
        github_delivery("pull_request", fixture("github/pull_request/opened.payload.json"))
    )
    name = f"hooksync-gh-preview-{GITHUB_PR_HEAD_SHA[:7]}"
    assert_dispatched(first, "gh", name)
    for action in ("reopened", "synchronize"):
        body = fixture(f"github/pull_request/{action}.payload.json")
        again = fresh.send(github_delivery("pull_request", body))
        assert again.status_code == 200, again.text
        assert answer(again)["status"] == "already dispatched"
        assert answer(again)["jobs"] == [{"target": "gh", "job": name, "outcome": "duplicate"}]
    assert list(fresh.jobs()) == [name]


@pytest.mark.parametrize(
    ("event", "relative", "status", "reason"),
    [
        ("push", "github/push/payload.json", "ignored", "tag simple-tag of"),
        ("push", "github/push/with-organization.payload.json", "ignored", "was deleted"),
        ("pull_request", "github/pull_request/closed.payload.json", "ignored", "'closed'"),
        ("ping", "github/ping/payload.json", "ping", GITHUB_ZEN),
    ],
    ids=["tag-deletion", "tag-deletion-organization", "pull-request-closed", "ping"],
)
def test_github_delivery_with_nothing_to_do_answers_200(
    fresh: Stage, event: str, relative: str, status: str, reason: str
) -> None:
    response = fresh.send(github_delivery(event, fixture(relative)))
    assert_nothing_to_do(response, status, reason)
    if event == "ping":
        assert answer(response)["zen"] == GITHUB_ZEN
    assert fresh.jobs() == {}, fresh.explain()


GITLAB_AUTH: dict[str, Callable[..., Delivery]] = {
    "token": gitlab_token_delivery,
    "signature": gitlab_signed_delivery,
}


@pytest.mark.parametrize("auth", list(GITLAB_AUTH))
def test_gitlab_push_creates_one_apply_job(fresh: Stage, auth: str) -> None:
    delivery = GITLAB_AUTH[auth]("Push Hook", fixture("gitlab/push.json"))
    response = fresh.send(delivery)
    name = f"hooksync-gl-apply-{GITLAB_SHA[:7]}"
    assert_dispatched(response, "gl", name)
    jobs = fresh.jobs()
    assert list(jobs) == [name], fresh.explain()
    assert_job(
        jobs[name],
        target="gl",
        mode="apply",
        sha=GITLAB_SHA,
        ref="refs/heads/master",
        delivery_id=delivery.delivery_id,
    )


@pytest.mark.parametrize("auth", list(GITLAB_AUTH))
def test_gitlab_merge_request_creates_one_preview_job(fresh: Stage, auth: str) -> None:
    delivery = GITLAB_AUTH[auth]("Merge Request Hook", fixture("gitlab/merge_request.json"))
    response = fresh.send(delivery)
    name = f"hooksync-glmr-preview-{GITLAB_SHA[:7]}"
    assert_dispatched(response, "glmr", name)
    jobs = fresh.jobs()
    assert list(jobs) == [name], fresh.explain()
    assert_job(
        jobs[name],
        target="glmr",
        mode="preview",
        sha=GITLAB_SHA,
        ref=f"refs/merge-requests/{GITLAB_MR_IID}/head",
        delivery_id=delivery.delivery_id,
        number=GITLAB_MR_IID,
    )


@pytest.mark.parametrize("auth", list(GITLAB_AUTH))
def test_gitlab_tag_push_answers_200_without_job(fresh: Stage, auth: str) -> None:
    response = fresh.send(GITLAB_AUTH[auth]("Tag Push Hook", fixture("gitlab/tag_push.json")))
    assert_nothing_to_do(response, "ignored", "tag v1.0.0 of jsmith/example deploys nothing")
    assert fresh.jobs() == {}, fresh.explain()


# --- the same deliveries, refused -----------------------------------------------------------------


def _truncated(body: bytes) -> bytes:
    return body[: len(body) // 2]


def _oversize(body: bytes) -> bytes:
    # Still the same JSON document, padded with whitespace past the limit.
    return body.rstrip() + b" " * (OVERSIZE_BYTES - len(body)) + b"\n"


def _malformed(body: bytes) -> bytes:
    return body[:200]


GITHUB_SOURCES = {
    "push": ("push", "github/push/with-new-branch.payload.json"),
    "pull_request": ("pull_request", "github/pull_request/opened.payload.json"),
}


def github_refusals(event: str, body: bytes) -> dict[str, tuple[Delivery, int, str]]:
    return {
        "wrong-secret": (
            github_delivery(event, body, secret="not-the-secret"),
            401,
            "does not match",
        ),
        "unsigned": (github_delivery(event, body, secret=None), 401, "missing"),
        "truncated": (
            github_delivery(event, _truncated(body), signed_body=body),
            401,
            "does not match",
        ),
        "oversize": (github_delivery(event, _oversize(body)), 413, "limit"),
        "oversize-chunked": (chunked(github_delivery(event, _oversize(body))), 413, "limit"),
        "content-type": (
            github_delivery(event, body, content_type="text/plain"),
            415,
            "content type",
        ),
        "malformed-json": (github_delivery(event, _malformed(body)), 400, "not valid JSON"),
    }


GITHUB_CASES = ["wrong-secret", "unsigned", "truncated", "oversize", "oversize-chunked",
                "content-type", "malformed-json"]  # fmt: skip
GITHUB_REFUSALS = [(source, case) for source in GITHUB_SOURCES for case in GITHUB_CASES]


@pytest.mark.parametrize(
    ("source", "case"), GITHUB_REFUSALS, ids=[f"{s}-{c}" for s, c in GITHUB_REFUSALS]
)
def test_github_refused_delivery_answers_4xx_without_job(
    shared: Stage, source: str, case: str
) -> None:
    event, relative = GITHUB_SOURCES[source]
    delivery, status, reason = github_refusals(event, fixture(relative))[case]
    before = set(shared.jobs())
    assert_rejected(shared.send(delivery), status, reason)
    assert set(shared.jobs()) == before, shared.explain()
    assert delivery.delivery_id not in shared.recorded_deliveries()


GITLAB_SOURCES = {
    "push": ("Push Hook", "gitlab/push.json"),
    "merge_request": ("Merge Request Hook", "gitlab/merge_request.json"),
}


def gitlab_refusals(event: str, body: bytes) -> dict[str, tuple[Delivery, int, str]]:
    stale = int(time.time()) - 6 * 60
    return {
        "wrong-token": (
            gitlab_token_delivery(event, body, token="not-the-token"),
            401,
            "does not match",
        ),
        "wrong-signing-key": (
            gitlab_signed_delivery(event, body, key=WRONG_SIGNING_KEY),
            401,
            "does not match",
        ),
        "unsigned": (gitlab_token_delivery(event, body, token=None), 401, "missing"),
        "truncated-signed": (
            gitlab_signed_delivery(event, _truncated(body), signed_body=body),
            401,
            "does not match",
        ),
        "stale-timestamp": (
            gitlab_signed_delivery(event, body, timestamp=stale),
            401,
            "old",
        ),
        "oversize": (gitlab_token_delivery(event, _oversize(body)), 413, "limit"),
        "oversize-chunked": (
            chunked(gitlab_token_delivery(event, _oversize(body))),
            413,
            "limit",
        ),
        "oversize-signed": (gitlab_signed_delivery(event, _oversize(body)), 413, "limit"),
        "content-type": (
            gitlab_token_delivery(event, body, content_type="text/plain"),
            415,
            "content type",
        ),
        "malformed-json": (gitlab_token_delivery(event, _malformed(body)), 400, "not valid JSON"),
        "malformed-json-signed": (
            gitlab_signed_delivery(event, _malformed(body)),
            400,
            "not valid JSON",
        ),
    }


GITLAB_CASES = [
    "wrong-token", "wrong-signing-key", "unsigned", "truncated-signed", "stale-timestamp",
    "oversize", "oversize-chunked", "oversize-signed", "content-type", "malformed-json",
    "malformed-json-signed",
]  # fmt: skip
GITLAB_REFUSALS = [(source, case) for source in GITLAB_SOURCES for case in GITLAB_CASES]


@pytest.mark.parametrize(
    ("source", "case"), GITLAB_REFUSALS, ids=[f"{s}-{c}" for s, c in GITLAB_REFUSALS]
)
def test_gitlab_refused_delivery_answers_4xx_without_job(
    shared: Stage, source: str, case: str
) -> None:
    event, relative = GITLAB_SOURCES[source]
    delivery, status, reason = gitlab_refusals(event, fixture(relative))[case]
    before = set(shared.jobs())
    assert_rejected(shared.send(delivery), status, reason)
    assert set(shared.jobs()) == before, shared.explain()
    assert delivery.delivery_id not in shared.recorded_deliveries()


# --- replays --------------------------------------------------------------------------------------


REPLAYS: dict[str, tuple[Callable[[], Delivery], str]] = {
    "github-push": (
        lambda: github_delivery("push", fixture("github/push/with-new-branch.payload.json")),
        f"hooksync-gh-apply-{GITHUB_PUSH_SHA[:7]}",
    ),
    "gitlab-push-token": (
        lambda: gitlab_token_delivery("Push Hook", fixture("gitlab/push.json")),
        f"hooksync-gl-apply-{GITLAB_SHA[:7]}",
    ),
    "gitlab-push-signed": (
        lambda: gitlab_signed_delivery("Push Hook", fixture("gitlab/push.json")),
        f"hooksync-gl-apply-{GITLAB_SHA[:7]}",
    ),
}


@pytest.mark.parametrize("kind", list(REPLAYS))
def test_replayed_delivery_answers_already_dispatched(fresh: Stage, kind: str) -> None:
    build, name = REPLAYS[kind]
    delivery = build()
    first = fresh.send(delivery)
    assert first.status_code == 202, first.text
    before = fresh.jobs()
    assert list(before) == [name], fresh.explain()
    again = fresh.send(delivery)
    assert again.status_code == 200, again.text
    body = answer(again)
    assert body["status"] == "already dispatched", body
    assert f"delivery {delivery.delivery_id} already dispatched" in body["reason"], body
    assert body["jobs"] == [{"target": name.split("-")[1], "job": name, "outcome": "duplicate"}]
    after = fresh.jobs()
    assert list(after) == [name]
    # The replay recorded nothing on the Job either.
    for key in (names.SHA, names.COALESCED_SHAS, names.DELIVERY):
        assert after[name]["metadata"]["annotations"].get(key) == (
            before[name]["metadata"]["annotations"].get(key)
        )


# --- a burst of pushes ----------------------------------------------------------------------------


def test_burst_of_pushes_costs_at_most_two_jobs_and_records_every_sha(shared: Stage) -> None:
    shas = [random_sha() for _ in range(50)]
    deliveries = [github_delivery("push", synthetic_push(BURST_REPO, sha)) for sha in shas]
    with httpx.Client(timeout=HTTP_TIMEOUT) as http, ThreadPoolExecutor(10) as pool:

        def post(delivery: Delivery) -> httpx.Response:
            return http.post(
                f"{shared.url}{delivery.path}", content=delivery.body, headers=delivery.headers
            )

        responses = list(pool.map(post, deliveries))
    jobs = shared.jobs("burst")
    statuses = [r.status_code for r in responses]
    assert statuses == [202] * len(shas), (
        sorted(jobs),
        [r.text for r in responses if r.status_code != 202],
    )
    outcomes = sorted(answer(r)["jobs"][0]["outcome"] for r in responses)
    assert outcomes.count("created") == 1, outcomes

    assert 1 <= len(jobs) <= 2, f"{sorted(jobs)}\n{shared.explain()}"
    running = [j for j in jobs.values() if not j["spec"].get("suspend")]
    waiting = [j for j in jobs.values() if j["spec"].get("suspend")]
    assert len(running) == 1, sorted(jobs)
    assert len(waiting) <= 1, sorted(jobs)
    active_name = running[0]["metadata"]["name"]
    assert active_name.startswith("hooksync-burst-apply-")
    if waiting:
        annotations = waiting[0]["metadata"]["annotations"]
        assert annotations[names.WAITS_FOR] == active_name
        assert waiting[0]["metadata"]["name"].startswith("hooksync-burst-apply-next-")

    recorded: list[str] = []
    deliveries_recorded: list[str] = []
    for job in jobs.values():
        annotations = job["metadata"]["annotations"]
        recorded.append(annotations[names.SHA])
        recorded += [s for s in annotations.get(names.COALESCED_SHAS, "").split(",") if s]
        deliveries_recorded += annotations[names.DELIVERY].split(",")
    assert sorted(recorded) == sorted(shas)
    assert sorted(deliveries_recorded) == sorted(d.delivery_id for d in deliveries)
    # Every answer names one of the Jobs that now hold its SHA.
    assert {answer(r)["jobs"][0]["job"] for r in responses} <= set(jobs)
    # The premise of "exactly one runs": its pod is refused (absent ServiceAccount), so it
    # cannot have ended and released the waiting Job while the burst went on.
    pods = shared.core.list_namespaced_pod(shared.namespace, label_selector=f"{names.TARGET}=burst")
    assert pods.items == []


def finish(stage: Stage, name: str) -> dict[str, Any]:
    """End a Job the way its deadline would: the Job controller marks it Failed."""
    stage.batch.patch_namespaced_job(name, stage.namespace, {"spec": {"activeDeadlineSeconds": 1}})

    def failed() -> dict[str, Any] | None:
        job = stage.jobs()[name]
        conditions = (job.get("status") or {}).get("conditions") or []
        done = any(c["type"] == "Failed" and c["status"] == "True" for c in conditions)
        return job if done else None

    result: dict[str, Any] = wait_until(failed, timeout=20)
    return result


def test_push_of_a_sha_whose_job_has_ended_starts_a_new_job(shared: Stage) -> None:
    # A rollback by force-push brings the branch back to a commit deployed before: its Job
    # has ended but is still there (until its TTL), and the namespace must converge again.
    sha = random_sha()
    body = synthetic_push(AGAIN_REPO, sha)
    first = shared.send(github_delivery("push", body))
    name = f"hooksync-again-apply-{sha[:7]}"
    assert_dispatched(first, "again", name)
    finish(shared, name)

    again = github_delivery("push", body)
    response = shared.send(again)
    assert response.status_code == 202, f"{response.text}\n{shared.explain()}"
    [dispatched] = answer(response)["jobs"]
    assert dispatched["outcome"] == "created", dispatched
    jobs = shared.jobs("again")
    assert set(jobs) == {name, dispatched["job"]}
    new = jobs[dispatched["job"]]
    assert new["metadata"]["annotations"][names.SHA] == sha
    assert new["metadata"]["annotations"][names.DELIVERY] == again.delivery_id
    assert not new["spec"].get("suspend")
    # A replay of the new delivery is still recognised.
    replay = shared.send(again)
    assert replay.status_code == 200, replay.text
    assert set(shared.jobs("again")) == set(jobs)


# --- two replicas ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def second_replica(shared: Stage, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Another receiver process with the same configuration and the same control plane."""
    directory = tmp_path_factory.mktemp("replica")
    replica = ReceiverProcess(
        directory, shared.config, shared.receiver.kubeconfig, env=RECEIVER_ENV
    )
    replica.start()
    try:
        yield replica.url
    finally:
        replica.stop()


def _one_job_answers(responses: list[httpx.Response], name: str) -> None:
    statuses = sorted(r.status_code for r in responses)
    assert statuses in ([200, 202], [202, 202]), [r.text for r in responses]
    for response in responses:
        body = answer(response)
        assert [j["job"] for j in body["jobs"]] == [name], body
        if response.status_code == 200:
            assert body["status"] == "already dispatched", body


@pytest.mark.parametrize("timing", ["concurrent", "sequential"])
def test_two_replicas_dispatch_one_delivery_once(
    shared: Stage, second_replica: str, timing: str
) -> None:
    sha = random_sha()
    target_name = "pair-c" if timing == "concurrent" else "pair-s"
    delivery = github_delivery("push", synthetic_push(PAIR_REPOS[timing], sha))
    urls = [shared.url, second_replica]
    if timing == "concurrent":
        start = threading.Barrier(len(urls))

        def post(url: str) -> httpx.Response:
            start.wait(10)
            return send(url, delivery)

        with ThreadPoolExecutor(len(urls)) as pool:
            responses = list(pool.map(post, urls))
    else:
        responses = [send(url, delivery) for url in urls]
        assert responses[0].status_code == 202, responses[0].text
        assert responses[1].status_code == 200, responses[1].text
    name = f"hooksync-{target_name}-apply-{sha[:7]}"
    _one_job_answers(responses, name)
    jobs = shared.jobs(target_name)
    assert list(jobs) == [name], shared.explain()
    assert jobs[name]["metadata"]["annotations"][names.DELIVERY] == delivery.delivery_id


# --- the API server away --------------------------------------------------------------------------


def test_unreachable_api_server_answers_503_until_it_is_back(
    own_control_plane: ControlPlane, tmp_path: Path
) -> None:
    api = config.new_client_from_config(config_file=str(own_control_plane.kubeconfig))
    try:
        stage = Stage(
            api,
            own_control_plane.kubeconfig,
            tmp_path / "receiver",
            [target("down", "github", "hooksync-test/down")],
            settings=SETTINGS,
        )
        try:
            _check_unreachable_then_back(own_control_plane, stage)
        finally:
            stage.receiver.stop()
    finally:
        api.close()


def _get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=HTTP_TIMEOUT)


def _check_unreachable_then_back(plane: ControlPlane, stage: Stage) -> None:
    sha = random_sha()
    delivery = github_delivery("push", synthetic_push("hooksync-test/down", sha))
    assert _get(f"{stage.url}/readyz").status_code == 200

    plane.stop_component("kube-apiserver")
    response = stage.send(delivery)
    assert response.status_code == 503, response.text
    retry_after = response.headers.get("retry-after")
    assert retry_after is not None and retry_after.isdigit() and int(retry_after) > 0
    reason = answer(response)["error"]
    assert "\n" not in reason and "retry later" in reason, reason
    assert _get(f"{stage.url}/healthz").status_code == 200
    # /readyz caches its answer for two seconds.
    wait_until(lambda: _get(f"{stage.url}/readyz").status_code == 503, timeout=10)
    assert _get(f"{stage.url}/healthz").status_code == 200

    plane.start_component("kube-apiserver")
    plane.wait_ready()
    wait_until(lambda: _get(f"{stage.url}/readyz").status_code == 200, timeout=15)
    again = stage.send(delivery)
    name = f"hooksync-down-apply-{sha[:7]}"
    assert_dispatched(again, "down", name)
    assert list(stage.jobs()) == [name], stage.explain()


# --- resync CronJobs ------------------------------------------------------------------------------


def test_resync_cronjobs_follow_the_configuration(
    cluster: LocalCluster, kube: client.ApiClient, tmp_path: Path
) -> None:
    # Schedules that do not fire while the test runs (03:00 and 04:30 UTC).
    first, second = "0 3 * * *", "30 4 * * *"
    resynced = target("cron-a", "github", "hooksync-test/cron-a", resync=first)
    plain = target("cron-b", "github", "hooksync-test/cron-b")
    stage = Stage(
        kube,
        cluster.kubeconfig,
        tmp_path / "receiver",
        [resynced, plain],
        settings=SETTINGS,
    )
    try:
        name = "hooksync-resync-cron-a"
        cronjobs = wait_until(stage.cronjobs, timeout=15)
        assert list(cronjobs) == [name], stage.explain()
        cronjob = cronjobs[name]
        assert cronjob["metadata"]["labels"] == {
            names.MANAGED_BY: names.MANAGED_BY_VALUE,
            names.TARGET: "cron-a",
            names.MODE: "resync",
        }
        spec = cronjob["spec"]
        assert spec["schedule"] == first
        assert spec["concurrencyPolicy"] == "Forbid"
        template = spec["jobTemplate"]["spec"]["template"]["spec"]
        [container] = template["containers"]
        assert container["args"][0] == "resync"
        assert arg_value(container["args"], "--target") == "cron-a"
        assert template["serviceAccountName"] == ABSENT_SERVICE_ACCOUNT

        stage.reconfigure([{**resynced, "resync": second}, plain])
        updated = wait_until(
            lambda: (c := stage.cronjobs().get(name)) and c["spec"]["schedule"] == second and c,
            timeout=20,
        )
        assert updated["spec"]["concurrencyPolicy"] == "Forbid"
        assert updated["metadata"]["uid"] == cronjob["metadata"]["uid"]
        assert list(stage.cronjobs()) == [name]

        stage.reconfigure([plain])
        wait_until(lambda: not stage.cronjobs(), timeout=20)
    finally:
        stage.close()
