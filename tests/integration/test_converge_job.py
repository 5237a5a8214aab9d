"""Converge in a real Job under the process kubelet: its termination message carries the summary,
and a permanent failure is not retried.

Each test runs `hooksync-job` the way a Job does (`world.converge.Target`: a subprocess as
the target's ServiceAccount, fetching over token-protected HTTP; or a real Job under the
process kubelet) and asserts what it leaves behind: objects, resourceVersions, the
inventory, the summary and the exit code. Fixtures (`target`, `git`, `rollouts`,
`other_namespace`) are in conftest.py.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from kubernetes import client

from hooksync.jobspec import EXIT_PERMANENT
from hooksync.summary import RunSummary
from world.converge import (
    GIT_TOKEN,
    JOB_COMMAND,
    PATH_IN_REPO,
    Target,
    configmap_data,
    inventory_of,
    live_objects,
)
from world.kubelet import wait_until
from world.manifests import configmap, service

pytestmark = pytest.mark.cluster


CONTAINER = "converge"


def converge_job(name: str, target: Target, git_secret: str) -> dict[str, Any]:
    """The Job the receiver would create: explicit command, the target's ServiceAccount, the
    Git token from a Secret, and no retries for a permanent failure (exit code 2)."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 3,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": CONTAINER,
                            "operator": "In",
                            "values": [EXIT_PERMANENT],
                        },
                    }
                ]
            },
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": target.account,
                    "containers": [
                        {
                            "name": CONTAINER,
                            "image": "ghcr.io/hooksync/hooksync-job:test",
                            "command": JOB_COMMAND,
                            "args": target.spec("apply").to_args(),
                            "env": [
                                {
                                    "name": "POD_NAME",
                                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                                },
                                {
                                    "name": "HOOKSYNC_GIT_TOKEN",
                                    "valueFrom": {
                                        "secretKeyRef": {"name": git_secret, "key": "token"}
                                    },
                                },
                            ],
                            "terminationMessagePolicy": "FallbackToLogsOnError",
                        }
                    ],
                }
            },
        },
    }


def run_job(kube: client.ApiClient, target: Target, name: str) -> tuple[Any, list[Any]]:
    """Create the converge Job, wait for it to finish; return the Job and its pods."""
    core, batch = client.CoreV1Api(kube), client.BatchV1Api(kube)
    secret = f"{name}-git"
    core.create_namespaced_secret(
        target.namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=secret), string_data={"token": GIT_TOKEN}
        ),
    )
    batch.create_namespaced_job(target.namespace, converge_job(name, target, secret))

    def finished() -> Any:
        job = batch.read_namespaced_job(name, target.namespace)
        done = [c for c in job.status.conditions or [] if c.type in ("Complete", "Failed")]
        return job if any(c.status == "True" for c in done) else None

    job = wait_until(finished, 90, interval=0.3)
    pods = core.list_namespaced_pod(target.namespace, label_selector=f"job-name={name}").items
    return job, pods


def termination_summary(pod: Any) -> RunSummary:
    terminated = pod.status.container_statuses[0].state.terminated
    summary = RunSummary.from_json(terminated.message)
    assert summary is not None, terminated.message
    return summary


def test_job_under_the_process_kubelet_completes_with_a_summary(
    kube: client.ApiClient, target: Target
) -> None:
    sha = target.repo.commit(
        {
            f"{PATH_IN_REPO}/config.yaml": configmap("settings", {"v": "1"}),
            f"{PATH_IN_REPO}/service.yaml": service("web"),
        },
        "first",
    )
    job, pods = run_job(kube, target, "hooksync-apply-1")
    conditions = {c.type: c.status for c in job.status.conditions}
    assert conditions.get("Complete") == "True", [pod.status.to_dict() for pod in pods]
    assert len(pods) == 1
    summary = termination_summary(pods[0])
    assert summary.result == "success" and summary.sha == sha
    assert summary.counts["created"] == 2
    assert configmap_data(kube, target.namespace, "settings") == {"v": "1"}
    assert inventory_of(kube, target)[0] == sha


def test_job_with_a_cluster_scoped_object_fails_without_retries(
    kube: client.ApiClient, target: Target
) -> None:
    target.repo.commit(
        {
            f"{PATH_IN_REPO}/config.yaml": configmap("settings", {"v": "1"}),
            f"{PATH_IN_REPO}/namespace.yaml": yaml.safe_dump(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "not-allowed"}}
            ),
        },
        "cluster-scoped",
    )
    job, pods = run_job(kube, target, "hooksync-apply-2")
    failed = next(c for c in job.status.conditions if c.type == "Failed")
    assert failed.status == "True" and failed.reason == "PodFailurePolicy"
    assert len(pods) == 1 and job.status.failed == 1
    terminated = pods[0].status.container_statuses[0].state.terminated
    assert terminated.exit_code == EXIT_PERMANENT
    summary = termination_summary(pods[0])
    assert summary.result == "failure" and "cluster-scoped" in summary.message
    assert live_objects(kube, target.namespace).names() == set()
