"""Every deploy and every preview answers on the commit: the whole path, end to end.

A signed webhook reaches the receiver process; the Job runs `hooksync-job` under the process
kubelet as the target's ServiceAccount against real Git; the leader posts statuses to the Git
host stand-in through PyGithub or python-gitlab.

Where a test needs a Job to still be running at some point (to see its pending status, to queue
pushes behind it, to kill the leader during it), it pauses the Deployment rollout stand-in: the
Job then waits in its health step until the rollout is let through.
"""

from __future__ import annotations

import contextlib
import json
import signal
import string
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from hooksync import names
from receiver.jobapi import JobApi, job_selector
from receiver.jobview import is_finished, is_suspended, job_shas
from receiver.reporting.links import sign_run
from world.cluster import LocalCluster
from world.rollouts import RolloutStandIn
from world.stack import DeliveryStack

pytestmark = pytest.mark.cluster

CONFIGMAP = (
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  greeting: {greeting}\n"
)
SERVICE = (
    "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n"
    "  selector: {app: web}\n  ports:\n  - port: 80\n"
)
DEPLOYMENT = (
    "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n"
    "  selector: {{matchLabels: {{app: web}}}}\n  template:\n"
    "    metadata: {{labels: {{app: web}}, annotations: {{revision: '{revision}'}}}}\n"
    "    spec:\n      containers:\n      - name: web\n        image: nginx:1.27\n"
)
# Files some tests add on main; every other commit on main removes them again, so the tests
# do not depend on each other's order.
EXTRA_FILES = ("deploy/rbac.yaml", "deploy/elsewhere.yaml", "deploy/extra.yaml")


def app(greeting: str = "hello", revision: str = "1") -> dict[str, str | None]:
    """The web app: ConfigMap, Service, Deployment. A new `revision` is a new rollout."""
    files: dict[str, str | None] = {
        "deploy/configmap.yaml": CONFIGMAP.format(greeting=greeting),
        "deploy/service.yaml": SERVICE,
        "deploy/deployment.yaml": DEPLOYMENT.format(revision=revision),
    }
    files.update(dict.fromkeys(EXTRA_FILES))
    return files


def fresh() -> str:
    return uuid.uuid4().hex[:10]


# -- fixtures and helpers --------------------------------------------------------------------


@pytest.fixture(scope="module")
def github_stack(cluster: LocalCluster, tmp_path_factory) -> Iterator[DeliveryStack]:
    with DeliveryStack(cluster, tmp_path_factory.mktemp("github-stack"), target="shop") as stack:
        yield stack


@contextlib.contextmanager
def rollouts_paused(stack: DeliveryStack) -> Iterator[None]:
    """No Deployment rolls out inside the block, so a Job that changed one stays running."""
    assert stack.rollouts is not None
    stack.rollouts.stop()
    try:
        yield
    finally:
        stack.rollouts = RolloutStandIn(stack.api, [stack.target_namespace]).start()


def wait_for(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout}s")
        time.sleep(0.25)


def context_of(stack: DeliveryStack, mode: str = "deploy") -> str:
    return f"hooksync/{mode}: {stack.target}"


def states(stack: DeliveryStack, sha: str, context: str | None = None) -> list[str]:
    """The states posted on `sha` under `context`, oldest first."""
    context = context or context_of(stack)
    return [
        str(s.get("state") or s.get("status"))
        for s in stack.statuses(sha)
        if (s.get("context") or s.get("name")) == context
    ]


def wait_reported(stack: DeliveryStack, shas: list[str], timeout: float = 90) -> None:
    """Until every Job standing for one of `shas` has its reports out and its finalizer off."""

    def done() -> bool:
        mine = [j for j in stack.jobs() if set(job_shas(j)) & set(shas)]
        return bool(mine) and all(
            (j["metadata"].get("annotations") or {}).get(names.REPORTED) == "complete"
            # The label keeps the Job out of the leader's listing from now on.
            and (j["metadata"].get("labels") or {}).get(names.REPORTED) == "complete"
            and names.STATUS_FINALIZER not in (j["metadata"].get("finalizers") or [])
            for j in mine
        )

    wait_for(done, f"reports complete for {[s[:7] for s in shas]}", timeout)


