"""Resync CronJobs: one per target with a schedule, reconciled from the configuration.

Run at start and whenever the configuration changes: creates, updates or deletes the CronJobs
labelled as hooksync's so that exactly the configured ones exist.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from hooksync import logs, names
from hooksync.config import Config
from receiver.dispatch.manifests import build_resync_cronjob

log = logging.getLogger("hooksync.receiver")


@dataclass
class CronJobChanges:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def desired_cronjobs(config: Config) -> dict[str, dict[str, Any]]:
    """The CronJobs the configuration asks for, by name."""
    wanted = {}
    for target in config.targets:
        if target.resync:
            body = build_resync_cronjob(config, target)
            wanted[body["metadata"]["name"]] = body
    return wanted


def reconcile_cronjobs(api: client.ApiClient, config: Config, namespace: str) -> CronJobChanges:
    """Make the resync CronJobs in `namespace` match `config`."""
    batch = client.BatchV1Api(api)
    changes = CronJobChanges()
    wanted = desired_cronjobs(config)
    selector = f"{names.MANAGED_BY}={names.MANAGED_BY_VALUE},{names.MODE}=resync"
    existing = {
        str(item.metadata.name): item
        for item in batch.list_namespaced_cron_job(namespace, label_selector=selector).items
        if item.metadata is not None
    }
    for name, body in wanted.items():
        current = existing.get(name)
        if current is None:
            batch.create_namespaced_cron_job(namespace, _untyped(body))
            changes.created.append(name)
            continue
        current_dict = api.sanitize_for_serialization(current)
        if _same(current_dict, body):
            changes.unchanged.append(name)
            continue
        version = current_dict["metadata"]["resourceVersion"]
        body = {**body, "metadata": {**body["metadata"], "resourceVersion": version}}
        batch.replace_namespaced_cron_job(name, namespace, _untyped(body))
        changes.updated.append(name)
    for name in existing.keys() - wanted.keys():
        try:
            batch.delete_namespaced_cron_job(name, namespace, propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                raise
        changes.deleted.append(name)
    log.info(
        "resync cronjobs reconciled",
        extra=logs.extra(created=changes.created, updated=changes.updated, deleted=changes.deleted),
    )
    return changes


def _untyped(body: dict[str, Any]) -> Any:
    """The client's stubs ask for model objects; it serialises plain dicts just the same."""
    return body


def _same(current: dict[str, Any], desired: dict[str, Any]) -> bool:
    """Whether every field the receiver sets already has the desired value."""
    return _contains(current, desired)


def _contains(live: Any, want: Any) -> bool:
    if isinstance(want, dict):
        return isinstance(live, dict) and all(
            _contains(live.get(key), value) for key, value in want.items()
        )
    if isinstance(want, list):
        return (
            isinstance(live, list)
            and len(live) == len(want)
            and all(_contains(a, b) for a, b in zip(live, want, strict=True))
        )
    return bool(live == want)
