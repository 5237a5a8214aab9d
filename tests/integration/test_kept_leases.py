"""The Leases the leader writes, on a real API server: the recent runs and a target's record,
written from the version last seen, read again when that version is out of date, and followed
by the watch every replica keeps."""

from __future__ import annotations

import threading

import pytest
from kubernetes import client

from hooksync import names
from receiver.kept import KeptObjects
from receiver.reporting import history, records
from receiver.reporting.history import Run
from receiver.reporting.records import TargetRecord
from world.kubelet import wait_until

pytestmark = pytest.mark.cluster


def run(job: str, created: str) -> Run:
    return Run(job=job, target="shop", mode="resync", state="succeeded", result="no-op",
               commit="", more_commits=0, created=created, message="nothing drifted")  # fmt: skip


def test_runs_are_kept_from_the_version_last_seen_or_read_again(
    kube: client.ApiClient, namespace: str
) -> None:
    first = history.add(kube, namespace, run("j1", "2026-12-01T10:00:00Z"))  # no Lease yet
    assert first is not None
    # From the version just written: one write.
    second = history.add(kube, namespace, run("j2", "2026-12-01T10:01:00Z"), known=first)
    assert second is not None
    # From an out-of-date version: the write conflicts, the Lease is read and written again.
    third = history.add(kube, namespace, run("j3", "2026-12-01T10:02:00Z"), known=first)
    assert third is not None
    assert [r.job for r in history.load(kube, namespace)] == ["j3", "j2", "j1"]
    # Already kept: nothing written.
    assert history.add(kube, namespace, run("j3", "2026-12-01T10:02:00Z"), known=third) is None


def test_the_watch_keeps_the_records_and_runs_each_replica_shows(
    kube: client.ApiClient, namespace: str
) -> None:
    stop = threading.Event()
    kept = KeptObjects.of(kube, namespace, threading.Event(), stop)
    kept.start()
    try:
        wait_until(lambda: kept.leases.items() is not None, timeout=30)
        record = TargetRecord(target="shop", result="success", finished="2026-12-01T10:00:00Z",
                              job="hooksync-shop-apply-6113728", mode="apply")  # fmt: skip
        assert records.save(kube, namespace, record) is not None
        history.add(kube, namespace, run("j1", "2026-12-01T10:00:00Z"))

        def shown() -> bool:
            leases = kept.leases.items() or []
            return (records.from_leases(leases).get("shop") == record
                    and [r.job for r in history.from_leases(leases)] == ["j1"])  # fmt: skip

        wait_until(shown, timeout=30)
        lease = kept.leases.get(names.record_name("shop"))
        assert lease is not None and "managedFields" not in lease["metadata"]
        # A newer record written from the kept version lands, and the watch shows it.
        newer = TargetRecord(target="shop", result="failure", finished="2026-12-01T11:00:00Z",
                             job="hooksync-shop-apply-ec26c3e", mode="apply")  # fmt: skip
        assert records.save(kube, namespace, newer, known=lease) is not None
        wait_until(
            lambda: records.from_leases(kept.leases.items() or [])["shop"].result == "failure",
            timeout=30,
        )
    finally:
        stop.set()
