"""hooksync against a real Gitea: Gitea sends the webhooks, serves the Git the Jobs fetch, and
takes the commit statuses.

Gitea 1.26 (built from Go modules into the cache on first use) runs on loopback with SQLite.
Every delivery below is Gitea's own, read back from its delivery log: what it sent, and what
the receiver answered.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from kubernetes import client

from receiver.reporting.comments import marker
from world.cluster import LocalCluster
from world.gitea import ADMIN, Delivery
from world.gitea_stack import GiteaDeliveryStack
from world.rollouts import RolloutStandIn
from world.stack import WEBHOOK_SECRET

pytestmark = pytest.mark.cluster

CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  greeting: {}\n"
SERVICE = (
    "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n"
    "  selector: {app: web}\n  ports:\n  - port: 80\n"
)
DEPLOYMENT = (
    "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: {}\n"
    "  selector: {{matchLabels: {{app: web}}}}\n  template:\n"
    "    metadata: {{labels: {{app: web}}}}\n"
    "    spec:\n      containers:\n      - name: web\n        image: nginx:1.27\n"
)
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
# A target name of its own: namespaces of other modules' stacks may still be terminating.
TARGET = "teashop"
DEPLOY = f"hooksync/deploy: {TARGET}"
PREVIEW = f"hooksync/preview: {TARGET}"


def app(greeting: str = "hello", replicas: int = 2) -> dict[str, str | None]:
    return {
        "deploy/configmap.yaml": CONFIGMAP.format(greeting),
        "deploy/service.yaml": SERVICE,
        "deploy/deployment.yaml": DEPLOYMENT.format(replicas),
    }


@pytest.fixture(scope="module")
def stack(cluster: LocalCluster, tmp_path_factory: Any) -> Iterator[GiteaDeliveryStack]:
    with GiteaDeliveryStack(
        cluster, tmp_path_factory.mktemp("gitea-stack"), target=TARGET
    ) as gitea_stack:
        yield gitea_stack


def state(status: dict[str, Any]) -> str:
    return str(status["status"])  # Gitea's name for GitHub's "state"


def deployed(stack: GiteaDeliveryStack, greeting: str) -> str:
    """Push the app saying `greeting` to main and wait for its deploy; the commit's SHA."""
    sha = stack.commit(app(greeting), f"Say {greeting}")
    answer = stack.push_event(sha)
    assert answer.status_code == 202, answer.text
    assert state(stack.wait_final_status(sha)) == "success"
    return sha


def pull_delivery(stack: GiteaDeliveryStack, number: int, action: str, after: int) -> Delivery:
    return stack.gitea.wait_delivery(
        lambda d: d.payload.get("number") == number and d.payload.get("action") == action,
        f"pull request #{number} {action}",
        after=after,
    )


def deploy_states(stack: GiteaDeliveryStack, sha: str) -> list[str]:
    return [state(s) for s in stack.statuses(sha) if s["context"] == DEPLOY]


def wait_for(check: Callable[[], bool], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout}s")
        time.sleep(0.25)


def job_names(stack: GiteaDeliveryStack) -> set[str]:
    jobs = client.BatchV1Api(stack.api).list_namespaced_job(stack.jobs_namespace).items
    return {str(job.metadata.name) for job in jobs}


def test_push_then_change_and_prune(stack: GiteaDeliveryStack) -> None:
    first = deployed(stack, "hello")
    objects = stack.objects()
    assert {"ConfigMap/web", "Service/web", "Deployment/web"} <= set(objects)

    second = stack.commit(
        {"deploy/configmap.yaml": CONFIGMAP.format("bonjour"), "deploy/service.yaml": None},
        "Say bonjour; drop the Service",
    )
    answer = stack.push_event(second, before=first)
    assert answer.status_code == 202, answer.text
    status = stack.wait_final_status(second)
    assert state(status) == "success"
    assert "pruned 1" in status["description"]
    objects = stack.objects()
    assert objects["ConfigMap/web"]["data"] == {"greeting": "bonjour"}
    assert "Service/web" not in objects


def test_statuses_read_back_from_giteas_api(stack: GiteaDeliveryStack) -> None:
    sha = deployed(stack, "statuses")
    deploy = [s for s in stack.gitea.statuses(stack.repo_name, sha) if s["context"] == DEPLOY]
    assert deploy_states(stack, sha) == ["pending", "success"]
    final = deploy[-1]
    assert final["creator"]["login"] == ADMIN  # the owner of HOOKSYNC_GITEA_TOKEN
    assert final["description"]
    assert final["target_url"].startswith(f"{stack.public_url}/runs/")
    assert httpx.get(final["target_url"], timeout=10).status_code == 200


