"""A stand-in for the deployment controller and the kubelet, for Deployments only.

The local control plane runs no deployment controller and the process kubelet runs only Job
pods, so nothing would ever report a Deployment as rolled out. This reports every Deployment in
the watched namespaces as the real ones would once all replicas are available.
"""

from __future__ import annotations

import threading
from typing import Any

from kubernetes import client


class RolloutStandIn:
    def __init__(self, api: client.ApiClient, namespaces: list[str], interval: float = 0.3) -> None:
        self.apps = client.AppsV1Api(api)
        self.namespaces = namespaces
        self.interval = interval
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name="rollouts", daemon=True)

    def start(self) -> RolloutStandIn:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=5)

    def _run(self) -> None:
        while not self.stop_event.wait(self.interval):
            for namespace in self.namespaces:
                try:
                    for deployment in self.apps.list_namespaced_deployment(namespace).items:
                        self._roll_out(deployment)
                except Exception:  # noqa: S112 - the API server may be restarting
                    continue

    def _roll_out(self, deployment: Any) -> None:
        generation = deployment.metadata.generation
        replicas = deployment.spec.replicas if deployment.spec.replicas is not None else 1
        status = deployment.status
        if (
            status is not None
            and status.observed_generation == generation
            and (status.available_replicas or 0) == replicas
        ):
            return
        self.apps.patch_namespaced_deployment_status(
            deployment.metadata.name,
            deployment.metadata.namespace,
            {
                "status": {
                    "observedGeneration": generation,
                    "replicas": replicas,
                    "updatedReplicas": replicas,
                    "readyReplicas": replicas,
                    "availableReplicas": replicas,
                    "conditions": [
                        {
                            "type": "Available",
                            "status": "True",
                            "reason": "MinimumReplicasAvailable",
                        },
                        {
                            "type": "Progressing",
                            "status": "True",
                            "reason": "NewReplicaSetAvailable",
                        },
                    ],
                }
            },
        )


def _condition(kind: str, reason: str) -> dict[str, str]:
    return {"type": kind, "status": "True", "reason": reason}
