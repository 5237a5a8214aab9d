"""The converge's only door to the API server: discovery, list, server-side apply, delete.

Everything here takes and returns plain object dicts, so the steps around it stay pure.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from hooksync.inventory import ObjectRef
from hooksync.names import FIELD_MANAGER
from jobimage.errors import PermanentError, TransientError
from jobimage.kubeclient import ApiError, KubeClient, Unreachable

APPLY_PATCH = "application/apply-patch+yaml"  # a JSON body is valid YAML


@dataclass(frozen=True)
class Resource:
    """Where the API server serves one kind: its resource path and whether it is namespaced."""

    prefix: str  # /api/v1 or /apis/<group>/<version>
    plural: str
    namespaced: bool

    def path(self, namespace: str | None, name: str | None = None) -> str:
        where = f"/namespaces/{quote(namespace, safe='')}" if self.namespaced and namespace else ""
        one = f"/{quote(name, safe='')}" if name else ""
        return f"{self.prefix}{where}/{self.plural}{one}"


class Cluster:
    """Server-side apply and friends for one namespace, over the Job's own client."""

    def __init__(self, api: KubeClient) -> None:
        self.api = api
        # Discovery, one group-version at a time, as the converge first meets its kinds.
        self._served: dict[str, dict[str, Resource]] = {}
        self._lock = threading.Lock()

    def _resource(self, api_version: str, kind: str) -> Resource | None:
        with self._lock:
            served = self._served.get(api_version)
            if served is None or kind not in served:
                # Not seen yet, or not there when last asked: a CRD may have come since.
                served = self._served[api_version] = self._discover(api_version)
            return served.get(kind)

    def _discover(self, api_version: str) -> dict[str, Resource]:
        prefix = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
        try:
            listing = self.api.request("GET", prefix)
        except ApiError as exc:
            if exc.status == 404:  # the group-version is not served at all
                return {}
            raise TransientError(f"API discovery failed: {exc.message}") from None
        except Unreachable as exc:
            raise TransientError(f"API discovery failed: {exc}") from None
        found: dict[str, Resource] = {}
        for entry in listing.get("resources") or []:
            name = entry.get("name") or ""
            if "/" in name or not entry.get("kind"):  # a subresource such as deployments/scale
                continue
            found.setdefault(entry["kind"], Resource(prefix, name, bool(entry.get("namespaced"))))
        return found

    def is_namespaced(self, api_version: str, kind: str) -> bool | None:
        """True for namespaced kinds, False for cluster-scoped ones, None when unknown."""
        resource = self._resource(api_version, kind)
        return None if resource is None else resource.namespaced

    def list(
        self, api_version: str, kind: str, namespace: str, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        resource = self._resource(api_version, kind)
        if resource is None:
            return []
        try:
            answer = self.api.request(
                "GET", resource.path(namespace), query={"labelSelector": label_selector}
            )
        except (ApiError, Unreachable) as exc:
            raise _api_error(f"listing {kind} in {namespace}", exc) from None
        items = answer.get("items") or []
        for item in items:
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return list(items)

    def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        resource = self._resource(ref.api_version, ref.kind)
        if resource is None:
            return None
        try:
            return dict(self.api.request("GET", resource.path(ref.namespace, ref.name)))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise _api_error(f"reading {ref}", exc) from None
        except Unreachable as exc:
            raise _api_error(f"reading {ref}", exc) from None

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        """The labels of Namespace `namespace` (the target's Role must allow `get` on it)."""
        ref = ObjectRef("", "v1", "Namespace", "", namespace)
        try:
            live = self.get(ref)
        except PermanentError as exc:
            raise PermanentError(
                f"{exc}; the Job reads its namespace's Pod Security label: add "
                '`{apiGroups: [""], resources: ["namespaces"], verbs: ["get"]}` to the Role'
            ) from None
        if live is None:
            raise PermanentError(f"namespace {namespace!r} does not exist; create it first")
        return dict((live.get("metadata") or {}).get("labels") or {})

    def apply(self, obj: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
        """Server-side apply `obj` as hooksync, taking over conflicting fields."""
        ref = ObjectRef.from_object(obj)
        resource = self._resource(ref.api_version, ref.kind)
        if resource is None:
            raise PermanentError(
                f"{ref}: the API server does not serve {ref.api_version} {ref.kind}"
            )
        query = {
            "fieldManager": FIELD_MANAGER,
            "force": "true",
            "dryRun": "All" if dry_run else None,
        }
        try:
            answer = self.api.request(
                "PATCH",
                resource.path(ref.namespace, ref.name),
                query=query,
                body=obj,
                content_type=APPLY_PATCH,
            )
        except (ApiError, Unreachable) as exc:
            raise _api_error(f"applying {ref}", exc) from None
        return dict(answer)

    def delete(self, ref: ObjectRef) -> bool:
        """Delete exactly the object `ref` names (uid precondition); False if already gone."""
        resource = self._resource(ref.api_version, ref.kind)
        if resource is None:
            return False
        body: dict[str, Any] = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "propagationPolicy": "Background",
        }
        if ref.uid:
            body["preconditions"] = {"uid": ref.uid}
        try:
            self.api.request("DELETE", resource.path(ref.namespace, ref.name), body=body)
        except ApiError as exc:
            if exc.status == 404:
                return False
            if exc.status == 409:  # the uid changed: someone re-created it; not ours to delete
                return False
            raise _api_error(f"deleting {ref}", exc) from None
        except Unreachable as exc:
            raise _api_error(f"deleting {ref}", exc) from None
        return True


def _api_error(doing: str, exc: ApiError | Unreachable) -> Exception:
    """Pure: the converge error for a failed request: the client's fault is permanent (403
    with the fix), the server's or the network's transient."""
    if isinstance(exc, Unreachable):
        return TransientError(f"{doing}: {exc}")
    message = exc.message
    if exc.status in (400, 403, 404, 409, 422):
        if exc.status == 403:
            message += " (the target's Role must allow this in its namespace)"
        return PermanentError(f"{doing}: {message}")
    return TransientError(f"{doing}: {message}")
