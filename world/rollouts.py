"""A stand-in for the deployment controller and the kubelet, for Deployments only.

The local control plane runs no deployment controller and the process kubelet runs only Job
pods, so nothing would ever report a Deployment as rolled out. This reports every Deployment in
the watched namespaces as the real ones would once all replicas are available.
"""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor

from kubernetes import client
from kubernetes.client.exceptions import ApiException


class RolloutStandIn:
    """Every `interval` seconds, reports each Deployment whose status is behind its spec as
    observed and fully rolled out. `namespaces` None watches them all; `workers` patches that
    many Deployments at once (for benchmarks with hundreds of them)."""

    def __init__(
        self,
        api: client.ApiClient,
        namespaces: list[str] | None = None,
        *,
        interval: float = 0.3,
        workers: int = 1,
    ) -> None:
        self.apps = client.AppsV1Api(api)
        self.namespaces = namespaces
        self.interval = interval
        self.workers = workers
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rollouts", daemon=True)

    def start(self) -> RolloutStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Report nothing more; a stand-in does not start again (make a new one)."""
        self._stop.set()
        self._thread.join(timeout=5)

    def __enter__(self) -> RolloutStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        with ThreadPoolExecutor(self.workers, thread_name_prefix="rollouts") as pool:
            while not self._stop.wait(self.interval):
                try:
                    behind = [item for item in self._deployments() if _behind(item)]
                except Exception:  # noqa: S112 - the API server may be restarting
                    continue
                # A round ends before the next starts, so no Deployment is reported twice.
                list(pool.map(self._report, behind))

    def _deployments(self) -> list[client.V1Deployment]:
        if self.namespaces is None:
            return list(self.apps.list_deployment_for_all_namespaces().items)
        found: list[client.V1Deployment] = []
        for namespace in self.namespaces:
            found += self.apps.list_namespaced_deployment(namespace).items
        return found

    def _report(self, deployment: client.V1Deployment) -> None:
        if self._stop.is_set():
            return
        # Gone already, or a newer generation raced in (the next round reports that one).
        with contextlib.suppress(ApiException):
            report_rolled_out(self.apps, deployment)


def _behind(deployment: client.V1Deployment) -> bool:
    """Pure: whether the status is not yet that of `deployment`'s generation fully rolled out."""
    status = deployment.status
    generation = deployment.metadata.generation if deployment.metadata else None
    return not (
        status is not None
        and status.observed_generation == generation
        and (status.available_replicas or 0) == _replicas(deployment)
    )


def _replicas(deployment: client.V1Deployment) -> int:
    spec = deployment.spec
    return spec.replicas if spec is not None and spec.replicas is not None else 1


def report_rolled_out(apps: client.AppsV1Api, deployment: client.V1Deployment) -> None:
    """Patch a Deployment's status subresource as the controller would after a rollout."""
    metadata = deployment.metadata
    if metadata is None or metadata.name is None or metadata.namespace is None:
        raise ValueError("a Deployment read from the API server has a name and a namespace")
    replicas = _replicas(deployment)
    apps.patch_namespaced_deployment_status(
        metadata.name,
        metadata.namespace,
        {
            "status": {
                "observedGeneration": metadata.generation,
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
                "conditions": [
                    _condition("Available", "MinimumReplicasAvailable"),
                    _condition("Progressing", "NewReplicaSetAvailable"),
                ],
            }
        },
    )


def _condition(kind: str, reason: str) -> dict[str, str]:
    return {"type": kind, "status": "True", "reason": reason}
