"""The preview's comment on the pull or merge request and the apply's deployment on the Git
host, end to end: a signed webhook, the Job under the process kubelet, the leader writing
through PyGithub or python-gitlab to the stand-ins."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hooksync import names
from receiver.reporting.comments import marker
from receiver.reporting.loop import HOST_WRITE_ATTEMPTS
from world.cluster import LocalCluster
from world.rollouts import RolloutStandIn
from world.stack import DeliveryStack

pytestmark = pytest.mark.cluster

CONFIGMAP = (
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  greeting: {greeting}\n"
)
ENVIRONMENT_URL = "https://shop.example.com"


def wait_for(check: Callable[[], Any], what: str, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout}s")
        time.sleep(0.25)


def reported(stack: DeliveryStack, sha: str) -> dict[str, Any] | None:
    """The Job for `sha` once its reports are complete (statuses, comment, deployment)."""
    for job in stack.jobs():
        annotations = job["metadata"].get("annotations") or {}
        if annotations.get(names.SHA) == sha and annotations.get(names.REPORTED) == "complete":
            return job
    return None


def ours(stack: DeliveryStack, number: int) -> list[str]:
    """The bodies of this target's preview comments on request `number`."""
    return [c["body"] for c in stack.comments(number) if c["body"].startswith(marker(stack.target))]


def preview(stack: DeliveryStack, greeting: str, number: int, branch: str) -> str:
    head = stack.commit(
        {"deploy/configmap.yaml": CONFIGMAP.format(greeting=greeting)},
        f"greet with {greeting}",
        branch=branch,
    )
    answer = stack.pull_request_event(head, number=number, head_branch=branch)
    assert answer.status_code == 202, answer.text
    wait_for(lambda: reported(stack, head), f"preview of {head[:7]} reported")
    return head


def deploy(stack: DeliveryStack, greeting: str) -> str:
    sha = stack.commit({"deploy/configmap.yaml": CONFIGMAP.format(greeting=greeting)}, greeting)
    answer = stack.push_event(sha)
    assert answer.status_code == 202, answer.text
    wait_for(lambda: reported(stack, sha), f"apply of {sha[:7]} reported")
    return sha


@pytest.fixture(scope="module")
def github_stack(cluster: LocalCluster, tmp_path_factory) -> Iterator[DeliveryStack]:
    settings = {"deployments": {"environmentUrl": ENVIRONMENT_URL}}
    directory = tmp_path_factory.mktemp("comments-github")
    with DeliveryStack(cluster, directory, target="cshop", target_settings=settings) as stack:
        yield stack


def test_a_pull_request_gets_one_comment_edited_on_each_new_head(
    github_stack: DeliveryStack,
) -> None:
    stack = github_stack
    deploy(stack, "before")
    number, branch = 11, f"feature-{uuid.uuid4().hex[:8]}"
    first = preview(stack, "first", number, branch)
    [comment] = ours(stack, number)
    status = stack.final_status(first, f"hooksync/preview: {stack.target}")
    assert status is not None and status["state"] == "success"
    assert f"`{first[:7]}`" in comment and status["description"] in comment
    link = comment.rsplit("[Run page](", 1)[1].split(")", 1)[0]
    # The same run page as the status's link; each link is signed when it is written (the
    # status at the pod's exit, the comment once the Job is Complete), and both open it.
    assert link.split("?")[0] == status["target_url"].split("?")[0]
    assert httpx.get(link).status_code == 200
    assert httpx.get(status["target_url"]).status_code == 200

    second = preview(stack, "second", number, branch)
    [edited] = ours(stack, number)  # the same comment, never a second one
    assert f"`{second[:7]}`" in edited and first[:7] not in edited
    calls = [c for c in stack.host.calls if "/comments" in c.path and c.method != "GET"]
    assert [c.method for c in calls] == ["POST", "PATCH"]
    assert all(c.headers["user-agent"].startswith("PyGithub") for c in calls)


def test_a_failing_comment_endpoint_never_stops_the_status(github_stack: DeliveryStack) -> None:
    stack = github_stack
    # Every try the reporter makes fails; each is paced by its backoff, then it gives up.
    stack.host.fail_next(HOST_WRITE_ATTEMPTS, status=500, path="/comments")
    number, branch = 12, f"feature-{uuid.uuid4().hex[:8]}"
    head = preview(stack, "broken-comments", number, branch)
    status = stack.final_status(head, f"hooksync/preview: {stack.target}")
    assert status is not None and status["state"] == "success"
    assert ours(stack, number) == []
    job = reported(stack, head)
    assert job is not None
    assert job["metadata"]["annotations"][names.COMMENT] == "gave-up"
    entries = [
        json.loads(line) for line in stack.receivers[0].log().splitlines() if line[:1] == "{"
    ]
    failed = [e for e in entries if str(e.get("msg", "")).startswith("comment not written")]
    assert len(failed) == HOST_WRITE_ATTEMPTS, failed
    assert all(e["target"] == stack.target and "500" in e["reason"] for e in failed)
    posts = [c for c in stack.host.calls if "/comments" in c.path and c.method == "POST"]
    assert [c.status for c in posts][-HOST_WRITE_ATTEMPTS:] == [500] * HOST_WRITE_ATTEMPTS


