"""Pure decisions of a converge: apply order, prune candidates, outcomes, drift and health.

Nothing here talks to Kubernetes: each function takes object dicts and returns a value.
"""

from __future__ import annotations

import base64
import copy
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal

from hooksync.inventory import ObjectRef, applyset_id, group_of
from hooksync.names import APPLYSET_PART_OF, FIELD_MANAGER, INVENTORY_TARGET, PRUNE, PRUNE_DISABLED
from jobimage.health import Health, current, pod_health

ObjectKey = tuple[str, str, str, str]  # (group, kind, namespace, name)
ApplyOutcome = Literal["created", "configured", "unchanged"]

_RBAC: Final = "rbac.authorization.k8s.io"
# Wave 1: what workloads and Services refer to, so Pods never start without them.
PREREQUISITES: Final = frozenset(
    {
        ("", "ServiceAccount"),
        ("", "ConfigMap"),
        ("", "Secret"),
        ("", "PersistentVolumeClaim"),
        (_RBAC, "Role"),
        (_RBAC, "RoleBinding"),
        ("", "LimitRange"),
        ("", "ResourceQuota"),
        ("networking.k8s.io", "NetworkPolicy"),
    }
)
# Wave 2. Matched with the group, so e.g. a Knative serving.knative.dev Service is a workload.
SERVICES: Final = frozenset({("", "Service")})

# The metadata the API server owns. Validation drops them from what Git says (an object exported
# with `kubectl get -o yaml` still applies: a stale resourceVersion would make server-side apply
# fail with a conflict); drift comparisons ignore them.
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


def object_key(obj: Mapping[str, Any]) -> ObjectKey:
    """(group, kind, namespace, name): what makes an object the same object across versions."""
    metadata = obj.get("metadata") or {}
    return (
        group_of(str(obj.get("apiVersion", ""))),
        str(obj.get("kind", "")),
        str(metadata.get("namespace") or ""),
        str(metadata.get("name", "")),
    )


def wave_of(obj: Mapping[str, Any]) -> int:
    """0 for prerequisites, 1 for Services, 2 for everything else (workloads, Ingress, HPA...)."""
    group_kind = (group_of(str(obj.get("apiVersion", ""))), str(obj.get("kind", "")))
    if group_kind in PREREQUISITES:
        return 0
    if group_kind in SERVICES:
        return 1
    return 2


