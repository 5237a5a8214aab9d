"""Resync CronJobs: one per target with a schedule, reconciled from the configuration.

Run at start and whenever the configuration changes: creates, updates or deletes the CronJobs
labelled as hooksync's so that exactly the configured ones exist.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from hooksync import logs
from hooksync.config import Config
from receiver.dispatch.manifests import build_resync_cronjob
from receiver.jobapi import JobApi, job_selector

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
    cronjobs = JobApi(api, namespace)
    changes = CronJobChanges()
    wanted = desired_cronjobs(config)
    existing = {
        str(item["metadata"]["name"]): item
        for item in cronjobs.list_cronjobs(job_selector(mode="resync"))
        if item.get("metadata")
    }
    for name, body in wanted.items():
        current = existing.get(name)
        if current is None:
            cronjobs.create_cronjob(body)
            changes.created.append(name)
            continue
        if _same(current, body):
            changes.unchanged.append(name)
            continue
        version = current["metadata"]["resourceVersion"]
        body = {**body, "metadata": {**body["metadata"], "resourceVersion": version}}
        cronjobs.replace_cronjob(name, body)
        changes.updated.append(name)
    for name in existing.keys() - wanted.keys():
        cronjobs.delete_cronjob(name)
        changes.deleted.append(name)
    log.info(
        "resync cronjobs reconciled",
        extra=logs.extra(created=changes.created, updated=changes.updated, deleted=changes.deleted),
    )
    return changes


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
