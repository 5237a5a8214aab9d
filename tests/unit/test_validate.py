"""Validate step: namespaced-only, one namespace, no duplicates; normalised, labelled copies."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from hooksync.inventory import applyset_id
from hooksync.names import APPLYSET_PART_OF, INVENTORY_TARGET
from jobimage.errors import PermanentError, ValidationError
from jobimage.render import Manifest
from jobimage.validate import validate

# (apiVersion, kind, namespaced) as `kubectl api-resources` lists them on a v1.3x cluster.
API_RESOURCES = [
    ("v1", "ConfigMap", True),
    ("v1", "Endpoints", True),
    ("v1", "LimitRange", True),
    ("v1", "Namespace", False),
    ("v1", "Node", False),
    ("v1", "PersistentVolume", False),
    ("v1", "PersistentVolumeClaim", True),
    ("v1", "Pod", True),
    ("v1", "ResourceQuota", True),
    ("v1", "Secret", True),
    ("v1", "Service", True),
    ("v1", "ServiceAccount", True),
    ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", False),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition", False),
    ("apps/v1", "DaemonSet", True),
    ("apps/v1", "Deployment", True),
    ("apps/v1", "ReplicaSet", True),
    ("apps/v1", "StatefulSet", True),
    ("autoscaling/v1", "HorizontalPodAutoscaler", True),
    ("autoscaling/v2", "HorizontalPodAutoscaler", True),
    ("batch/v1", "CronJob", True),
    ("batch/v1", "Job", True),
    ("networking.k8s.io/v1", "Ingress", True),
    ("networking.k8s.io/v1", "IngressClass", False),
    ("networking.k8s.io/v1", "NetworkPolicy", True),
    ("policy/v1", "PodDisruptionBudget", True),
    ("rbac.authorization.k8s.io/v1", "ClusterRole", False),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", False),
    ("rbac.authorization.k8s.io/v1", "Role", True),
    ("rbac.authorization.k8s.io/v1", "RoleBinding", True),
    ("storage.k8s.io/v1", "StorageClass", False),
]
SCOPES = {(api_version, kind): namespaced for api_version, kind, namespaced in API_RESOURCES}


def discovery(api_version: str, kind: str) -> bool | None:
    return SCOPES.get((api_version, kind))


def manifest(
    kind: str, name: str, api_version: str = "v1", source: str = "app/all.yaml", **extra: Any
) -> Manifest:
    obj: dict[str, Any] = {"apiVersion": api_version, "kind": kind, "metadata": {"name": name}}
    obj["metadata"].update(extra.pop("metadata", {}))
    obj.update(extra)
    return Manifest(obj, source, 1)


def problems_of(manifests: list[Manifest], namespace: str = "shop") -> tuple[str, ...]:
    with pytest.raises(ValidationError) as caught:
        validate(manifests, namespace, discovery, "shop")
    return caught.value.problems


def test_valid_objects_get_namespace_and_inventory_labels_on_copies() -> None:
    deployment = manifest(
        "Deployment",
        "web",
        "apps/v1",
        metadata={"labels": {"app": "web"}, "resourceVersion": "42", "uid": "u-1"},
        spec={"replicas": 2},
        status={"replicas": 2},
    )
    original = copy.deepcopy(deployment.obj)

    (obj,) = validate([deployment], "shop", discovery, "shop")

    assert obj["metadata"]["namespace"] == "shop"
    assert obj["metadata"]["labels"] == {
        "app": "web",
        APPLYSET_PART_OF: applyset_id("shop", "shop"),
        INVENTORY_TARGET: "shop",
    }
    assert "resourceVersion" not in obj["metadata"] and "uid" not in obj["metadata"]
    assert "status" not in obj
    assert obj["spec"] == {"replicas": 2}
    assert deployment.obj == original  # the rendered manifest is not touched


def test_object_already_in_the_target_namespace_is_accepted() -> None:
    cm = manifest("ConfigMap", "settings", metadata={"namespace": "shop"})

    (obj,) = validate([cm], "shop", discovery, "shop")

    assert obj["metadata"]["namespace"] == "shop"


def test_inventory_labels_override_labels_copied_from_elsewhere() -> None:
    foreign = {APPLYSET_PART_OF: "applyset-other-v1", INVENTORY_TARGET: "other"}
    cm = manifest("ConfigMap", "settings", metadata={"labels": foreign})

    (obj,) = validate([cm], "shop", discovery, "shop")

    assert obj["metadata"]["labels"][INVENTORY_TARGET] == "shop"
    assert obj["metadata"]["labels"][APPLYSET_PART_OF] == applyset_id("shop", "shop")


@pytest.mark.parametrize(
    ("api_version", "kind"),
    [
        ("v1", "Namespace"),
        ("rbac.authorization.k8s.io/v1", "ClusterRole"),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    ],
)
def test_cluster_scoped_kinds_are_refused(api_version: str, kind: str) -> None:
    (problem,) = problems_of([manifest(kind, "thing", api_version, source="app/cluster.yaml")])

    assert problem.startswith(f"app/cluster.yaml document 1: {kind}/thing: ")
    assert "cluster-scoped" in problem


def test_object_in_another_namespace_is_refused_with_the_fix() -> None:
    cm = manifest("ConfigMap", "settings", metadata={"namespace": "billing"})

    (problem,) = problems_of([cm])

    assert "ConfigMap/settings" in problem
    assert "'billing'" in problem and "set it to 'shop'" in problem


def test_duplicates_name_both_files() -> None:
    first = manifest("Deployment", "web", "apps/v1", source="app/a.yaml")
    second = manifest("Deployment", "web", "apps/v1", source="app/b.yaml")

    (problem,) = problems_of([first, second])

    assert problem.startswith("app/b.yaml document 1: Deployment/web")
    assert "app/a.yaml document 1" in problem


def test_same_group_in_another_version_is_still_a_duplicate() -> None:
    v1 = manifest("HorizontalPodAutoscaler", "web", "autoscaling/v1")
    v2 = manifest("HorizontalPodAutoscaler", "web", "autoscaling/v2")

    (problem,) = problems_of([v1, v2])

    assert "duplicates" in problem


def test_same_name_in_different_kinds_is_fine() -> None:
    objects = validate(
        [manifest("ConfigMap", "web"), manifest("Service", "web"), manifest("Secret", "web")],
        "shop",
        discovery,
        "shop",
    )

    assert [obj["kind"] for obj in objects] == ["ConfigMap", "Service", "Secret"]


def test_unknown_kind_is_refused_with_advice() -> None:
    (problem,) = problems_of([manifest("Widget", "w", "example.com/v1")])

    assert "Widget/w" in problem
    assert "does not serve kind Widget in example.com/v1" in problem


def test_every_problem_is_reported_at_once() -> None:
    problems = problems_of(
        [
            manifest("Namespace", "shop"),
            manifest("Widget", "w", "example.com/v1"),
            manifest("Secret", "s", metadata={"namespace": "kube-system"}),
            manifest("ConfigMap", "fine"),
        ]
    )

    assert len(problems) == 3


def test_the_inventory_configmap_name_is_reserved() -> None:
    (problem,) = problems_of([manifest("ConfigMap", "hooksync-inventory-shop")])

    assert "reserved" in problem


def test_validation_errors_are_permanent() -> None:
    error = ValidationError(["a", "b"])

    assert isinstance(error, PermanentError)
    assert error.exit_code == 2
    assert str(error) == "2 problems: a; b"
