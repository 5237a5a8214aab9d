"""Pure converge decisions: apply waves, prune candidates, apply outcomes, drift and health."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from hooksync.inventory import ObjectRef, inventory_labels
from hooksync.names import PRUNE
from jobimage.health import Health
from jobimage.plan import (
    apply_order,
    classify_apply,
    drifted,
    health_of,
    object_key,
    prune_candidates,
)

NS = "shop"


def obj(kind: str, name: str, api_version: str = "v1", **extra: Any) -> dict[str, Any]:
    metadata = {"name": name, "namespace": NS, **extra.pop("metadata", {})}
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, **extra}


def labelled(kind: str, name: str, api_version: str = "v1", target: str = "shop", **extra: Any):
    metadata = extra.pop("metadata", {})
    metadata.setdefault("uid", f"uid-{kind}-{name}")
    metadata["labels"] = {**inventory_labels(target, NS), **metadata.get("labels", {})}
    return obj(kind, name, api_version, metadata=metadata, **extra)


# --- apply order -------------------------------------------------------------------------------


def test_apply_order_puts_prerequisites_then_services_then_the_rest() -> None:
    objects = [
        obj("Deployment", "web", "apps/v1"),
        obj("Service", "web"),
        obj("ConfigMap", "settings"),
        obj("Ingress", "web", "networking.k8s.io/v1"),
        obj("RoleBinding", "web", "rbac.authorization.k8s.io/v1"),
        obj("ServiceAccount", "web"),
        obj("HorizontalPodAutoscaler", "web", "autoscaling/v2"),
        obj("NetworkPolicy", "deny", "networking.k8s.io/v1"),
    ]

    waves = apply_order(objects)

    assert [[(o["kind"], o["metadata"]["name"]) for o in wave] for wave in waves] == [
        [
            ("ConfigMap", "settings"),
            ("RoleBinding", "web"),
            ("ServiceAccount", "web"),
            ("NetworkPolicy", "deny"),
        ],
        [("Service", "web")],
        [("Deployment", "web"), ("Ingress", "web"), ("HorizontalPodAutoscaler", "web")],
    ]


def test_apply_order_leaves_out_empty_waves_and_matches_on_group() -> None:
    knative = obj("Service", "fn", "serving.knative.dev/v1")

    assert apply_order([knative, obj("Secret", "s")]) == [[obj("Secret", "s")], [knative]]
    assert apply_order([]) == []


def test_object_key_ignores_version() -> None:
    assert object_key(obj("Deployment", "web", "apps/v1")) == ("apps", "Deployment", NS, "web")
    assert object_key(obj("Secret", "s")) == ("", "Secret", NS, "s")


# --- prune -------------------------------------------------------------------------------------


def prune(live: list[dict[str, Any]], desired: list[dict[str, Any]], refs=()) -> list[ObjectRef]:
    return prune_candidates(list(refs), live, {object_key(o) for o in desired}, NS, "shop")


def test_objects_gone_from_git_are_candidates_with_their_uid() -> None:
    old = labelled("ConfigMap", "old")
    kept = labelled("ConfigMap", "kept")

    candidates = prune([old, kept], [obj("ConfigMap", "kept")])

    assert candidates == [ObjectRef("", "v1", "ConfigMap", NS, "old", "uid-ConfigMap-old")]


def test_other_targets_and_unlabelled_objects_are_never_candidates() -> None:
    other_target = labelled("ConfigMap", "theirs", target="blog")
    unlabelled = obj("ConfigMap", "hand-made", metadata={"uid": "u"})
    half_labelled = obj("ConfigMap", "half", metadata={"labels": {"hooksync.dev/inventory": NS}})

    assert prune([other_target, unlabelled, half_labelled], [obj("ConfigMap", "kept")]) == []


def test_objects_outside_the_namespace_are_never_candidates() -> None:
    elsewhere = labelled("ConfigMap", "old")
    elsewhere["metadata"]["namespace"] = "kube-system"

    assert prune([elsewhere], [obj("ConfigMap", "kept")]) == []


def test_prune_disabled_objects_are_kept() -> None:
    keep = labelled("PersistentVolumeClaim", "data", metadata={"annotations": {PRUNE: "disabled"}})

    assert prune([keep], [obj("ConfigMap", "kept")]) == []


def test_an_empty_render_prunes_nothing() -> None:
    live = [labelled("ConfigMap", "a"), labelled("Deployment", "web", "apps/v1")]
    refs = [ObjectRef.from_object(o) for o in live]

    assert prune(live, [], refs) == []


def test_controller_owned_and_terminating_objects_are_not_candidates() -> None:
    owned = labelled(
        "ConfigMap", "owned", metadata={"ownerReferences": [{"kind": "X", "controller": True}]}
    )
    terminating = labelled(
        "ConfigMap", "going", metadata={"deletionTimestamp": "2025-01-01T00:00:00Z"}
    )

    assert prune([owned, terminating], [obj("ConfigMap", "kept")]) == []


def test_group_kinds_neither_recorded_nor_rendered_are_out_of_scope() -> None:
    job = labelled("Job", "migrate", "batch/v1")
    recorded = [ObjectRef("batch", "v1", "Job", NS, "migrate", "uid-Job-migrate")]

    assert prune([job], [obj("ConfigMap", "kept")]) == []
    assert [str(ref) for ref in prune([job], [obj("ConfigMap", "kept")], recorded)] == [
        "Job/migrate"
    ]


def test_candidates_come_workloads_first_prerequisites_last() -> None:
    live = [
        labelled("ConfigMap", "a"),
        labelled("Service", "b"),
        labelled("Deployment", "c", "apps/v1"),
    ]
    desired = [obj("Deployment", "other", "apps/v1"), obj("Service", "x"), obj("ConfigMap", "y")]

    assert [ref.kind for ref in prune(live, desired)] == ["Deployment", "Service", "ConfigMap"]


# --- apply outcome -----------------------------------------------------------------------------


def test_classify_apply() -> None:
    after = obj("ConfigMap", "c", metadata={"resourceVersion": "12"})
    same = obj("ConfigMap", "c", metadata={"resourceVersion": "12"})
    older = obj("ConfigMap", "c", metadata={"resourceVersion": "11"})

    assert classify_apply(None, after) == "created"
    assert classify_apply(same, after) == "unchanged"
    assert classify_apply(older, after) == "configured"


# --- drift -------------------------------------------------------------------------------------


def deployment_desired() -> dict[str, Any]:
    return obj(
        "Deployment",
        "web",
        "apps/v1",
        metadata={"labels": {"app": "web"}},
        spec={
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "nginx:1.27",
                            "args": ["--port", "8080"],
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                            "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
                        }
                    ],
                    "tolerations": [{"key": "dedicated", "operator": "Exists"}],
                },
            },
        },
    )


def deployment_live() -> dict[str, Any]:
    """What the API server returns for deployment_desired(): defaults added, order shuffled."""
    live = deployment_desired()
    live["metadata"].update(
        resourceVersion="981",
        uid="0b6f",
        generation=3,
        creationTimestamp="2025-01-01T00:00:00Z",
        managedFields=[{"manager": "hooksync", "operation": "Apply"}],
        annotations={"deployment.kubernetes.io/revision": "3"},
    )
    pod = live["spec"]["template"]["spec"]
    container = pod["containers"][0]
    container["env"].reverse()
    container["resources"]["requests"] = {"cpu": "0.5", "memory": "1024Mi"}
    container["terminationMessagePath"] = "/dev/termination-log"
    container["ports"][0]["protocol"] = "TCP"
    pod["containers"].insert(0, {"name": "injected-sidecar", "image": "proxy:1"})
    pod["restartPolicy"] = "Always"
    live["spec"]["strategy"] = {"type": "RollingUpdate"}
    live["status"] = {"replicas": 2, "readyReplicas": 2}
    return live


def test_live_object_with_only_server_defaults_has_not_drifted() -> None:
    assert drifted(deployment_desired(), deployment_live()) is False


@pytest.mark.parametrize(
    "change",
    [
        lambda live: live["spec"].update(replicas=5),
        lambda live: live["spec"]["template"]["spec"]["containers"][1].update(image="nginx:evil"),
        lambda live: live["spec"]["template"]["spec"]["containers"][1]["env"].pop(),
        lambda live: live["spec"]["template"]["spec"]["containers"][1]["args"].append("--debug"),
        lambda live: live["metadata"]["labels"].pop("app"),
        lambda live: live["spec"]["template"]["spec"]["containers"][1]["resources"].update(
            requests={"cpu": "1", "memory": "1Gi"}
        ),
        lambda live: live["spec"]["template"]["spec"].update(tolerations=[]),
    ],
    ids=["replicas", "image", "env-removed", "args", "label", "cpu", "tolerations"],
)
def test_changes_to_fields_git_sets_are_drift(change) -> None:
    live = deployment_live()
    change(live)

    assert drifted(deployment_desired(), live) is True


def test_object_never_applied_by_hooksync_counts_as_drifted() -> None:
    live = deployment_live()
    live["metadata"]["managedFields"] = [{"manager": "kubectl-client-side-apply"}]

    assert drifted(deployment_desired(), live) is True
    assert drifted(deployment_desired(), live, field_manager="kubectl-client-side-apply") is False


def test_secret_string_data_is_compared_as_data() -> None:
    desired = obj("Secret", "s", stringData={"password": "hunter2"})
    live = obj("Secret", "s", data={"password": base64.b64encode(b"hunter2").decode()})
    changed = copy.deepcopy(live)
    changed["data"]["password"] = base64.b64encode(b"hunter3").decode()

    assert drifted(desired, live) is False
    assert drifted(desired, changed) is True


def test_empty_and_null_desired_fields_match_missing_live_fields() -> None:
    desired = obj("ConfigMap", "c", metadata={"annotations": {}}, data=None, binaryData={})

    assert drifted(desired, obj("ConfigMap", "c")) is False


def test_volume_mounts_sharing_a_name_are_compared_by_position() -> None:
    mounts = [
        {"name": "config", "mountPath": "/a", "subPath": "a"},
        {"name": "config", "mountPath": "/b", "subPath": "b"},
    ]
    desired = obj("Pod", "p", spec={"containers": [{"name": "c", "volumeMounts": mounts}]})
    live = copy.deepcopy(desired)
    swapped = copy.deepcopy(desired)
    swapped["spec"]["containers"][0]["volumeMounts"][1]["mountPath"] = "/c"

    assert drifted(desired, live) is False
    assert drifted(desired, swapped) is True


# --- health ------------------------------------------------------------------------------------


def deployment(generation: int = 2, spec_replicas: int = 3, **status: Any) -> dict[str, Any]:
    return obj(
        "Deployment",
        "web",
        "apps/v1",
        metadata={"generation": generation},
        spec={"replicas": spec_replicas},
        status=status,
    )


def test_deployment_rolled_out_is_ready() -> None:
    live = deployment(
        observedGeneration=2, replicas=3, updatedReplicas=3, readyReplicas=3, availableReplicas=3
    )

    assert health_of(live) == Health(True, "ready")


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ({"observedGeneration": 1, "updatedReplicas": 3, "availableReplicas": 3}, "generation 2"),
        ({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1}, "1 of 3 replicas updated"),
        (
            {"observedGeneration": 2, "replicas": 4, "updatedReplicas": 3, "availableReplicas": 3},
            "1 old replicas pending termination",
        ),
        (
            {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 2},
            "2 of 3 replicas available",
        ),
    ],
)
def test_deployment_mid_rollout_is_not_ready(status: dict[str, Any], reason: str) -> None:
    health = health_of(deployment(**status))

    assert health.ready is False and health.failed is False
    assert reason in health.reason


def test_deployment_past_its_progress_deadline_has_failed() -> None:
    live = deployment(
        observedGeneration=2,
        replicas=3,
        updatedReplicas=1,
        conditions=[
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
            {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": 'ReplicaSet "web-5d9c" has timed out progressing.',
            },
        ],
    )

    health = health_of(live)

    assert health.failed is True and health.ready is False
    assert "timed out progressing" in health.reason


def test_deployment_scaled_to_zero_is_ready() -> None:
    assert health_of(deployment(spec_replicas=0, observedGeneration=2)).ready is True


def statefulset(**status: Any) -> dict[str, Any]:
    return obj(
        "StatefulSet",
        "db",
        "apps/v1",
        metadata={"generation": 4},
        spec={"replicas": 3, "updateStrategy": {"type": "RollingUpdate"}},
        status=status,
    )


def test_statefulset_health() -> None:
    done = {
        "observedGeneration": 4,
        "replicas": 3,
        "readyReplicas": 3,
        "updatedReplicas": 3,
        "currentRevision": "db-7c9",
        "updateRevision": "db-7c9",
    }
    rolling = {**done, "currentRevision": "db-6b1"}
    unready = {**done, "readyReplicas": 2}

    assert health_of(statefulset(**done)).ready is True
    assert "revision db-7c9" in health_of(statefulset(**rolling)).reason
    assert health_of(statefulset(**unready)) == Health(False, "2 of 3 replicas ready")
    assert health_of(statefulset(**{**done, "observedGeneration": 3})).ready is False


def test_statefulset_with_on_delete_strategy_is_ready_once_pods_are_ready() -> None:
    live = statefulset(
        observedGeneration=4, readyReplicas=3, currentRevision="a", updateRevision="b"
    )
    live["spec"]["updateStrategy"] = {"type": "OnDelete"}

    assert health_of(live).ready is True


def daemonset(**status: Any) -> dict[str, Any]:
    return obj("DaemonSet", "agent", "apps/v1", metadata={"generation": 1}, status=status)


def test_daemonset_health() -> None:
    done = {
        "observedGeneration": 1,
        "desiredNumberScheduled": 4,
        "currentNumberScheduled": 4,
        "updatedNumberScheduled": 4,
        "numberAvailable": 4,
        "numberReady": 4,
    }

    assert health_of(daemonset(**done)).ready is True
    assert health_of(daemonset(**{**done, "updatedNumberScheduled": 2})) == Health(
        False, "2 of 4 scheduled pods updated"
    )
    assert health_of(daemonset(**{**done, "numberAvailable": 3})).ready is False


def job(**status: Any) -> dict[str, Any]:
    return obj("Job", "migrate", "batch/v1", status=status)


def test_job_health() -> None:
    complete = job(
        succeeded=1,
        conditions=[
            {"type": "SuccessCriteriaMet", "status": "True"},
            {"type": "Complete", "status": "True"},
        ],
    )
    failed = job(
        failed=7,
        conditions=[
            {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded"},
            {
                "type": "Failed",
                "status": "True",
                "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit",
            },
        ],
    )

    assert health_of(complete).ready is True
    assert health_of(failed).failed is True
    assert "backoff limit" in health_of(failed).reason
    assert health_of(job(active=1)) == Health(False, "job running: 1 active, 0 succeeded")


def test_kinds_without_a_rollout_are_ready() -> None:
    assert health_of(obj("ConfigMap", "c")).ready is True
    assert health_of(obj("Service", "s", status={"loadBalancer": {}})).ready is True