def test_pull_request_opened_then_synchronized_gets_previews(stack: GiteaDeliveryStack) -> None:
    deployed(stack, "before the pull request")
    after = stack.gitea.last_delivery_id()
    first = stack.commit(
        {"deploy/deployment.yaml": DEPLOYMENT.format(3)}, "Scale to 3", branch="scale"
    )
    number = stack.gitea.open_pull_request(stack.repo_name, "scale")
    opened = pull_delivery(stack, number, "opened", after)
    assert opened.status == 202, opened.response_body
    status = stack.wait_final_status(first, PREVIEW)
    assert state(status) == "success"
    assert "change 1" in status["description"]

    after = stack.gitea.last_delivery_id()
    second = stack.commit(
        {"deploy/deployment.yaml": DEPLOYMENT.format(4)}, "Scale to 4", branch="scale"
    )
    synchronized = pull_delivery(stack, number, "synchronized", after)
    assert synchronized.event_type == "pull_request_sync"
    assert synchronized.payload["pull_request"]["head"]["sha"] == second
    assert synchronized.status == 202, synchronized.response_body
    assert state(stack.wait_final_status(second, PREVIEW)) == "success"
    # A preview changes nothing: the namespace still runs main's two replicas.
    assert stack.objects()["Deployment/web"]["spec"]["replicas"] == 2


def preview_comments(stack: GiteaDeliveryStack, number: int) -> list[dict[str, Any]]:
    return [c for c in stack.comments(number) if c["body"].startswith(marker(TARGET))]


def test_the_preview_comment_is_created_once_then_edited(stack: GiteaDeliveryStack) -> None:
    deployed(stack, "before the commented pull request")
    first = stack.commit(
        {"deploy/deployment.yaml": DEPLOYMENT.format(5)}, "Scale to 5", branch="commented"
    )
    number = stack.gitea.open_pull_request(stack.repo_name, "commented")
    # Someone else copies the marker: theirs is never taken for hooksync's.
    stack.gitea.create_user("copycat")
    stack.gitea.add_collaborator(stack.repo_name, "copycat", "read")
    stack.gitea.comment(stack.repo_name, number, f"{marker(TARGET)}\nnot mine", sudo="copycat")
    assert state(stack.wait_final_status(first, PREVIEW)) == "success"
    wait_for(
        lambda: any(first[:7] in c["body"] for c in preview_comments(stack, number)),
        "the first head's comment",
    )

    second = stack.commit(
        {"deploy/deployment.yaml": DEPLOYMENT.format(6)}, "Scale to 6", branch="commented"
    )
    assert state(stack.wait_final_status(second, PREVIEW)) == "success"
    wait_for(
        lambda: any(second[:7] in c["body"] for c in preview_comments(stack, number)),
        "the second head's comment",
    )
    found = preview_comments(stack, number)
    assert [c["user"]["login"] for c in found] == ["copycat", ADMIN]
    assert found[0]["body"].endswith("not mine")
    assert "change 1" in found[1]["body"] and first[:7] not in found[1]["body"]


def test_fork_pull_request_follows_previews_from_forks(stack: GiteaDeliveryStack) -> None:
    deployed(stack, "before the fork")
    stack.gitea.create_user("outsider")
    stack.gitea.add_collaborator(stack.repo_name, "outsider", "read")
    fork = stack.gitea.fork(stack.repo_name, "outsider")
    head = fork.commit(
        {"deploy/deployment.yaml": DEPLOYMENT.format(9)}, "Scale to 9", branch="more"
    )
    after = stack.gitea.last_delivery_id()
    number = stack.gitea.open_pull_request(stack.repo_name, "outsider:more", sudo="outsider")
    opened = pull_delivery(stack, number, "opened", after)
    pull = opened.payload["pull_request"]
    assert pull["head"]["repo_id"] != pull["base"]["repo_id"]
    assert opened.status == 200, opened.response_body
    assert "previewsFromForks: false" in opened.answer()["reason"]
    assert [s for s in stack.statuses(head) if s["context"] == PREVIEW] == []


def test_tag_push_deploys_nothing(stack: GiteaDeliveryStack) -> None:
    deployed(stack, "before the tag")
    after = stack.gitea.last_delivery_id()
    assert stack.gitea_repo is not None
    stack.gitea_repo.tag("v1.0.0")
    delivery = stack.gitea.wait_delivery(
        lambda d: d.payload.get("ref") == "refs/tags/v1.0.0", "push of tag v1.0.0", after=after
    )
    assert delivery.event_type == "push"
    assert delivery.status == 200, delivery.response_body
    assert "targets follow branches" in delivery.answer()["reason"]


