"""A custom resource of the test world, the Widget, and a tiny controller for it.

The controller writes status conditions the way an operator would (observedGeneration, Ready,
Stalled), but as each Widget's spec asks, so converge tests can show how hooksync reads the
health of a kind it knows nothing about:

- `behavior: ready`: Ready=True as soon as it sees the generation;
- `behavior: late`: Ready=False (Provisioning) at once, flipped to Ready=True after
  `delaySeconds`;
- `behavior: never`: Ready=False (Provisioning), for good;
- `behavior: stalled`: Stalled=True (QuotaExceeded), for good.

It is a thread in the test process that lists and patches through the real API server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from world.kubelet import wait_until

GROUP: Final = "world.hooksync.dev"
VERSION: Final = "v1"
KIND: Final = "Widget"
PLURAL: Final = "widgets"
API_VERSION: Final = f"{GROUP}/{VERSION}"
BEHAVIORS: Final = ("ready", "late", "never", "stalled")

CRD: Final[dict[str, Any]] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": PLURAL, "singular": "widget", "kind": KIND, "listKind": "WidgetList"},
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                # With a status subresource, a spec change bumps metadata.generation and an
                # apply never touches the status: only the controller writes it.
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "behavior": {"type": "string", "enum": list(BEHAVIORS)},
                                    "delaySeconds": {"type": "number"},
                                    "size": {"type": "integer"},
                                },
                            },
                            "status": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            },
                        },
                    }
                },
            }
        ],
    },
}


def widget(name: str, behavior: str, *, size: int = 1, delay_seconds: float = 0) -> str:
    """A Widget manifest as a target's Git repository holds it."""
    if behavior not in BEHAVIORS:
        raise ValueError(f"behavior {behavior!r} is not one of {', '.join(BEHAVIORS)}")
    spec: dict[str, Any] = {"behavior": behavior, "size": size}
    if delay_seconds:
        spec["delaySeconds"] = delay_seconds
    return yaml.safe_dump(
        {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name}, "spec": spec}
    )


def install_crd(api: client.ApiClient, timeout: float = 30) -> None:
    """Create the Widget CRD unless it exists, and wait until Widgets can be listed."""
    try:
        # The client takes a plain dict as the body, as the API server's JSON.
        body: Any = CRD
        client.ApiextensionsV1Api(api).create_custom_resource_definition(body)
    except ApiException as exc:
        if exc.status != 409:
            raise
    objects = client.CustomObjectsApi(api)

    def served() -> bool:
        try:
            objects.list_cluster_custom_object(GROUP, VERSION, PLURAL)
        except ApiException:
            return False
        return True

    wait_until(served, timeout)


def widget_role_rule() -> client.V1PolicyRule:
    """What a target's Role needs to converge Widgets: apply, list and prune them."""
    verbs = ["get", "list", "watch", "create", "update", "patch", "delete"]
    return client.V1PolicyRule(api_groups=[GROUP], resources=[PLURAL], verbs=verbs)


def status_for(obj: Mapping[str, Any], seen_for: float) -> dict[str, Any] | None:
    """Pure: the status the controller writes for `obj` once it has seen its generation for
    `seen_for` seconds; None when what is there is already that."""
    metadata = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    generation = metadata.get("generation")
    behavior = spec.get("behavior", "ready")
    name = metadata.get("name")
    if behavior == "stalled":
        conditions = [
            _condition("Stalled", "True", "QuotaExceeded", f"no quota left for widget {name}"),
            _condition("Ready", "False", "QuotaExceeded", "see Stalled"),
        ]
    elif behavior == "ready" or (
        behavior == "late" and seen_for >= float(spec.get("delaySeconds") or 0)
    ):
        conditions = [_condition("Ready", "True", "Provisioned", f"widget {name} is ready")]
    else:
        message = f"widget {name} of size {spec.get('size', 1)} is being made"
        conditions = [_condition("Ready", "False", "Provisioning", message)]
    status = {"observedGeneration": generation, "conditions": conditions}
    return None if obj.get("status") == status else status


def _condition(kind: str, state: str, reason: str, message: str) -> dict[str, str]:
    return {"type": kind, "status": state, "reason": reason, "message": message}


@dataclass(frozen=True)
class Written:
    """One status the controller wrote, and when (time.monotonic())."""

    namespace: str
    name: str
    generation: int
    status: Mapping[str, Any]
    at: float

    def says(self, kind: str, state: str) -> bool:
        return any(
            c.get("type") == kind and c.get("status") == state
            for c in self.status.get("conditions") or []
        )


class WidgetController:
    """Every `interval` seconds, writes each Widget's status in `namespaces` as its spec asks;
    `written` records every status written, for tests to see when a condition flipped."""

    def __init__(
        self, api: client.ApiClient, namespaces: list[str], *, interval: float = 0.1
    ) -> None:
        self.objects = client.CustomObjectsApi(api)
        self.namespaces = namespaces
        self.interval = interval
        self.written: list[Written] = []
        self._first_seen: dict[tuple[str, str, int], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="widgets", daemon=True)

    def start(self) -> WidgetController:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def __enter__(self) -> WidgetController:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for namespace in self.namespaces:
                try:
                    listed: Any = self.objects.list_namespaced_custom_object(
                        GROUP, VERSION, namespace, PLURAL
                    )
                except ApiException:
                    continue
                for item in listed.get("items") or []:
                    self._reconcile(namespace, item)

    def _reconcile(self, namespace: str, item: Mapping[str, Any]) -> None:
        metadata = item.get("metadata") or {}
        name, generation = str(metadata.get("name")), int(metadata.get("generation") or 0)
        now = time.monotonic()
        first = self._first_seen.setdefault((namespace, name, generation), now)
        status = status_for(item, now - first)
        if status is None:
            return
        try:
            self.objects.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, PLURAL, name, {"status": status}
            )
        except ApiException:
            return  # gone, or changed underneath: the next round sees it as it is
        self.written.append(Written(namespace, name, generation, status, time.monotonic()))
