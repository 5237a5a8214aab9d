"""The inventory: which objects a target applied, recorded ApplySet-style in a ConfigMap.

The ConfigMap is the ApplySet parent (named by hooksync.names.parent_name); every applied
object carries the parent's id label.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from hooksync.names import (
    APPLYSET_PART_OF,
    INVENTORY_TARGET,
    MANAGED_BY,
    MANAGED_BY_VALUE,
    TARGET,
)
from hooksync.names import parent_name as parent_name  # defined with the other object names

PARENT_KIND: Final = "ConfigMap"
PARENT_GROUP: Final = ""
PARENT_API_VERSION: Final = "v1"

# Labels and annotations the ApplySet spec (KEP-3659) puts on the parent.
APPLYSET_ID: Final = "applyset.kubernetes.io/id"
APPLYSET_TOOLING: Final = "applyset.kubernetes.io/tooling"
APPLYSET_TOOLING_VALUE: Final = "hooksync/v1"
APPLYSET_CONTAINS_GROUP_KINDS: Final = "applyset.kubernetes.io/contains-group-kinds"

# The key under the parent's `data` that holds the JSON record.
DATA_KEY: Final = "inventory.json"
RECORD_VERSION: Final = 1


class InventoryError(ValueError):
    """The inventory ConfigMap's data cannot be read; the message says what is wrong."""


def applyset_id(target: str, namespace: str) -> str:
    """The ApplySet id of a target's parent, per the ApplySet spec.

    "applyset-" + unpadded base64url(sha256("<name>.<namespace>.<kind>.<group>")) + "-v1".
    """
    parent = f"{parent_name(target)}.{namespace}.{PARENT_KIND}.{PARENT_GROUP}"
    digest = hashlib.sha256(parent.encode()).digest()
    return "applyset-" + base64.urlsafe_b64encode(digest).decode().rstrip("=") + "-v1"


def inventory_labels(target: str, namespace: str) -> dict[str, str]:
    """The labels every object a target applies carries; prune only considers objects with both."""
    return {APPLYSET_PART_OF: applyset_id(target, namespace), INVENTORY_TARGET: target}


def group_of(api_version: str) -> str:
    """The API group of an apiVersion: "apps/v1" -> "apps", "v1" -> "" (the core group)."""
    return api_version.rpartition("/")[0]


@dataclass(frozen=True, order=True)
class ObjectRef:
    """One applied object, precise enough to read it back and to delete it with a uid check."""

    group: str
    version: str
    kind: str
    namespace: str
    name: str
    uid: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str, str, str]:
        """(group, kind, namespace, name): the identity that ignores version and uid."""
        return (self.group, self.kind, self.namespace, self.name)

    @property
    def group_kind(self) -> str:
        """As the ApplySet annotation spells it: 'Deployment.apps', or just 'Secret' for core."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> ObjectRef:
        """The reference to a Kubernetes object dict (uid empty if the object has none yet)."""
        api_version = str(obj.get("apiVersion", ""))
        metadata = obj.get("metadata") or {}
        group, _, version = api_version.rpartition("/")
        return cls(
            group=group,
            version=version,
            kind=str(obj.get("kind", "")),
            namespace=str(metadata.get("namespace") or ""),
            name=str(metadata.get("name", "")),
            uid=str(metadata.get("uid") or ""),
        )


@dataclass(frozen=True)
class InventoryRecord:
    """What one successful converge applied, and from which commit.

    `fingerprints` maps each applied object's uid to `fingerprint` of the object as that same
    converge applied it (or, when it found nothing to apply, saw it): a resync at an unchanged
    head compares them with the live objects instead of fetching and rendering. Empty when
    unknown, which makes the next resync take the full path.
    """

    sha: str | None
    objects: tuple[ObjectRef, ...]
    fingerprints: Mapping[str, str] = field(default_factory=dict)


# Fields that change without anyone changing the object: the server's bookkeeping. `status` is
# written by controllers, never by an apply, so a status change is not drift.
_UNFINGERPRINTED_METADATA = frozenset(
    {"resourceVersion", "managedFields", "generation", "creationTimestamp", "uid", "selfLink"}
)


def fingerprint(obj: Mapping[str, Any]) -> str:
    """Pure: a digest of everything in a live object but its status and the server's
    bookkeeping, so any edit to its labels, annotations, spec or data changes it."""
    content = {
        key: value for key, value in obj.items() if key not in ("status", "apiVersion", "kind")
    }
    metadata = content.get("metadata") or {}
    content["metadata"] = {
        key: value for key, value in metadata.items() if key not in _UNFINGERPRINTED_METADATA
    }
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def contains_group_kinds(refs: Iterable[ObjectRef]) -> str:
    """The parent's contains-group-kinds annotation value: sorted, comma-separated, no repeats."""
    return ",".join(sorted({ref.group_kind for ref in refs}))