DEPLOYMENT = (
    "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n"
    "  selector: {{matchLabels: {{app: web}}}}\n  template:\n"
    "    metadata: {{labels: {{app: web}}, annotations: {{revision: '{revision}'}}}}\n"
    "    spec:\n      containers:\n      - name: web\n        image: nginx:1.27\n"
)


def test_an_apply_is_recorded_as_a_deployment_in_progress_then_success(
    github_stack: DeliveryStack,
) -> None:
    stack = github_stack
    assert stack.rollouts is not None
    # No rollout goes through until the deployment is seen in progress: the Job waits in its
    # health step meanwhile.
    stack.rollouts.stop()
    try:
        files = {"deploy/deployment.yaml": DEPLOYMENT.format(revision=uuid.uuid4().hex[:8])}
        sha = stack.commit(files, "roll out a new revision")
        assert stack.push_event(sha).status_code == 202

        def statuses() -> list[str]:
            found = [d for d in stack.host.deployments(stack.repo_name) if d["sha"] == sha]
            return [s["state"] for d in found for s in d["statuses"]]

        wait_for(lambda: statuses() == ["in_progress"], "the deployment in progress")
    finally:
        stack.rollouts = RolloutStandIn(stack.api, [stack.target_namespace]).start()
    wait_for(lambda: reported(stack, sha), f"apply of {sha[:7]} reported")

    [deployment] = [d for d in stack.host.deployments(stack.repo_name) if d["sha"] == sha]
    assert deployment["environment"] == stack.target
    assert [s["state"] for s in deployment["statuses"]] == ["in_progress", "success"]
    status = stack.final_status(sha)
    assert status is not None and status["state"] == "success"
    for posted in deployment["statuses"]:
        # The run page of this apply (links are signed anew each time: compare the page).
        assert posted["log_url"].split("?")[0] == status["target_url"].split("?")[0]
        assert posted["environment_url"] == ENVIRONMENT_URL
    assert httpx.get(deployment["statuses"][-1]["log_url"]).status_code == 200


def test_gitlab_merge_request_note_and_deployment(cluster: LocalCluster, tmp_path: Path) -> None:
    settings = {"deployments": {"environment": "production", "environmentUrl": ENVIRONMENT_URL}}
    with DeliveryStack(
        cluster, tmp_path, target="glcshop", provider="gitlab", target_settings=settings
    ) as stack:
        sha = deploy(stack, "on-gitlab")
        [deployment] = stack.host.deployments(stack.repo_name)
        assert (deployment["sha"], deployment["ref"]) == (sha, "main")
        assert deployment["history"] == ["running", "success"]
        assert deployment["environment"]["name"] == "production"
        assert deployment["environment"]["external_url"] == ENVIRONMENT_URL

        branch = f"feature-{uuid.uuid4().hex[:8]}"
        first = preview(stack, "first", 4, branch)
        [note] = ours(stack, 4)
        assert f"`{first[:7]}`" in note
        second = preview(stack, "second", 4, branch)
        [note] = ours(stack, 4)
        assert f"`{second[:7]}`" in note
        writes = [c for c in stack.host.calls if "/notes" in c.path and c.method != "GET"]
        assert [c.method for c in writes] == ["POST", "PUT"]


def big_configmap(name: str, lines: int) -> str:
    rows = "".join(f"    row {n:05d}: {'x' * 80}\n" for n in range(lines))
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  rows: |\n{rows}"


SECRET = (
    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: web-credentials\ntype: Opaque\n"
    "stringData:\n  password: {password}\n"
)


def test_a_diff_too_large_for_github_is_cut_with_the_run_page_link(
    github_stack: DeliveryStack,
) -> None:
    stack = github_stack
    # Six new ConfigMaps of about 18,000 characters each: too many for 65,536 characters.
    files: dict[str, str | None] = {
        f"deploy/big-{n}.yaml": big_configmap(f"big-{n}", 200) for n in range(6)
    }
    files["deploy/secret.yaml"] = SECRET.format(password="hunter2-in-the-pr")
    number, branch = 13, f"feature-{uuid.uuid4().hex[:8]}"
    head = stack.commit(files, "six big ConfigMaps and a Secret", branch=branch)
    answer = stack.pull_request_event(head, number=number, head_branch=branch)
    assert answer.status_code == 202, answer.text
    wait_for(lambda: reported(stack, head), f"preview of {head[:7]} reported")

    [comment] = ours(stack, number)
    status = stack.final_status(head, f"hooksync/preview: {stack.target}")
    assert status is not None and status["state"] == "success"
    assert len(comment) <= 65_536
    shown = comment.count("<details>")
    assert comment.count("</details>") == shown  # whole sections only
    cut = re.search(r"(\d+) more objects?: see the \[run page\]\((.+?)\)\.\n$", comment)
    assert cut is not None, comment[-300:]
    assert cut.group(2).split("?")[0] == status["target_url"].split("?")[0]
    assert httpx.get(cut.group(2)).status_code == 200
    assert shown >= 1 and shown + int(cut.group(1)) >= 7
    assert "row 00199" in comment  # a whole ConfigMap's rendered manifest is shown
    # The Secret is named (if it fit) but its value appears nowhere.
    assert "hunter2" not in comment
