"""Validate step: every rendered object must be namespaced, in the target's namespace, and unique,
and no RoleBinding may open the namespace to broad groups or to other namespaces.

Returns copies normalised for server-side apply and labelled with the target's inventory labels.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection, Sequence
from typing import Any, Final

from hooksync.inventory import PARENT_KIND, group_of, inventory_labels, parent_name
from jobimage.errors import ValidationError
from jobimage.plan import SERVER_METADATA
from jobimage.render import Manifest

__all__ = ["NamespacedKinds", "ValidationError", "validate"]

# (apiVersion, kind) -> True namespaced, False cluster-scoped, None not served by the cluster.
NamespacedKinds = Callable[[str, str], bool | None]

_RBAC: Final = "rbac.authorization.k8s.io"
BINDING_KINDS: Final = frozenset({"RoleBinding", "ClusterRoleBinding"})
# Groups that hold every user, every authenticated identity, or every ServiceAccount (of the
# cluster, or of one namespace: "system:serviceaccounts:<namespace>"). Binding a Role to one of
# them opens the namespace, its Secrets included, far beyond the target.
BROAD_GROUPS: Final = frozenset(
    {"system:unauthenticated", "system:authenticated", "system:serviceaccounts"}
)
NAMESPACE_GROUP_PREFIX: Final = "system:serviceaccounts:"
ANONYMOUS_USER: Final = "system:anonymous"
# How a ServiceAccount appears as a User subject: system:serviceaccount:<namespace>:<name>.
SERVICE_ACCOUNT_USER_PREFIX: Final = "system:serviceaccount:"
SUBJECTS_FIELD: Final = "allowedSubjectNamespaces"  # the target's configuration field


def validate(
    manifests: Sequence[Manifest],
    namespace: str,
    namespaced_kinds: NamespacedKinds,
    target: str,
    subject_namespaces: Collection[str] = (),
) -> list[dict[str, Any]]:
    """Check the rendered objects against the target's rules; return normalised copies.

    A RoleBinding may name subjects of `namespace` and of `subject_namespaces` only, and never
    a broad group (see `binding_problems`). Each copy has metadata.namespace set to
    `namespace`, the server-owned metadata and `status` removed, and the target's inventory
    labels added. Every problem is reported at once in one ValidationError (permanent), each
    naming the file and the object.
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
        if kind in BINDING_KINDS and group_of(api_version) == _RBAC:
            bindings = binding_problems(obj.get("subjects"), namespace, subject_namespaces)
            if bindings:
                problems.extend(f"{label}: {problem}" for problem in bindings)
                continue
        normalised.append(_normalise(obj, namespace, labels))
    if problems:
        raise ValidationError(problems)
    return normalised


def binding_problems(
    subjects: Any, namespace: str, subject_namespaces: Collection[str] = ()
) -> list[str]:
    """Pure: what is wrong with a binding's subjects in target namespace `namespace`.

    Refused: the broad groups (everyone, every authenticated identity, every ServiceAccount of
    the cluster or of any namespace), the anonymous user, and ServiceAccounts (as subjects or
    as system:serviceaccount:<ns>:<name> users) of a namespace other than `namespace` and those
    in `subject_namespaces`. A subject without a namespace is in the binding's own namespace.
    """
    if subjects is None:
        return []
    if not isinstance(subjects, list):
        return ["subjects must be a list"]
    allowed = {namespace, *subject_namespaces}
    problems: list[str] = []
    for index, subject in enumerate(subjects):
        if not isinstance(subject, dict):
            problems.append(f"subjects[{index}] must be a mapping")
            continue
        kind, name = subject.get("kind"), str(subject.get("name", ""))
        other = None
        if kind == "Group" and (name in BROAD_GROUPS or name.startswith(NAMESPACE_GROUP_PREFIX)):
            problems.append(
                f"subjects[{index}] binds group {name!r}, which opens namespace {namespace!r} "
                "far beyond this target; bind named ServiceAccounts or users instead"
            )
        elif kind == "User" and name == ANONYMOUS_USER:
            problems.append(
                f"subjects[{index}] binds {name!r}: anyone could use it without logging in; "
                "bind named ServiceAccounts or users instead"
            )
        elif kind == "User" and name.startswith(SERVICE_ACCOUNT_USER_PREFIX):
            other = name.removeprefix(SERVICE_ACCOUNT_USER_PREFIX).split(":")[0]
        elif kind == "ServiceAccount":
            other = str(subject.get("namespace") or namespace)
        if other is not None and other not in allowed:
            problems.append(
                f"subjects[{index}] is ServiceAccount {name!r} of namespace {other!r}, outside "
                f"{namespace!r}; list {other!r} in the target's {SUBJECTS_FIELD} to allow it"
            )
    return problems


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