def resource_versions(stack: DeliveryStack) -> dict[str, str]:
    """Every ConfigMap (the inventory too), Service and Deployment of the target namespace."""
    core, apps = client.CoreV1Api(stack.api), client.AppsV1Api(stack.api)
    namespace = stack.target_namespace
    found: dict[str, str] = {}
    for kind, items in (
        ("ConfigMap", core.list_namespaced_config_map(namespace).items),
        ("Service", core.list_namespaced_service(namespace).items),
        ("Deployment", apps.list_namespaced_deployment(namespace).items),
    ):
        for item in items:
            if item.metadata.name != "kube-root-ca.crt":  # published by the controller manager
                found[f"{kind}/{item.metadata.name}"] = str(item.metadata.resource_version)
    return found


def greeting(stack: DeliveryStack) -> str | None:
    configmap = stack.objects().get("ConfigMap/web")
    return None if configmap is None else (configmap.get("data") or {}).get("greeting")


def deploy(stack: DeliveryStack, files: dict[str, str | None], message: str) -> str:
    """Commit on main, push, and wait for the deploy's success status."""
    sha = stack.commit(files, message)
    answer = stack.push_event(sha)
    assert answer.status_code == 202, answer.text
    status = stack.wait_final_status(sha)
    assert status["state"] == "success", status["description"]
    return sha


URLSAFE = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"


def tampered(signature: str) -> str:
    """The signature with one character of its MAC changed (high bit, so it really differs)."""
    index = len(signature) - 5
    char = signature[index]
    replacement = URLSAFE[(URLSAFE.index(char) + 32) % 64]
    return signature[:index] + replacement + signature[index + 1 :]


# -- one push ----------------------------------------------------------------------------------


def test_push_deploys_and_reports_success_with_a_run_link(github_stack: DeliveryStack) -> None:
    with rollouts_paused(github_stack):
        sha = github_stack.commit(app(revision=fresh()), "deploy a new revision")
        answer = github_stack.push_event(sha)
        assert answer.status_code == 202, answer.text
        wait_for(lambda: states(github_stack, sha) == ["pending"], "a pending status")

    status = github_stack.wait_final_status(sha)
    assert status["state"] == "success", status["description"]
    assert status["description"] == "applied 3, pruned 0, 0 drifted"
    assert set(github_stack.objects()) == {"ConfigMap/web", "Service/web", "Deployment/web"}
    wait_reported(github_stack, [sha])
    assert states(github_stack, sha) == ["pending", "success"]
    # Reported, the Job stays until its TTL but drops out of what the leader lists.
    listing = JobApi(github_stack.api, github_stack.jobs_namespace)
    listed = {n for j in listing.list_jobs(job_selector()) for n in job_shas(j)}
    in_flight = {n for j in listing.list_jobs(job_selector(unreported=True)) for n in job_shas(j)}
    assert sha in listed and sha not in in_flight

    page = httpx.get(status["target_url"])
    assert page.status_code == 200
    assert sha in page.text and "applied 3" in page.text


# -- failures ----------------------------------------------------------------------------------

CLUSTER_ROLE = (
    "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n"
    "  name: shop-reader\nrules:\n- apiGroups: ['']\n  resources: [pods]\n  verbs: [get]\n"
)
FOREIGN_DEPLOYMENT = (
    "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n  namespace: kube-system\n"
    "spec:\n  replicas: 1\n  selector: {matchLabels: {app: api}}\n  template:\n"
    "    metadata: {labels: {app: api}}\n"
    "    spec:\n      containers:\n      - name: api\n        image: nginx:1.27\n"
)


@pytest.mark.parametrize(
    ("path", "manifest", "named"),
    [
        ("deploy/rbac.yaml", CLUSTER_ROLE, "ClusterRole/shop-reader"),
        ("deploy/elsewhere.yaml", FOREIGN_DEPLOYMENT, "Deployment/api"),
    ],
    ids=["cluster-scoped", "foreign-namespace"],
)
def test_a_broken_manifest_fails_the_commit_naming_the_object(
    github_stack: DeliveryStack, path: str, manifest: str, named: str
) -> None:
    before = resource_versions(github_stack)
    files = app(greeting=f"broken-{fresh()}")
    files[path] = manifest
    sha = github_stack.commit(files, f"add {named}")
    assert github_stack.push_event(sha).status_code == 202

    status = github_stack.wait_final_status(sha)
    assert status["state"] == "failure"
    assert status["description"].startswith("apply failed: ")
    assert named in status["description"]
    assert len(status["description"]) <= 140
    wait_reported(github_stack, [sha])
    assert states(github_stack, sha).count("failure") == 1
    # Validation failed before anything was applied: the namespace is as it was.
    assert resource_versions(github_stack) == before


