"""Converge: a preview changes nothing, a resync reverts drift, and an apply waits for its
Deployments to roll out (or fails naming the one that never does).

Each test runs `hooksync-job` the way a Job does (`world.converge.Target`: a subprocess as
the target's ServiceAccount, fetching over token-protected HTTP; or a real Job under the
process kubelet) and asserts what it leaves behind: objects, resourceVersions, the
inventory, the summary and the exit code. Fixtures (`target`, `git`, `rollouts`,
`other_namespace`) are in conftest.py.
"""

from __future__ import annotations

import subprocess
import threading
import time
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from hooksync.jobspec import EXIT_OK, EXIT_PERMANENT
from hooksync.names import parent_name
from world.converge import (
    PATH_IN_REPO,
    Target,
    changed_between,
    configmap_data,
    finished,
    inventory_of,
    live_objects,
)
from world.kubelet import wait_until
from world.manifests import configmap, deployment, shop_files
from world.rollouts import RolloutStandIn, report_rolled_out

pytestmark = pytest.mark.cluster


def test_preview_reports_counts_of_a_pull_request_and_changes_nothing(
    kube: client.ApiClient, target: Target, rollouts: RolloutStandIn
) -> None:
    target.repo.commit(shop_files("v1"), "main")
    target.converge()
    pr_head = target.repo.commit(
        {
            f"{PATH_IN_REPO}/config.yaml": configmap("settings", {"version": "v2"}),
            f"{PATH_IN_REPO}/service.yaml": None,
            f"{PATH_IN_REPO}/extra.yaml": configmap("extra", {"new": "yes"}),
        },
        "a pull request",
        branch="feature",
    )
    before = live_objects(kube, target.namespace)

    run = target.run("preview", sha=pr_head)
    assert run.code == EXIT_OK, run.explain()
    assert run.result == "success" and run.summary["mode"] == "preview"
    assert run.summary["sha"] == pr_head
    assert run.counts == {
        "created": 1, "configured": 1, "unchanged": 1, "pruned": 1, "drifted": 0
    }  # fmt: skip
    assert sorted(run.summary["objects"]) == [
        "-Service/web", "ConfigMap/extra", "ConfigMap/settings"
    ]  # fmt: skip
    assert changed_between(before, live_objects(kube, target.namespace)) == set()
    assert configmap_data(kube, target.namespace, "settings") == {"version": "v1"}


def test_resync_reports_and_reverts_drift(
    kube: client.ApiClient, target: Target, rollouts: RolloutStandIn
) -> None:
    sha = target.repo.commit(shop_files(), "first")
    target.converge()
    apps = client.AppsV1Api(kube)
    apps.patch_namespaced_deployment("web", target.namespace, {"spec": {"replicas": 3}})
    before = live_objects(kube, target.namespace)

    run = target.run("resync")
    assert run.code == EXIT_OK, run.explain()
    assert run.result == "success" and run.summary["sha"] == sha
    assert run.counts["drifted"] == 1
    assert run.summary["drifted"] == ["Deployment/web"]
    assert "Deployment/web" in run.summary["message"]
    assert apps.read_namespaced_deployment("web", target.namespace).spec.replicas == 1
    # Beside the repaired Deployment, only the inventory: it records the repaired object's
    # fingerprint, which the next resync compares with.
    inventory = ("ConfigMap", parent_name(target.name))
    changed = changed_between(before, live_objects(kube, target.namespace))
    assert changed - {inventory} == {("Deployment", "web")}


def report_rollout_later(
    kube: client.ApiClient,
    namespace: str,
    name: str,
    generation: int,
    process: subprocess.Popen[str],
    seen_running: list[bool],
) -> threading.Thread:
    """Once the Deployment reaches `generation`, wait a little and report it rolled out, as
    the controller would; record whether the apply was still waiting at that moment."""
    apps = client.AppsV1Api(kube)

    def reached() -> Any:
        try:
            item = apps.read_namespaced_deployment(name, namespace)
        except ApiException:
            return None
        return item if (item.metadata.generation or 0) >= generation else None

    def work() -> None:
        item = wait_until(reached, 60, interval=0.1)
        time.sleep(1.5)
        seen_running.append(process.poll() is None)
        report_rolled_out(apps, item)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def test_apply_waits_for_the_deployment_to_roll_out(kube: client.ApiClient, target: Target) -> None:
    target.repo.commit(shop_files(), "first")
    process = target.start()
    seen_running: list[bool] = []
    report_rollout_later(kube, target.namespace, "web", 1, process, seen_running).join(60)
    run = finished(process)
    assert run.code == EXIT_OK, run.explain()
    assert run.result == "success"
    assert seen_running == [True]

    # A new template bumps the generation: the status written for the old one is stale, so the
    # apply waits for the controller to observe the new generation.
    target.repo.commit(
        {f"{PATH_IN_REPO}/deployment.yaml": deployment("web", image="registry.local/web:2")}, "2"
    )
    process = target.start()
    seen_running = []
    report_rollout_later(kube, target.namespace, "web", 2, process, seen_running).join(60)
    run = finished(process)
    assert run.code == EXIT_OK, run.explain()
    assert run.counts["configured"] == 1
    assert seen_running == [True]


def test_apply_fails_naming_the_deployment_that_never_becomes_ready(
    kube: client.ApiClient, target: Target
) -> None:
    target.repo.commit(shop_files(), "first")
    target.timeout = 5
    run = target.run()
    assert run.code == EXIT_PERMANENT, run.explain()
    assert run.result == "failure"
    assert "not ready" in run.summary["message"]
    assert "Deployment/web" in run.summary["message"]
    # What was applied stays recorded, at no SHA, so the next run tries again.
    sha, recorded = inventory_of(kube, target)
    assert sha is None and "Deployment/web" in recorded
