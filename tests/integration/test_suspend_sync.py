"""Suspend and sync now, end to end: the real receiver, Git over HTTP, the GitHub stand-in, and
Jobs that run under the process kubelet as the target's ServiceAccount.

- A Job made from the resync CronJob with `kubectl create job --from=cronjob/...` (the way the
  README documents) converges the branch head.
- `POST /targets/<target>/sync` with the sync token starts a resync that converges the branch
  head; without the token, or for an unknown target, nothing starts.
- With `suspend: true`, pushes and pull requests answer 200 "suspended" and start no Job, the
  resync CronJob is suspended, sync now answers 409, and the status page says so; lifting the
  suspend deploys again.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from kubernetes import client

from world.cluster import LocalCluster
from world.kubelet import wait_until
from world.stack import DeliveryStack

pytestmark = pytest.mark.cluster

SYNC_TOKEN = "sync-token-for-the-test"
# 1 January, 00:00 UTC: a schedule that cannot fire while the test runs.
NEVER = "0 0 1 1 *"
TARGET = "pausable"
CRONJOB = f"hooksync-resync-{TARGET}"


def app(greeting: str) -> dict[str, str]:
    return {
        "deploy/configmap.yaml": (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n"
            f"data:\n  greeting: {greeting}\n"
        )
    }


class PausableStack(DeliveryStack):
    """The delivery stack with a resync CronJob that never fires on its own, a sync token,
    and a switch for `suspend`."""

    suspended = False

    def config(self) -> dict[str, Any]:
        document = super().config()
        document["targets"][0].update(resync=NEVER, suspend=self.suspended)
        return document

    def receiver_env(self, index: int) -> dict[str, str]:
        return {**super().receiver_env(index), "HOOKSYNC_SYNC_TOKEN": SYNC_TOKEN}

    def suspend(self, suspended: bool) -> None:
        """Rewrite the configuration; returns once the receiver has taken it up (its resync
        CronJob follows the configuration it reloaded)."""
        self.suspended = suspended
        for receiver in self.receivers:
            receiver.write_config(self.config())
        batch = client.BatchV1Api(self.api)
        wait_until(
            lambda: (
                batch.read_namespaced_cron_job(CRONJOB, self.jobs_namespace).spec.suspend
                is suspended
            ),
            timeout=30,
        )

    def sync(self, target: str = TARGET, token: str | None = SYNC_TOKEN) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        url = f"{self.receivers[0].url}/targets/{target}/sync"
        return httpx.post(url, headers=headers, timeout=30)

    def greeting(self) -> str | None:
        core = client.CoreV1Api(self.api)
        try:
            found = core.read_namespaced_config_map("web", self.target_namespace)
        except client.ApiException:
            return None
        return (found.data or {}).get("greeting")

    def wait_succeeded(self, job: str, timeout: float = 120) -> None:
        batch = client.BatchV1Api(self.api)

        def ended() -> bool:
            status = batch.read_namespaced_job(job, self.jobs_namespace).status
            if status.failed and not status.active:
                raise AssertionError(f"Job {job} failed: {self.receivers[0].log()[-2000:]}")
            return bool(status.succeeded)

        wait_until(ended, timeout, interval=0.25)

    def job_names(self) -> set[str]:
        return {job["metadata"]["name"] for job in self.jobs()}


@pytest.fixture(scope="module")
def stack(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with PausableStack(cluster, tmp_path_factory.mktemp("pausable"), target=TARGET) as started:
        batch = client.BatchV1Api(started.api)
        wait_until(lambda: batch.list_namespaced_cron_job(started.jobs_namespace).items, timeout=30)
        yield started


def test_a_job_created_from_the_resync_cronjob_converges(
    cluster: LocalCluster, stack: PausableStack
) -> None:
    stack.commit(app("from-the-cronjob"), "a first commit")
    assert cluster.control_plane.bin_dir is not None
    kubectl = str(cluster.control_plane.bin_dir / "kubectl")
    job = f"{CRONJOB}-by-hand"
    created = subprocess.run(
        [kubectl, "--kubeconfig", str(cluster.kubeconfig), "--namespace", stack.jobs_namespace,
         "create", "job", f"--from=cronjob/{CRONJOB}", job],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    stack.wait_succeeded(job)
    assert stack.greeting() == "from-the-cronjob"


def test_sync_now_starts_a_resync_for_the_token_holder_only(stack: PausableStack) -> None:
    stack.commit(app("synced-now"), "a commit no webhook announced")
    before = stack.job_names()
    assert stack.sync(token=None).status_code == 401
    assert stack.sync(token="not-the-token").status_code == 401
    unknown = stack.sync(target="nobody")
    assert unknown.status_code == 404, unknown.text
    assert stack.job_names() == before

    started = stack.sync()
    assert started.status_code == 202, started.text
    body = started.json()
    assert body["status"] == "started" and body["target"] == TARGET
    job = body["job"]
    assert job.startswith(f"hooksync-{TARGET}-sync-") and job not in before
    # Asked again: within the same minute it is the same Job; past it, the next minute's.
    again = stack.sync()
    if again.json()["job"] == job:
        assert again.status_code == 200 and again.json()["status"] == "already started"
    else:
        assert again.status_code == 202
        assert int(again.json()["job"].rsplit("-", 1)[1]) == int(job.rsplit("-", 1)[1]) + 1
    stack.wait_succeeded(job)
    assert stack.greeting() == "synced-now"


def test_a_suspended_target_starts_nothing_and_says_so(stack: PausableStack) -> None:
    stack.suspend(True)
    try:
        before = stack.job_names()
        sha = stack.commit(app("while-suspended"), "a commit while suspended")

        pushed = stack.push_event(sha)
        assert pushed.status_code == 200, pushed.text
        assert pushed.json()["status"] == "suspended"
        assert f"target {TARGET} is suspended" in pushed.json()["reason"]
        previewed = stack.pull_request_event(sha)
        assert previewed.status_code == 200 and previewed.json()["status"] == "suspended"
        refused = stack.sync()
        assert refused.status_code == 409, refused.text
        assert "suspended" in refused.json()["error"]

        page = httpx.get(f"{stack.receivers[0].url}/", timeout=30)
        row = page.text.split(f"<tr id='target-{TARGET}'>")[1].split("</tr>")[0]
        assert "<span class='state suspended'>suspended</span>" in row
        assert "<td class='next-resync'><small>suspended</small></td>" in row

        assert stack.job_names() == before
        assert stack.statuses(sha) == []
        assert stack.greeting() != "while-suspended"
    finally:
        stack.suspend(False)

    # Lifted: the next push deploys the branch head again.
    pushed = stack.push_event(sha)
    assert pushed.status_code == 202, pushed.text
    assert stack.wait_final_status(sha)["state"] == "success"
    assert stack.greeting() == "while-suspended"