# -- previews ----------------------------------------------------------------------------------


def test_a_pull_request_gets_a_preview_check_and_changes_nothing(
    github_stack: DeliveryStack,
) -> None:
    base = deploy(github_stack, app(greeting="before-preview"), "the app before the PR")
    before = resource_versions(github_stack)

    branch = f"feature-{fresh()}"
    head = github_stack.commit(
        {
            "deploy/configmap.yaml": CONFIGMAP.format(greeting="from-the-pr"),
            "deploy/extra.yaml": CONFIGMAP.replace("name: web", "name: extra").format(
                greeting="new"
            ),
            "deploy/service.yaml": None,
        },
        "change the greeting, add a ConfigMap, drop the Service",
        branch=branch,
    )
    assert head != base
    answer = github_stack.pull_request_event(head, number=7, head_branch=branch)
    assert answer.status_code == 202, answer.text

    preview_context = context_of(github_stack, "preview")
    assert preview_context == "hooksync/preview: shop"
    status = github_stack.wait_final_status(head, preview_context)
    assert status["state"] == "success", status["description"]
    assert status["description"].startswith("would create 1, change 1, prune 1"), status
    wait_reported(github_stack, [head])
    assert states(github_stack, head, preview_context).count("success") == 1
    # A preview is a check on the PR head, not a deploy of it.
    assert states(github_stack, head) == []
    # Nothing in the target namespace was written: same objects, same resourceVersions.
    assert resource_versions(github_stack) == before
    assert greeting(github_stack) == "before-preview"


# -- a burst of pushes -------------------------------------------------------------------------


def test_a_burst_of_pushes_ends_every_sha_and_deploys_the_last(
    github_stack: DeliveryStack,
) -> None:
    revision = fresh()
    shas: list[str] = []
    # The first push changes the Deployment, so its Job waits for the (paused) rollout while
    # the rest arrive: they queue behind it instead of each deploying.
    with rollouts_paused(github_stack):
        for n in range(8):
            sha = github_stack.commit(app(greeting=f"burst-{n}", revision=revision), f"burst {n}")
            answer = github_stack.push_event(sha)
            assert answer.status_code == 202, answer.text
            shas.append(sha)

    for sha in shas:
        github_stack.wait_final_status(sha, timeout=120)
    wait_reported(github_stack, shas, timeout=60)
    finals = {sha: github_stack.final_status(sha) or {} for sha in shas}
    for sha in shas:
        assert finals[sha]["state"] == "success", (sha, finals[sha])
        posted = states(github_stack, sha)
        assert posted[-1] == "success", (sha, posted)  # nothing is left pending
        assert "failure" not in posted
    included = [sha for sha in shas if finals[sha]["description"].startswith("included in ")]
    assert included, [f["description"] for f in finals.values()]
    # Nothing newer than the last commit exists, so it is never merely "included".
    assert not finals[shas[-1]]["description"].startswith("included in"), finals[shas[-1]]
    # The namespace ends at the last commit.
    assert greeting(github_stack) == "burst-7"
    # At most one Job ran and one more waited (design rule 2).
    burst_jobs = [j for j in github_stack.jobs() if set(job_shas(j)) & set(shas)]
    assert len(burst_jobs) == 2, [j["metadata"]["name"] for j in burst_jobs]


def apply_job_of(stack: DeliveryStack, sha: str) -> dict[str, Any] | None:
    return next((j for j in stack.jobs() if sha in job_shas(j)), None)


