"""The test world's cluster: real RBAC, the real Job and CronJob controllers, pods as processes."""

from __future__ import annotations

import json
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from world.cluster import LocalCluster
from world.kubelet import wait_until

pytestmark = pytest.mark.cluster

# Runs inside the pod: the standard in-cluster configuration, nothing test-specific.
CREATE_CONFIGMAP = textwrap.dedent(
    """
    import os, sys
    from kubernetes import client, config
    config.load_incluster_config()
    namespace = sys.argv[1]
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="made-by-pod"),
                              data={"pod": os.environ["POD_NAME"]})
    client.CoreV1Api().create_namespaced_config_map(namespace, body)
    print("created in", namespace)
    """
)


def _grant_configmaps(kube: client.ApiClient, namespace: str, account: str) -> None:
    core = client.CoreV1Api(kube)
    rbac = client.RbacAuthorizationV1Api(kube)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=account))
    )
    rbac.create_namespaced_role(
        namespace,
        client.V1Role(
            metadata=client.V1ObjectMeta(name="configmaps"),
            rules=[
                client.V1PolicyRule(
                    api_groups=[""], resources=["configmaps"], verbs=["create", "get"]
                )
            ],
        ),
    )
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="configmaps"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="Role", name="configmaps"
            ),
            subjects=[
                client.RbacV1Subject(kind="ServiceAccount", name=account, namespace=namespace)
            ],
        ),
    )


def _job(name: str, account: str, args: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": account,
                    "containers": [
                        {
                            "name": "main",
                            "image": "local",
                            "command": [sys.executable, "-c", CREATE_CONFIGMAP],
                            "args": args,
                            "env": [
                                {
                                    "name": "POD_NAME",
                                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                                }
                            ],
                            "terminationMessagePolicy": "FallbackToLogsOnError",
                        }
                    ],
                }
            },
        },
    }


def _env_from(variable: str, kind: str, **ref: str) -> dict[str, Any]:
    return {"name": variable, "valueFrom": {kind: ref}}


def _job_condition(kube: client.ApiClient, namespace: str, name: str) -> str | None:
    job = client.BatchV1Api(kube).read_namespaced_job(name, namespace)
    for condition in job.status.conditions or []:
        if condition.status == "True" and condition.type in ("Complete", "Failed"):
            return str(condition.type)
    return None


def test_job_runs_in_cluster_code_with_real_rbac(kube, namespace) -> None:
    other = f"{namespace}-other"
    core = client.CoreV1Api(kube)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=other)))
    try:
        _grant_configmaps(kube, namespace, "writer")
        batch = client.BatchV1Api(kube)
        batch.create_namespaced_job(namespace, _job("allowed", "writer", [namespace]))
        batch.create_namespaced_job(namespace, _job("forbidden", "writer", [other]))

        assert wait_until(lambda: _job_condition(kube, namespace, "allowed"), 60) == "Complete"
        made = core.read_namespaced_config_map("made-by-pod", namespace)
        assert made.data["pod"].startswith("allowed-")

        assert wait_until(lambda: _job_condition(kube, namespace, "forbidden"), 60) == "Failed"
        pods = core.list_namespaced_pod(namespace, label_selector="job-name=forbidden").items
        terminated = pods[0].status.container_statuses[0].state.terminated
        assert terminated.exit_code == 1
        assert "Forbidden" in terminated.message
        assert not core.list_namespaced_config_map(
            other, field_selector="metadata.name=made-by-pod"
        ).items
    finally:
        core.delete_namespace(other)