def encode_inventory(record: InventoryRecord) -> dict[str, str]:
    """The parent ConfigMap's `data` for a record (stable JSON: sorted objects, fixed keys)."""
    document: dict[str, Any] = {
        "version": RECORD_VERSION,
        "sha": record.sha,
        "objects": [
            {
                "group": ref.group,
                "version": ref.version,
                "kind": ref.kind,
                "namespace": ref.namespace,
                "name": ref.name,
                "uid": ref.uid,
            }
            for ref in sorted(record.objects)
        ],
    }
    if record.fingerprints:
        document["fingerprints"] = dict(sorted(record.fingerprints.items()))
    return {DATA_KEY: json.dumps(document, separators=(",", ":"), sort_keys=True)}


def decode_inventory(data: Mapping[str, str] | None) -> InventoryRecord:
    """Read a record back from the parent's `data`; no data means an empty record.

    Raises InventoryError when the data is present but malformed, so the caller can refuse to
    prune rather than guess.
    """
    if not data or DATA_KEY not in data:
        return InventoryRecord(sha=None, objects=())
    try:
        document: Any = json.loads(data[DATA_KEY])
    except (TypeError, ValueError) as exc:
        raise InventoryError(
            f"{DATA_KEY} is not valid JSON ({exc}); delete the inventory ConfigMap's "
            "data key to start a fresh inventory"
        ) from exc
    if not isinstance(document, dict) or not isinstance(document.get("objects"), list):
        raise InventoryError(f"{DATA_KEY} has no 'objects' list; it was not written by hooksync")
    if document.get("version") != RECORD_VERSION:
        raise InventoryError(
            f"{DATA_KEY} has version {document.get('version')!r}; this hooksync reads "
            f"version {RECORD_VERSION} — upgrade the Job image"
        )
    sha = document.get("sha")
    refs = []
    for index, item in enumerate(document["objects"]):
        fields = ("group", "version", "kind", "namespace", "name", "uid")
        if not isinstance(item, dict) or not all(isinstance(item.get(f), str) for f in fields):
            raise InventoryError(f"{DATA_KEY} object {index} lacks one of {', '.join(fields)}")
        refs.append(ObjectRef(**{f: item[f] for f in fields}))
    fingerprints = document.get("fingerprints") or {}
    if not isinstance(fingerprints, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in fingerprints.items()
    ):
        fingerprints = {}  # only an optimisation: without them the next resync runs in full
    return InventoryRecord(
        sha=sha if isinstance(sha, str) else None, objects=tuple(refs), fingerprints=fingerprints
    )


def parent_configmap(target: str, namespace: str, record: InventoryRecord) -> dict[str, Any]:
    """The full inventory ConfigMap for a record, ready to server-side apply."""
    return {
        "apiVersion": PARENT_API_VERSION,
        "kind": PARENT_KIND,
        "metadata": {
            "name": parent_name(target),
            "namespace": namespace,
            "labels": {
                APPLYSET_ID: applyset_id(target, namespace),
                MANAGED_BY: MANAGED_BY_VALUE,
                TARGET: target,
            },
            "annotations": {
                APPLYSET_TOOLING: APPLYSET_TOOLING_VALUE,
                APPLYSET_CONTAINS_GROUP_KINDS: contains_group_kinds(record.objects),
            },
        },
        "data": encode_inventory(record),
    }