def test_redelivery_through_the_test_api(stack: GiteaDeliveryStack) -> None:
    # Gitea redelivers (its test delivery, and its replay) under a new X-Gitea-Delivery, so
    # only the SHA tells a redelivery: one while the Job runs joins it, one after it ended
    # converges the branch head again.
    assert stack.rollouts is not None
    stack.rollouts.stop()
    try:
        sha = stack.commit(app("redelivered", replicas=3), "Scale to 3 on main")
        first = stack.push_event(sha)
        assert first.status_code == 202, first.text
        jobs = job_names(stack)
        after = stack.gitea.last_delivery_id()
        stack.gitea.test_delivery(stack.repo_name, stack.hook_id)
        again = stack.gitea.wait_delivery(
            lambda d: d.hook_id == stack.hook_id, "test delivery", after=after
        )
        assert again.payload["after"] == sha  # Gitea's test sends the branch head again
        assert again.status == 200, again.response_body
        assert again.answer()["status"] == "already dispatched"
        assert job_names(stack) == jobs
    finally:
        stack.rollouts = RolloutStandIn(stack.api, [stack.target_namespace]).start()
    assert state(stack.wait_final_status(sha)) == "success"
    # The status goes out when the pod ends; the Job counts as ended once its controller says so.
    batch = client.BatchV1Api(stack.api)
    wait_for(
        lambda: all(
            batch.read_namespaced_job(j, stack.jobs_namespace).status.succeeded for j in jobs
        ),
        "the first Job marked complete",
    )

    after = stack.gitea.last_delivery_id()
    stack.gitea.test_delivery(stack.repo_name, stack.hook_id)
    late = stack.gitea.wait_delivery(
        lambda d: d.hook_id == stack.hook_id, "test delivery", after=after
    )
    assert late.status == 202, late.response_body
    assert [job["outcome"] for job in late.answer()["jobs"]] == ["created"]
    assert late.answer()["jobs"][0]["job"] not in jobs
    wait_for(lambda: deploy_states(stack, sha).count("success") == 2, "a second deploy status")


@pytest.mark.parametrize(
    ("content_type", "secret", "expected"),
    [
        ("form", WEBHOOK_SECRET, (200, 202)),
        ("json", "not-the-secret", (401,)),
        ("form", "not-the-secret", (401,)),
    ],
)
def test_giteas_signature_is_checked_for_json_and_form_deliveries(
    stack: GiteaDeliveryStack, content_type: str, secret: str, expected: tuple[int, ...]
) -> None:
    # Gitea signs the payload in both; the form sends it as `payload=...`.
    url = f"{stack.receivers[0].url}/hooks/gitea"
    hook = stack.gitea.add_webhook(
        stack.repo_name, url, secret, content_type=content_type, events=("push",)
    )
    try:
        after = stack.gitea.last_delivery_id()
        stack.gitea.test_delivery(stack.repo_name, hook)
        delivery = stack.gitea.wait_delivery(lambda d: d.hook_id == hook, "test", after=after)
    finally:
        stack.gitea.remove_webhook(stack.repo_name, hook)
    sent_type = delivery.request_headers["Content-Type"]
    assert (
        sent_type
        == {"form": "application/x-www-form-urlencoded", "json": "application/json"}[content_type]
    )
    assert delivery.status in expected, delivery.response_body


def signed_headers(payload: bytes, content_type: str) -> dict[str, str]:
    signature = hmac.new(WEBHOOK_SECRET.encode(), payload, hashlib.sha256).hexdigest()
    return {"X-Gitea-Event": "push", "X-Gitea-Signature": signature, "Content-Type": content_type}


@pytest.mark.parametrize(
    ("body", "headers", "status", "reason"),
    [
        # Two payload fields: which one was signed is not for the receiver to guess.
        (b"payload=%7B%7D&payload=%7B%7D", signed_headers(b"{}", FORM), 400, "one percent"),
        (b"payload=%7B%ZZ", signed_headers(b"{", FORM), 400, "one percent"),
        # Signed, but not UTF-8 once decoded: the bytes are checked, never replaced.
        (b"payload=%FF", signed_headers(b"\xff", FORM), 400, "UTF-8"),
        (b"{}", {"X-Gitea-Event": "push", "Content-Type": JSON}, 401, "X-Gitea-Signature"),
        (b"{}", signed_headers(b"{}", "text/plain"), 415, "application/json"),
    ],
)
def test_hostile_deliveries_get_a_one_line_reason(
    stack: GiteaDeliveryStack, body: bytes, headers: dict[str, str], status: int, reason: str
) -> None:
    answer = httpx.post(
        f"{stack.receivers[0].url}/hooks/gitea", content=body, headers=headers, timeout=10
    )
    assert answer.status_code == status
    assert reason in answer.json()["error"]