def test_pod_sees_its_volumes_env_and_termination_message(kube, namespace) -> None:
    core = client.CoreV1Api(kube)
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cfg"), data={"k": "v1"})
    )
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(metadata=client.V1ObjectMeta(name="sec"), string_data={"token": "s3"}),
    )
    script = textwrap.dedent(
        """
        import json, os, pathlib
        sa = pathlib.Path("/var/run/secrets/kubernetes.io/serviceaccount")
        report = {
            "cfg": pathlib.Path("/etc/cfg/k").read_text(),
            "sec": pathlib.Path("/etc/sec/token").read_text(),
            "namespace": (sa / "namespace").read_text(),
            "token": (sa / "token").read_text().count("."),
            "ca": "BEGIN CERTIFICATE" in (sa / "ca.crt").read_text(),
            "env": [os.environ["FROM_SECRET"], os.environ["FROM_CM"], os.environ["NS"]],
            "scratch_writable": os.access("/scratch", os.W_OK),
            "nested": pathlib.Path("/scratch/nested/k").read_text(),
        }
        pathlib.Path("/dev/termination-log").write_text(json.dumps(report))
        """
    )
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "probe"},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "volumes": [
                        {"name": "cfg", "configMap": {"name": "cfg"}},
                        {"name": "sec", "secret": {"secretName": "sec"}},
                        {"name": "scratch", "emptyDir": {}},
                    ],
                    "containers": [
                        {
                            "name": "main",
                            "image": "local",
                            "command": [sys.executable, "-c", script],
                            "volumeMounts": [
                                {"name": "cfg", "mountPath": "/etc/cfg"},
                                {"name": "sec", "mountPath": "/etc/sec", "readOnly": True},
                                {"name": "scratch", "mountPath": "/scratch"},
                                # Lands inside the emptyDir: its folder is made there, not here.
                                {"name": "cfg", "mountPath": "/scratch/nested"},
                            ],
                            "env": [
                                _env_from("FROM_SECRET", "secretKeyRef", name="sec", key="token"),
                                _env_from("FROM_CM", "configMapKeyRef", name="cfg", key="k"),
                                _env_from("NS", "fieldRef", fieldPath="metadata.namespace"),
                            ],
                        }
                    ],
                }
            },
        },
    }  # fmt: skip
    client.BatchV1Api(kube).create_namespaced_job(namespace, job)
    assert wait_until(lambda: _job_condition(kube, namespace, "probe"), 60) == "Complete"
    pod = core.list_namespaced_pod(namespace, label_selector="job-name=probe").items[0]
    report = json.loads(pod.status.container_statuses[0].state.terminated.message)
    assert report == {
        "cfg": "v1",
        "sec": "s3",
        "namespace": namespace,
        "token": 2,
        "ca": True,
        "env": ["s3", "v1", namespace],
        "scratch_writable": True,
        "nested": "v1",
    }
    assert not Path("/scratch/nested").exists()
    log = core.read_namespaced_pod_log(pod.metadata.name, namespace)
    assert log == ""


def test_pod_whose_command_cannot_start_fails_with_a_reason(kube, namespace) -> None:
    job = _job("broken", "default", [])
    job["spec"]["template"]["spec"]["containers"][0]["command"] = ["no-such-program-here"]
    client.BatchV1Api(kube).create_namespaced_job(namespace, job)
    assert wait_until(lambda: _job_condition(kube, namespace, "broken"), 60) == "Failed"
    pod = client.CoreV1Api(kube).list_namespaced_pod(namespace, label_selector="job-name=broken")
    terminated = pod.items[0].status.container_statuses[0].state.terminated
    assert terminated.reason == "StartError"
    assert "no-such-program-here" in terminated.message


def test_pod_log_is_served_through_the_api(kube, namespace) -> None:
    job = _job("talker", "default", [])
    job["spec"]["template"]["spec"]["containers"][0]["command"] = [
        sys.executable, "-c", "print('line one'); print('line two')"
    ]  # fmt: skip
    client.BatchV1Api(kube).create_namespaced_job(namespace, job)
    assert wait_until(lambda: _job_condition(kube, namespace, "talker"), 60) == "Complete"
    core = client.CoreV1Api(kube)
    pod = core.list_namespaced_pod(namespace, label_selector="job-name=talker").items[0]
    assert core.read_namespaced_pod_log(pod.metadata.name, namespace, tail_lines=1) == "line two\n"


def _waiting(kube: client.ApiClient, namespace: str, job: str) -> tuple[str, str] | None:
    """The (reason, message) of a Job's waiting container, once the kubelet has written one."""
    pods = client.CoreV1Api(kube).list_namespaced_pod(namespace, label_selector=f"job-name={job}")
    for pod in pods.items:
        for status in (pod.status.container_statuses if pod.status else None) or []:
            if status.state and status.state.waiting and status.state.waiting.reason:
                return status.state.waiting.reason, status.state.waiting.message or ""
    return None


