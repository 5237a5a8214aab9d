"""Validate step: every rendered object must be namespaced, in the target's namespace, and unique.

Returns copies normalised for server-side apply and labelled with the target's inventory labels.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any, Final

from hooksync.inventory import PARENT_KIND, group_of, inventory_labels, parent_name
from jobimage.errors import ValidationError
from jobimage.render import Manifest

__all__ = ["NamespacedKinds", "ValidationError", "validate"]

# (apiVersion, kind) -> True namespaced, False cluster-scoped, None not served by the cluster.
NamespacedKinds = Callable[[str, str], bool | None]

# Fields the API server owns; an object exported with `kubectl get -o yaml` still applies cleanly
# (a stale resourceVersion would otherwise make server-side apply fail with a conflict).
SERVER_METADATA: Final = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
)


def validate(
    manifests: Sequence[Manifest],
    namespace: str,
    namespaced_kinds: NamespacedKinds,
    target: str,
) -> list[dict[str, Any]]:
    """Check the rendered objects against the target's rules; return normalised copies.

    Each copy has metadata.namespace set to `namespace`, the server-owned metadata and `status`
    removed, and the target's inventory labels added. Every problem is reported at once in one
    ValidationError (permanent), each naming the file and the object.
    """
    problems: list[str] = []
    seen: dict[tuple[str, str, str, str], Manifest] = {}
    labels = inventory_labels(target, namespace)
    reserved = parent_name(target)
    normalised: list[dict[str, Any]] = []
    for manifest in manifests:
        obj = manifest.obj
        api_version, kind = str(obj["apiVersion"]), str(obj["kind"])
        metadata = obj["metadata"]
        name = str(metadata["name"])
        label = f"{manifest.where}: {kind}/{name}"

        scope = namespaced_kinds(api_version, kind)
        if scope is None:
            problems.append(
                f"{label}: the cluster does not serve kind {kind} in {api_version}; fix "
                "apiVersion/kind, or install its CustomResourceDefinition outside hooksync first"
            )
            continue
        if scope is False:
            problems.append(
                f"{label}: {kind} is cluster-scoped, and hooksync converges only namespace "
                f"{namespace!r}; apply cluster-scoped objects (Namespace, ClusterRole, "
                "CustomResourceDefinition) outside hooksync"
            )
            continue
        own_namespace = metadata.get("namespace") or namespace
        if own_namespace != namespace:
            problems.append(
                f"{label}: is in namespace {own_namespace!r}, but this target converges "
                f"{namespace!r}; remove metadata.namespace or set it to {namespace!r}"
            )
            continue
        if kind == PARENT_KIND and group_of(api_version) == "" and name == reserved:
            problems.append(
                f"{label}: the name {reserved!r} is reserved for hooksync's inventory; rename it"
            )
            continue
        existing_labels = metadata.get("labels")
        if existing_labels is not None and not isinstance(existing_labels, dict):
            problems.append(f"{label}: metadata.labels must be a mapping of strings")
            continue
        key = (group_of(api_version), kind, own_namespace, name)
        if key in seen:
            problems.append(
                f"{label}: duplicates the object in {seen[key].where}; remove one or rename it"
            )
            continue
        seen[key] = manifest
        normalised.append(_normalise(obj, namespace, labels))
    if problems:
        raise ValidationError(problems)
    return normalised


def _normalise(obj: dict[str, Any], namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    result = copy.deepcopy(obj)
    result.pop("status", None)
    metadata = result["metadata"]
    for field in SERVER_METADATA:
        metadata.pop(field, None)
    metadata["namespace"] = namespace
    # The inventory labels win over anything the manifest says: they decide what prune may touch.
    metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
    return result
