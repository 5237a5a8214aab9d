"""Kubernetes manifests as a target's Git repository holds them, one YAML document each."""

from __future__ import annotations

from typing import Any

import yaml


def configmap(name: str, data: dict[str, str], annotations: dict[str, str] | None = None) -> str:
    metadata: dict[str, Any] = {"name": name}
    if annotations:
        metadata["annotations"] = annotations
    return yaml.safe_dump(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}
    )


def service(name: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {
                "selector": {"app": name},
                "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
            },
        }
    )


def deployment(name: str, replicas: int = 1, image: str = "registry.local/web:1") -> str:
    labels = {"app": name}
    return yaml.safe_dump(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "web", "image": image}]},
                },
            },
        }
    )


def shop_files(version: str = "v1", path: str = "deploy") -> dict[str, str | bytes | None]:
    """The usual target: one ConfigMap, one Service and one Deployment, a file each."""
    return {
        f"{path}/config.yaml": configmap("settings", {"version": version}),
        f"{path}/service.yaml": service("web"),
        f"{path}/deployment.yaml": deployment("web"),
    }