def test_pod_waits_for_the_secret_and_configmap_it_needs(kube, namespace) -> None:
    # A real kubelet keeps such a pod waiting and tries again; it never fails it for this.
    core = client.CoreV1Api(kube)
    job = _job("patient", "default", [])
    container = job["spec"]["template"]["spec"]["containers"][0]
    script = "import os; print(os.environ['COLOUR'], open('/etc/sec/token').read())"
    container["command"] = [sys.executable, "-c", script]
    container["env"] = [
        {"name": "COLOUR", "valueFrom": {"configMapKeyRef": {"name": "later", "key": "colour"}}}
    ]
    container["volumeMounts"] = [{"name": "later", "mountPath": "/etc/sec"}]
    job["spec"]["template"]["spec"]["volumes"] = [
        {"name": "later", "secret": {"secretName": "later"}}
    ]
    client.BatchV1Api(kube).create_namespaced_job(namespace, job)

    def waiting_for(reason: str, text: str) -> bool:
        seen = _waiting(kube, namespace, "patient")
        return seen is not None and seen[0] == reason and text in seen[1]

    assert wait_until(lambda: waiting_for("ContainerCreating", 'secret "later" not found'), 60)
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(metadata=client.V1ObjectMeta(name="later"), string_data={"token": "t0k"}),
    )
    missing = 'configmap "later" not found'
    assert wait_until(lambda: waiting_for("CreateContainerConfigError", missing), 60)
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="later"), data={})
    )
    missing_key = f"couldn't find key colour in ConfigMap {namespace}/later"
    assert wait_until(lambda: waiting_for("CreateContainerConfigError", missing_key), 60)
    core.patch_namespaced_config_map("later", namespace, {"data": {"colour": "blue"}})
    assert wait_until(lambda: _job_condition(kube, namespace, "patient"), 60) == "Complete"
    pod = core.list_namespaced_pod(namespace, label_selector="job-name=patient").items[0]
    assert core.read_namespaced_pod_log(pod.metadata.name, namespace) == "blue t0k\n"


def test_deleting_a_running_pod_kills_its_process(kube, namespace) -> None:
    job = _job("sleeper", "default", [])
    job["spec"]["template"]["spec"]["containers"][0]["command"] = ["sleep", "300"]
    client.BatchV1Api(kube).create_namespaced_job(namespace, job)
    core = client.CoreV1Api(kube)

    def running_pod() -> Any:
        pods = core.list_namespaced_pod(namespace, label_selector="job-name=sleeper").items
        return next((p for p in pods if p.status.phase == "Running"), None)

    pod = wait_until(running_pod, 60)
    client.BatchV1Api(kube).delete_namespaced_job(
        "sleeper", namespace, propagation_policy="Foreground"
    )

    def gone() -> bool:
        names = [p.metadata.name for p in core.list_namespaced_pod(namespace).items]
        return pod.metadata.name not in names

    assert wait_until(gone, 60)


@pytest.mark.slow
def test_cronjob_schedule_produces_a_completed_job(kube, namespace) -> None:
    job = _job("unused", "default", [])
    template = job["spec"]
    template["template"]["spec"]["containers"][0]["command"] = ["true"]
    cron = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "every-minute"},
        "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": template}},
    }
    client.BatchV1Api(kube).create_namespaced_cron_job(namespace, cron)

    def completed() -> bool:
        jobs = client.BatchV1Api(kube).list_namespaced_job(namespace).items
        return any(
            c.type == "Complete" and c.status == "True"
            for j in jobs
            for c in (j.status.conditions or [])
        )

    assert wait_until(completed, 130, interval=1)


def test_control_plane_starts_quickly_and_stops_cleanly(cluster: LocalCluster) -> None:
    # A second, independent control plane on the warm cache; its folder is removed on stop.
    from world.controlplane import ControlPlane

    started = time.monotonic()
    with ControlPlane() as second:
        elapsed = time.monotonic() - started
        assert second.api_ready()
        processes = [c.process for c in second.components.values()]
        directory = second.directory
    assert all(p is not None and p.poll() is not None for p in processes)
    assert not directory.exists()
    print(f"second control plane started in {elapsed:.1f}s")
