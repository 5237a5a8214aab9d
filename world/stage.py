"""A receiver on the stage: the real `hooksync-receiver` process, Jobs in a namespace of its
own, and readers for what it dispatched.

The targets of `world.webhooks.target_config` name a ServiceAccount that does not exist, so
the API server refuses the Jobs' pods: every Job stays as intake wrote it.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from hooksync import names
from world.receiver import ReceiverProcess
from world.webhooks import RECEIVER_ENV, Delivery, receiver_config, send

_MANAGED = f"{names.MANAGED_BY}={names.MANAGED_BY_VALUE}"


class Stage:
    """A receiver process whose Jobs go to their own namespace, and readers for those Jobs.

    `settings` are top-level configuration fields beside the targets (`maxBodyBytes`...).
    """

    def __init__(
        self,
        kube: client.ApiClient,
        kubeconfig: Path,
        directory: Path,
        targets: list[dict[str, Any]],
        namespace: str | None = None,
        env: dict[str, str] | None = None,
        settings: dict[str, Any] | None = None,
    ) -> None:
        self.kube = kube
        self.core = client.CoreV1Api(kube)
        self.batch = client.BatchV1Api(kube)
        self.namespace = namespace or f"t-{uuid.uuid4().hex[:10]}"
        self.settings = dict(settings or {})
        self.core.create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=self.namespace))
        )
        directory.mkdir(parents=True, exist_ok=True)
        self.config = receiver_config(self.namespace, targets, **self.settings)
        self.env = dict(RECEIVER_ENV if env is None else env)
        self.receiver = ReceiverProcess(directory, self.config, kubeconfig, env=self.env)
        self.receiver.start()

    @property
    def url(self) -> str:
        return self.receiver.url

    def send(self, delivery: Delivery) -> httpx.Response:
        return send(self.url, delivery)

    def reconfigure(self, targets: list[dict[str, Any]]) -> None:
        """Rewrite the configuration file with `targets`; the receiver reloads it itself."""
        self.config = receiver_config(self.namespace, targets, **self.settings)
        self.receiver.write_config(self.config)

    def jobs(self, target: str | None = None) -> dict[str, dict[str, Any]]:
        """The hooksync Jobs in the stage's namespace, by name, as plain API dicts."""
        selector = _MANAGED + (f",{names.TARGET}={target}" if target else "")
        listed = self.batch.list_namespaced_job(self.namespace, label_selector=selector)
        return {_name(job): self.kube.sanitize_for_serialization(job) for job in listed.items}

    def cronjobs(self) -> dict[str, dict[str, Any]]:
        """The hooksync CronJobs in the stage's namespace, by name, as plain API dicts."""
        listed = self.batch.list_namespaced_cron_job(self.namespace, label_selector=_MANAGED)
        return {_name(item): self.kube.sanitize_for_serialization(item) for item in listed.items}

    def recorded_deliveries(self) -> set[str]:
        """Every delivery id any hooksync Job in the namespace records."""
        found: set[str] = set()
        for job in self.jobs().values():
            value = (job["metadata"].get("annotations") or {}).get(names.DELIVERY, "")
            found.update(item for item in value.split(",") if item)
        return found

    def explain(self) -> str:
        return f"receiver log ends:\n{self.receiver.log()[-3000:]}"

    def close(self) -> None:
        self.receiver.stop()
        # With the receiver gone nothing posts final statuses, so nothing would lift the
        # status finalizer and the namespace would stay Terminating: lift it here.
        for name, job in self.jobs().items():
            if job["metadata"].get("finalizers"):
                self.batch.patch_namespaced_job(
                    name, self.namespace, {"metadata": {"finalizers": None}}
                )
        try:
            self.core.delete_namespace(self.namespace, propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                raise


def _name(item: client.V1Job | client.V1CronJob) -> str:
    return str(item.metadata.name) if item.metadata else ""
