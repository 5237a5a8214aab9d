"""Every deploy and every preview answers on the commit: the whole path, end to end.

A signed webhook reaches the receiver process; the Job runs `hooksync-job` under the process
kubelet as the target's ServiceAccount against real Git; the leader posts statuses to the Git
host stand-in through PyGithub or python-gitlab.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.world.cluster import LocalCluster
from tests.world.stack import DeliveryStack

pytestmark = pytest.mark.cluster

APP = {
    "deploy/configmap.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  greeting: hello\n"
    ),
    "deploy/service.yaml": (
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n"
        "  selector: {app: web}\n  ports:\n  - port: 80\n"
    ),
    "deploy/deployment.yaml": (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n"
        "  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n"
        "    spec:\n      containers:\n      - name: web\n        image: nginx:1.27\n"
    ),
}


@pytest.fixture(scope="module")
def github_stack(cluster: LocalCluster, tmp_path_factory) -> Iterator[DeliveryStack]:
    with DeliveryStack(cluster, tmp_path_factory.mktemp("github-stack"), target="shop") as stack:
        yield stack


def test_push_deploys_and_reports_success_with_a_run_link(github_stack: DeliveryStack) -> None:
    sha = github_stack.commit(APP, "first deploy")
    answer = github_stack.push_event(sha)
    assert answer.status_code == 202, answer.text

    status = github_stack.wait_final_status(sha)
    assert status["state"] == "success", status["description"]
    assert status["description"] == "applied 3, pruned 0, 0 drifted"
    assert set(github_stack.objects()) == {"ConfigMap/web", "Service/web", "Deployment/web"}
    states = [s["state"] for s in github_stack.statuses(sha)]
    assert states[0] == "pending" and states.count("success") == 1

    page = httpx.get(status["target_url"])
    assert page.status_code == 200
    assert sha in page.text and "applied 3" in page.text