def apply_order(objects: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Group objects into waves applied one after the other; objects in a wave are independent.

    Empty waves are left out; inside a wave, objects keep their input (render) order.
    """
    waves: list[list[dict[str, Any]]] = [[], [], []]
    for obj in objects:
        waves[wave_of(obj)].append(obj)
    return [wave for wave in waves if wave]


def prune_candidates(
    inventory_refs: Iterable[ObjectRef],
    live_objects: Iterable[Mapping[str, Any]],
    desired_keys: Collection[ObjectKey],
    namespace: str,
    target: str,
) -> list[ObjectRef]:
    """Live objects this target applied before and Git no longer has: what prune may delete.

    A live object is a candidate only when all hold (design rule 5):
    - it carries both of this target's inventory labels (ApplySet id and target name);
    - it sits in `namespace`, is not in `desired_keys`, is not already being deleted;
    - its group-kind is one the inventory recorded or the render produced (the ApplySet
      parent's contains-group-kinds bounds what tooling may prune);
    - it is not annotated hooksync.dev/prune=disabled, and no controller owns it.
    An inventory ref alone never makes a candidate: the live object decides. An empty
    `desired_keys` (a render with zero objects) yields no candidates at all. The refs returned
    carry the live uid, for a delete precondition, ordered workloads first, prerequisites last.
    """
    if not desired_keys:
        return []
    desired = set(desired_keys)
    group_kinds = {(ref.group, ref.kind) for ref in inventory_refs}
    group_kinds |= {(group, kind) for group, kind, _, _ in desired}
    applyset = applyset_id(target, namespace)
    candidates: list[tuple[int, ObjectKey, ObjectRef]] = []
    for obj in live_objects:
        metadata = obj.get("metadata") or {}
        labels = metadata.get("labels") or {}
        annotations = metadata.get("annotations") or {}
        key = object_key(obj)
        if (
            labels.get(APPLYSET_PART_OF) != applyset
            or labels.get(INVENTORY_TARGET) != target
            or key[2] != namespace
            or key in desired
            or (key[0], key[1]) not in group_kinds
            or metadata.get("deletionTimestamp")
            or annotations.get(PRUNE) == PRUNE_DISABLED
            or any(owner.get("controller") for owner in metadata.get("ownerReferences") or [])
        ):
            continue
        candidates.append((-wave_of(obj), key, ObjectRef.from_object(obj)))
    candidates.sort(key=lambda entry: (entry[0], entry[1]))
    return [ref for _, _, ref in candidates]


def classify_apply(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> ApplyOutcome:
    """What an apply did: created (nothing before), unchanged (same resourceVersion), configured."""
    if before is None:
        return "created"
    before_version = (before.get("metadata") or {}).get("resourceVersion")
    after_version = (after.get("metadata") or {}).get("resourceVersion")
    if before_version is not None and before_version == after_version:
        return "unchanged"
    return "configured"


def drifted(
    desired: Mapping[str, Any], live: Mapping[str, Any], field_manager: str = FIELD_MANAGER
) -> bool:
    """Whether the live object differs from Git in any field Git sets.

    Semantics (conservative: only what the desired object says is compared):
    - every leaf of `desired` must have the same value in `live`; fields only `live` has
      (defaults, other controllers' fields) are ignored, as are `status` and server-set metadata;
    - a null, {} or [] in `desired` matches a missing field (the API server omits empty ones);
    - lists of mappings whose "name" values are all present and unique (containers, env,
      named ports) are matched by name, extra live items ignored; other lists of mappings by
      index, extra live items ignored; lists of scalars (args, command) must be equal;
    - scalars compare as Kubernetes quantities when both look like one ("1" == 1 == "1000m",
      "1Gi" == "1024Mi"), since the API server rewrites quantities to canonical form;
    - a Secret's stringData is compared as base64 `data`, which is all the server keeps;
    - when the live object lists managedFields and `field_manager` is not among them, the object
      was never applied by hooksync (or was taken over), so it counts as drifted.
    """
    managed = (live.get("metadata") or {}).get("managedFields")
    if managed and not any(entry.get("manager") == field_manager for entry in managed):
        return True
    return not _same(_comparable(desired), live)


def _comparable(desired: Mapping[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(dict(desired))
    result.pop("status", None)
    metadata = result.get("metadata")
    if isinstance(metadata, dict):
        for field in SERVER_METADATA:
            metadata.pop(field, None)
    string_data = result.pop("stringData", None)
    if result.get("kind") == "Secret" and isinstance(string_data, dict):
        data = dict(result.get("data") or {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        result["data"] = data
    elif string_data is not None:
        result["stringData"] = string_data
    return result


def _same(desired: Any, live: Any) -> bool:
    if desired is None:
        return live is None or live == {} or live == []
    if isinstance(desired, dict):
        if not desired:
            return live is None or isinstance(live, dict)
        if not isinstance(live, dict):
            return False
        return all(_same(value, live.get(key)) for key, value in desired.items())
    if isinstance(desired, list):
        return _same_list(desired, live)
    return _same_scalar(desired, live)


def _same_list(desired: list[Any], live: Any) -> bool:
    if not desired:
        return live is None or live == []
    if not isinstance(live, list):
        return False
    if all(isinstance(item, dict) for item in desired):
        names = [item.get("name") for item in desired]
        if all(isinstance(name, str) for name in names) and len(set(names)) == len(names):
            by_name = {item.get("name"): item for item in live if isinstance(item, dict)}
            return all(_same(item, by_name.get(item["name"])) for item in desired)
        return len(live) >= len(desired) and all(map(_same, desired, live))
    return len(live) == len(desired) and all(map(_same, desired, live))


_QUANTITY: Final = re.compile(
    r"^(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?$"
)
_SUFFIX: Final = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}


def _quantity(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    match = _QUANTITY.match(str(value))
    if match is None:
        return None
    suffix = match["suffix"] or ""
    try:
        number = Decimal(match["number"])
        if suffix[:1] in ("e", "E"):
            return number * Decimal(10) ** int(suffix[1:])
        return number * _SUFFIX[suffix]
    except (InvalidOperation, OverflowError):
        return None


def _same_scalar(desired: Any, live: Any) -> bool:
    if desired == live and type(desired) is type(live):
        return True
    if isinstance(desired, bool) or isinstance(live, bool):
        return False
    left, right = _quantity(desired), _quantity(live)
    return left is not None and right is not None and left == right


# --- health ------------------------------------------------------------------------------------


_READY: Final = Health(True, "ready")


def health_of(obj: Mapping[str, Any]) -> Health:
    """The health of one live object: the built-in workloads by their rollout, every other
    kind by its status conditions (`jobimage.health.current`)."""
    group_kind = (group_of(str(obj.get("apiVersion", ""))), str(obj.get("kind", "")))
    check = _HEALTH_CHECKS.get(group_kind)
    return current(obj) if check is None else check(obj)


def _number(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("spec") or {}


def _status(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("status") or {}


def _conditions(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [c for c in _status(obj).get("conditions") or [] if isinstance(c, Mapping)]


def _unobserved(obj: Mapping[str, Any]) -> Health | None:
    generation = (obj.get("metadata") or {}).get("generation")
    observed = _status(obj).get("observedGeneration")
    if isinstance(generation, int) and _number(observed, -1) < generation:
        return Health(False, f"waiting for the controller to observe generation {generation}")
    return None


def _deployment_health(obj: Mapping[str, Any]) -> Health:
    # Conditions describe the observed generation only; before that, a deadline is stale.
    waiting = _unobserved(obj)
    if waiting:
        return waiting
    for condition in _conditions(obj):
        if condition.get("type") == "Progressing" and (
            condition.get("reason") == "ProgressDeadlineExceeded"
        ):
            message = condition.get("message") or "progress deadline exceeded"
            return Health(False, f"rollout failed: {message}", failed=True)
    status = _status(obj)
    replicas = _number(_spec(obj).get("replicas"), 1)
    updated = _number(status.get("updatedReplicas"))
    total = _number(status.get("replicas"))
    available = _number(status.get("availableReplicas"))
    if updated < replicas:
        return Health(False, f"{updated} of {replicas} replicas updated")
    if total > updated:
        return Health(False, f"{total - updated} old replicas pending termination")
    if available < replicas:
        return Health(False, f"{available} of {replicas} replicas available")
    return _READY


def _statefulset_health(obj: Mapping[str, Any]) -> Health:
    waiting = _unobserved(obj)
    if waiting:
        return waiting
    spec, status = _spec(obj), _status(obj)
    replicas = _number(spec.get("replicas"), 1)
    ready = _number(status.get("readyReplicas"))
    if ready < replicas:
        return Health(False, f"{ready} of {replicas} replicas ready")
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return _READY  # OnDelete: pods update when someone deletes them, nothing to wait for
    updated = _number(status.get("updatedReplicas"))
    partition = _number((strategy.get("rollingUpdate") or {}).get("partition"))
    if updated < replicas - partition:
        return Health(False, f"{updated} of {replicas - partition} replicas updated")
    if partition == 0 and status.get("currentRevision") != status.get("updateRevision"):
        return Health(False, f"waiting for revision {status.get('updateRevision')} to roll out")
    return _READY


def _daemonset_health(obj: Mapping[str, Any]) -> Health:
    waiting = _unobserved(obj)
    if waiting:
        return waiting
    status = _status(obj)
    desired = _number(status.get("desiredNumberScheduled"))
    updated = _number(status.get("updatedNumberScheduled"))
    available = _number(status.get("numberAvailable"))
    strategy = _spec(obj).get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") == "RollingUpdate" and updated < desired:
        return Health(False, f"{updated} of {desired} scheduled pods updated")
    if available < desired:
        return Health(False, f"{available} of {desired} scheduled pods available")
    return _READY


def _job_health(obj: Mapping[str, Any]) -> Health:
    for condition in _conditions(obj):
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Failed":
            why = condition.get("message") or condition.get("reason") or "failed"
            return Health(False, f"job failed: {why}", failed=True)
        if condition.get("type") == "Complete":
            return _READY
    status = _status(obj)
    active, succeeded = _number(status.get("active")), _number(status.get("succeeded"))
    return Health(False, f"job running: {active} active, {succeeded} succeeded")


_HEALTH_CHECKS: Final = {
    ("apps", "Deployment"): _deployment_health,
    ("apps", "StatefulSet"): _statefulset_health,
    ("apps", "DaemonSet"): _daemonset_health,
    ("batch", "Job"): _job_health,
    ("", "Pod"): pod_health,
}