def test_a_burst_that_outlasts_a_converge_still_costs_one_waiting_job(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    # A long quiet period, so that the pushes below (each a commit and a webhook) are always
    # closer together than it, however slow the machine.
    settings = {"burstQuietSeconds": 15, "burstMaxWaitSeconds": 120}
    with DeliveryStack(cluster, tmp_path, target="storm", settings=settings) as stack:
        revision = fresh()
        shas: list[str] = []

        def push(n: int) -> None:
            sha = stack.commit(app(greeting=f"storm-{n}", revision=revision), f"storm {n}")
            assert stack.push_event(sha).status_code == 202
            shas.append(sha)

        with rollouts_paused(stack):
            push(0)
            wait_for(lambda: deployed_revision(stack) == revision, "the first commit applied")
            push(1)  # queues behind the first Job, which waits for its rollout
        wait_for(lambda: is_finished(apply_job_of(stack, shas[0]) or {}), "the first Job ended")
        # Pushes keep arriving after the first Job has ended: they fold into the waiting Job,
        # which holds on until they pause, instead of running and queueing a third Job.
        for n in range(2, 7):
            push(n)
            waiting = apply_job_of(stack, shas[1])
            assert waiting is not None and is_suspended(waiting), n
            assert shas[n] in job_shas(waiting)

        for sha in shas:
            stack.wait_final_status(sha, timeout=120)
        wait_reported(stack, shas)
        assert greeting(stack) == "storm-6"
        storm_jobs = [j for j in stack.jobs() if set(job_shas(j)) & set(shas)]
        assert len(storm_jobs) == 2, [j["metadata"]["name"] for j in storm_jobs]
        last = stack.final_status(shas[-1]) or {}
        assert last["state"] == "success" and last["description"].startswith("applied "), last


# -- the run page ------------------------------------------------------------------------------


def test_run_links_open_only_when_signed_fresh_and_for_that_run(
    github_stack: DeliveryStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    sha = deploy(github_stack, app(greeting=f"linked-{fresh()}"), "a run to look at")
    status = github_stack.wait_final_status(sha)
    parts = urlsplit(status["target_url"])
    job = parts.path.rsplit("/", 1)[-1]
    (signature,) = parse_qs(parts.query)["sig"]
    base = f"{parts.scheme}://{parts.netloc}{parts.path}"

    page = httpx.get(status["target_url"])
    assert page.status_code == 200
    assert sha in page.text
    assert status["description"] in page.text
    assert "<h3>Log</h3>" in page.text and "(empty)" not in page.text
    # The Job's own summary line, shown readable rather than as JSON.
    assert "<span class='step'>summary</span>" in page.text
    assert "result=<b>success</b>" in page.text and "&quot;result&quot;" not in page.text

    now = time.time()
    with monkeypatch.context() as past:
        past.setattr(time, "time", lambda: now - 30 * 24 * 3600)
        expired = sign_run(github_stack.link_key, job)
    refused = {
        "tampered": httpx.get(base, params={"sig": tampered(signature)}),
        "expired": httpx.get(base, params={"sig": expired}),
        "other run": httpx.get(
            base, params={"sig": sign_run(github_stack.link_key, "hooksync-shop-apply-0000000")}
        ),
        "other key": httpx.get(base, params={"sig": sign_run("rotated-" + fresh(), job)}),
        "unsigned": httpx.get(base),
    }
    for why, answer in refused.items():
        assert answer.status_code == 403, why
        for secret in (job, sha, sha[:7], status["description"]):
            assert secret not in answer.text, (why, secret)


# -- the Git host misbehaves -------------------------------------------------------------------


def deployed_revision(stack: DeliveryStack) -> str | None:
    deployment = stack.objects().get("Deployment/web")
    if deployment is None:
        return None
    template = deployment["spec"]["template"]["metadata"]
    return (template.get("annotations") or {}).get("revision")


def test_rate_limits_and_server_errors_delay_statuses_but_each_arrives_once(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    with DeliveryStack(cluster, tmp_path, target="flaky") as stack:
        stack.host.fail_next(2, status=429, retry_after=1)
        stack.host.fail_next(2, status=500)
        revision = fresh()
        shas = []
        with rollouts_paused(stack):
            # The first Job applies the first commit and then waits for its rollout; the next
            # two pushes queue behind it in one waiting Job, which deploys the last of them.
            shas.append(stack.commit(app(greeting="flaky-0", revision=revision), "flaky 0"))
            assert stack.push_event(shas[0]).status_code == 202
            wait_for(lambda: deployed_revision(stack) == revision, "the first commit applied")
            for n in (1, 2):
                sha = stack.commit(app(greeting=f"flaky-{n}", revision=revision), f"flaky {n}")
                assert stack.push_event(sha).status_code == 202
                shas.append(sha)

        finals = {sha: stack.wait_final_status(sha, timeout=120) for sha in shas}
        wait_reported(stack, shas)
        answered = [c.status for c in stack.host.calls if c.method == "POST"]
        assert answered.count(429) == 2 and answered.count(500) == 2, answered
        for sha in shas:
            assert finals[sha]["state"] == "success", finals[sha]
            posted = states(stack, sha)
            assert posted.count("success") == 1, (sha, posted)
            assert posted.count("pending") <= 1, (sha, posted)
            assert posted[-1] == "success"
        assert finals[shas[0]]["description"].startswith("applied ")
        assert finals[shas[1]]["description"] == f"included in {shas[2][:7]}"
        assert finals[shas[2]]["description"].startswith("applied ")
        assert greeting(stack) == "flaky-2"


# -- the leader dies mid-run -------------------------------------------------------------------


def lease_holder(stack: DeliveryStack) -> str | None:
    try:
        lease = client.CoordinationV1Api(stack.api).read_namespaced_lease(
            names.LEADER_LEASE_NAME, stack.jobs_namespace
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return lease.spec.holder_identity if lease.spec else None


def logged(stack: DeliveryStack, index: int, msg: str, **fields: Any) -> bool:
    for line in stack.receivers[index].log().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("msg") == msg and all(entry.get(k) == v for k, v in fields.items()):
            return True
    return False


def test_another_replica_finishes_the_reports_when_the_leader_is_killed(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    with DeliveryStack(cluster, tmp_path, target="ha", receivers=2) as stack:
        holder = wait_for(lambda: lease_holder(stack), "a leader", timeout=30)
        leader = ["receiver-0", "receiver-1"].index(holder)
        survivor = 1 - leader
        wait_for(
            lambda: logged(stack, leader, "leadership changed", leader=True, identity=holder),
            "the leader's log",
        )

        with rollouts_paused(stack):
            sha = stack.commit(app(revision=fresh()), "deploy while the leader dies")
            assert stack.push_event(sha, receiver=survivor).status_code == 202
            wait_for(lambda: states(stack, sha) == ["pending"], "the leader's pending status")
            wait_for(
                lambda: any(
                    sha in (j["metadata"].get("annotations") or {}).get(names.REPORTED_PENDING, "")
                    for j in stack.jobs()
                ),
                "the pending status recorded on the Job",
            )
            stack.receivers[leader].stop(signal.SIGKILL)

        status = stack.wait_final_status(sha, timeout=90)
        wait_reported(stack, [sha])
        assert status["state"] == "success", status["description"]
        assert states(stack, sha) == ["pending", "success"]
        assert lease_holder(stack) == f"receiver-{survivor}"
        assert logged(
            stack, survivor, "status posted", commit=sha, state="success",
            context=context_of(stack),
        )  # fmt: skip


# -- GitLab ------------------------------------------------------------------------------------


def test_gitlab_push_gets_a_success_status_through_python_gitlab(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    with DeliveryStack(cluster, tmp_path, target="glshop", provider="gitlab") as stack:
        # GitLab's throttle answers the first status write; the reporter backs off and retries.
        stack.host.fail_next(1, status=429, retry_after=1)
        sha = stack.commit(app(), "first deploy on GitLab")
        answer = stack.push_event(sha)
        assert answer.status_code == 202, answer.text

        status = stack.wait_final_status(sha)
        wait_reported(stack, [sha])
        assert status["name"] == "hooksync/deploy: glshop"
        assert status["status"] == "success"
        assert status["description"] == "applied 3, pruned 0, 0 drifted"
        assert "/runs/" in status["target_url"]
        assert states(stack, sha) == ["success"]  # one record, moved through GitLab's states
        posts = [c for c in stack.host.calls if c.method == "POST" and sha in c.path]
        answered = [c.status for c in posts]
        assert answered[0] == 429 and len(answered) > 1 and set(answered[1:]) == {201}, answered
        assert all(c.headers.get("user-agent", "").startswith("python-gitlab") for c in posts)
        assert all(not c.query for c in posts)  # client options never leak into the request
        assert posts[-1].body["state"] == "success"
        assert posts[-1].body["name"] == "hooksync/deploy: glshop"
        assert logged(stack, 0, "status not posted; will retry", target="glshop")
