"""The app the storm and soak benchmarks deploy: one ConfigMap whose data names the commit, so
that what the namespace holds says which push it is at."""

from __future__ import annotations

import yaml
from kubernetes import client

from world.stack import DeliveryStack


def app(marker: str) -> dict[str, str | None]:
    """The repository files of a commit carrying `marker`."""
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "web"},
        "data": {"marker": marker},
    }
    return {"deploy/configmap.yaml": yaml.safe_dump(configmap)}


def marker_now(stack: DeliveryStack) -> str | None:
    """The marker the target namespace holds now; None when it cannot be read."""
    try:
        item = client.CoreV1Api(stack.api).read_namespaced_config_map(
            "web", stack.target_namespace, _request_timeout=10
        )
    except Exception:
        return None
    return (item.data or {}).get("marker")
