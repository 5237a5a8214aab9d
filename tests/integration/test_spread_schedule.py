"""Spread resync schedules on the real control plane: the API server accepts every resolved
CronJob, and the CronJob controller fires one at the minute `hooksync.schedule` says."""

from __future__ import annotations

import datetime
import time
from dataclasses import replace

import pytest
from kubernetes import client

from hooksync.config import Config, Target
from hooksync.schedule import next_fire_time, resolve
from receiver.dispatch.manifests import build_resync_cronjob

pytestmark = pytest.mark.cluster

FORMS = ("~15m", "~6h", "~1d", "H H * * *", "H(0-29)/10 * * * *", "H H(9-17) * * 1-5")
BASE = Target(
    name="shop",
    provider="github",
    repo="acme/shop",
    clone_url="https://git.example/acme/shop.git",
    branch="main",
    path=".",
    namespace="shop",
    service_account="hooksync-shop",
)


def config_in(namespace: str) -> Config:
    return Config(
        job_image="localhost/hooksync-job:test",
        public_url="https://hooksync.example",
        targets=(),
        namespace=namespace,
    )


def test_the_api_server_accepts_every_resolved_schedule(
    kube: client.ApiClient, namespace: str
) -> None:
    batch = client.BatchV1Api(kube)
    config = config_in(namespace)
    created = {}
    for index, form in enumerate(FORMS * 5):
        target = replace(BASE, name=f"fleet-{index}", resync=form, suspend=True)
        body = build_resync_cronjob(config, target)
        batch.create_namespaced_cron_job(namespace, body)
        created[body["metadata"]["name"]] = resolve(form, target.name)
    live = {
        c.metadata.name: c.spec.schedule for c in batch.list_namespaced_cron_job(namespace).items
    }
    assert live == created
    assert len(set(created.values())) > len(FORMS)  # different names, different minutes


def test_the_cronjob_controller_fires_at_the_resolved_minute(
    kube: client.ApiClient, namespace: str
) -> None:
    """Every other minute at the target's own offset: the controller's first run is the
    minute `next_fire_time` names. Its Jobs are created suspended, so no pod runs."""
    batch = client.BatchV1Api(kube)
    target = replace(BASE, name="spread-check", resync="H/2 * * * *")
    body = build_resync_cronjob(config_in(namespace), target)
    body["spec"]["jobTemplate"]["spec"]["suspend"] = True
    created = batch.create_namespaced_cron_job(namespace, body)
    schedule = created.spec.schedule
    assert schedule == resolve("H/2 * * * *", "spread-check")
    expected = next_fire_time(schedule, created.metadata.creation_timestamp)
    assert expected is not None
    deadline = time.monotonic() + 200
    fired: datetime.datetime | None = None
    while fired is None and time.monotonic() < deadline:
        time.sleep(2)
        status = batch.read_namespaced_cron_job(created.metadata.name, namespace).status
        fired = status.last_schedule_time if status else None
    assert fired is not None, f"the CronJob controller never fired {schedule!r}"
    assert fired == expected, (schedule, fired, expected)
    assert fired.minute in range(fired.minute % 2, 60, 2)
    assert fired.minute % 2 == int(schedule.split(",")[0]) % 2
