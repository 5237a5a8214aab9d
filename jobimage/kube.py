"""The converge's only door to the API server: discovery, list, server-side apply, delete.

Everything here takes and returns plain object dicts, so the steps around it stay pure.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import (
    DynamicApiError,
    NotFoundError,
    ResourceNotFoundError,
)

from hooksync.inventory import ObjectRef
from hooksync.names import FIELD_MANAGER
from jobimage.errors import PermanentError, TransientError


class Cluster:
    """Server-side apply and friends for one namespace, through the dynamic client."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self._dynamic: DynamicClient | None = None
        self._lock = threading.Lock()

    @property
    def dynamic(self) -> DynamicClient:
        with self._lock:
            if self._dynamic is None:
                try:
                    self._dynamic = DynamicClient(self.api)
                except Exception as exc:
                    raise TransientError(f"API discovery failed: {exc}") from None
            return self._dynamic

    def _resource(self, api_version: str, kind: str) -> Any:
        try:
            return self.dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            return None

    def is_namespaced(self, api_version: str, kind: str) -> bool | None:
        """True for namespaced kinds, False for cluster-scoped ones, None when unknown."""
        resource = self._resource(api_version, kind)
        return None if resource is None else bool(resource.namespaced)

    def list(
        self, api_version: str, kind: str, namespace: str, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        resource = self._resource(api_version, kind)
        if resource is None:
            return []
        try:
            answer = resource.get(namespace=namespace, label_selector=label_selector)
        except DynamicApiError as exc:
            raise _api_error(f"listing {kind} in {namespace}", exc) from None
        items = answer.to_dict().get("items") or []
        for item in items:
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return list(items)

    def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        resource = self._resource(ref.api_version, ref.kind)
        if resource is None:
            return None
        try:
            return dict(resource.get(name=ref.name, namespace=ref.namespace).to_dict())
        except NotFoundError:
            return None
        except DynamicApiError as exc:
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
        try:
            answer = resource.server_side_apply(
                body=obj,
                name=ref.name,
                namespace=ref.namespace,
                field_manager=FIELD_MANAGER,
                force_conflicts=True,
                dry_run="All" if dry_run else None,
            )
        except DynamicApiError as exc:
            raise _api_error(f"applying {ref}", exc) from None
        return dict(answer.to_dict())

    def delete(self, ref: ObjectRef) -> bool:
        """Delete exactly the object `ref` names (uid precondition); False if already gone."""
        resource = self._resource(ref.api_version, ref.kind)
        if resource is None:
            return False
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        if ref.uid:
            body["preconditions"] = {"uid": ref.uid}  # type: ignore[assignment]
        try:
            resource.delete(name=ref.name, namespace=ref.namespace, body=body)
        except NotFoundError:
            return False
        except DynamicApiError as exc:
            if exc.status == 409:  # the uid changed: someone re-created it; not ours to delete
                return False
            raise _api_error(f"deleting {ref}", exc) from None
        return True


def _api_error(doing: str, exc: DynamicApiError | ApiException) -> Exception:
    status = getattr(exc, "status", None)
    message = _status_message(exc)
    if status in (400, 403, 404, 409, 422):
        if status == 403:
            message += " (the target's Role must allow this in its namespace)"
        return PermanentError(f"{doing}: {message}")
    return TransientError(f"{doing}: {message}")


def _status_message(exc: DynamicApiError | ApiException) -> str:
    body = getattr(exc, "body", None)
    try:
        data = json.loads(body) if body else {}
    except (TypeError, ValueError):
        data = {}
    if isinstance(data, dict) and data.get("message"):
        return str(data["message"])
    return str(getattr(exc, "reason", None) or exc)
