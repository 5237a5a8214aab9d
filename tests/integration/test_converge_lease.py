"""Converge and the Lease: a live holder makes a converge give up (exit 3), an expired one is taken
over, and two converges at once still end at the head.

Each test runs `hooksync-job` the way a Job does (`world.converge.Target`: a subprocess as
the target's ServiceAccount, fetching over token-protected HTTP; or a real Job under the
process kubelet) and asserts what it leaves behind: objects, resourceVersions, the
inventory, the summary and the exit code. Fixtures (`target`, `git`, `rollouts`,
`other_namespace`) are in conftest.py.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from hooksync.jobspec import EXIT_LEASE_HELD, EXIT_OK, EXIT_TRANSIENT, JobSpec
from hooksync.names import lease_name
from jobimage.converge import converge
from jobimage.fetch import GitCredentials
from jobimage.kube import Cluster
from jobimage.kubeclient import KubeClient, connect
from jobimage.lease import RENEW_DEADLINE_SECONDS, LeaseHeld, LeaseLost, TargetLease
from world.converge import (
    GIT_TOKEN,
    PATH_IN_REPO,
    Target,
    configmap_data,
    finished,
    inventory_of,
    live_objects,
)
from world.manifests import configmap

pytestmark = pytest.mark.cluster


def put_lease(
    kube: client.ApiClient, target: Target, holder: str, renewed_ago: float, duration: int = 30
) -> None:
    renewed = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=renewed_ago)
    body = client.V1Lease(
        metadata=client.V1ObjectMeta(name=lease_name(target.name)),
        spec=client.V1LeaseSpec(
            holder_identity=holder,
            lease_duration_seconds=duration,
            acquire_time=renewed,
            renew_time=renewed,
        ),
    )
    client.CoordinationV1Api(kube).create_namespaced_lease(target.namespace, body)


def read_lease(kube: client.ApiClient, target: Target) -> Any:
    return client.CoordinationV1Api(kube).read_namespaced_lease(
        lease_name(target.name), target.namespace
    )


def test_lease_held_by_a_live_holder_exits_3_and_applies_nothing(
    kube: client.ApiClient, target: Target
) -> None:
    target.repo.commit({f"{PATH_IN_REPO}/config.yaml": configmap("settings", {"v": "1"})}, "1")
    put_lease(kube, target, "hooksync-shop-apply-abc1234-x7k2p", renewed_ago=0)
    # A converge waits a little for a running one before it gives up; keep that wait short.
    target.env["HOOKSYNC_LEASE_WAIT_SECONDS"] = "2"
    target.timeout = 5

    run = target.run()
    assert run.code == EXIT_LEASE_HELD, run.explain()
    assert run.result == "lease-held"
    assert "hooksync-shop-apply-abc1234-x7k2p" in run.summary["message"]
    assert live_objects(kube, target.namespace).names() == set()
    assert read_lease(kube, target).spec.holder_identity == "hooksync-shop-apply-abc1234-x7k2p"


def test_a_lease_nobody_renews_is_taken_over_after_its_duration(
    kube: client.ApiClient, target: Target
) -> None:
    sha = target.repo.commit(
        {f"{PATH_IN_REPO}/config.yaml": configmap("settings", {"v": "1"})}, "1"
    )
    # The dead holder's renewTime is an hour old, but only the Job's own clock counts: it takes
    # over once it has watched the Lease stay unchanged for the Lease's duration (3 s here).
    put_lease(kube, target, "a-pod-that-died", renewed_ago=3600, duration=3)

    started = time.monotonic()
    run = target.run()
    assert run.code == EXIT_OK, run.explain()
    assert run.result == "success" and run.summary["sha"] == sha
    assert configmap_data(kube, target.namespace, "settings") == {"v": "1"}
    assert time.monotonic() - started >= 3
    lease = read_lease(kube, target)
    assert lease.spec.holder_identity is None  # released at the end
    assert lease.spec.lease_transitions == 1


# Lease settings short enough for a test: 3 s Leases, renewed every half second.
QUICK_LEASE: dict[str, Any] = {
    "duration_seconds": 3,
    "renew_every_seconds": 0.5,
    "renew_deadline_seconds": 2,
}


def clock_ahead(seconds: float) -> Callable[[], datetime.datetime]:
    """A wall clock that runs `seconds` ahead of this machine's."""
    return lambda: datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds)


class StallingClock:
    """A monotonic clock for one holder that can jump, as it does for a process that was
    frozen (SIGSTOP, a VM paused, a long GC) and wakes up past its renew deadline."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def stall(self, seconds: float) -> None:
        self.offset += seconds


def target_api(target: Target) -> KubeClient:
    """The Job's own client, as the target's ServiceAccount."""
    return connect(str(target.kubeconfig))


def converge_in_process(target: Target, workdir: Path, lease: TargetLease, cluster: Cluster) -> Any:
    spec = JobSpec(
        mode="apply",
        target=target.name,
        clone_url=target.repo.url,
        branch=target.branch,
        path=target.path,
        namespace=target.namespace,
        timeout_seconds=target.timeout,
    )
    return converge(spec, cluster, workdir, GitCredentials(token=GIT_TOKEN), lease=lease)


def test_a_holder_whose_clock_runs_45s_ahead_does_not_take_a_lease_still_renewed(
    kube: client.ApiClient, target: Target
) -> None:
    api = target_api(target)
    on_time = TargetLease(api, target.name, target.namespace, "holder-on-time", **QUICK_LEASE)
    ahead = TargetLease(
        api,
        target.name,
        target.namespace,
        "holder-45s-ahead",
        wall_clock=clock_ahead(45),
        **QUICK_LEASE,
    )
    on_time.acquire()
    try:
        # By wall clocks the Lease looks 42 s overdue to `ahead` at every look; for three Lease
        # durations it keeps looking, and never takes it while `on_time` renews.
        tries = 0
        until = time.monotonic() + 3 * QUICK_LEASE["duration_seconds"]
        while time.monotonic() < until:
            with pytest.raises(LeaseHeld, match="held by holder-on-time"):
                ahead.acquire()
            tries += 1
            time.sleep(0.2)
        assert tries > 10
        assert read_lease(kube, target).spec.holder_identity == "holder-on-time"
        on_time.ensure_held(before="apply")
        assert not on_time.lost.is_set()
    finally:
        on_time.release()
        api.close()


def test_a_holder_that_lost_its_lease_before_apply_writes_nothing(
    kube: client.ApiClient, target: Target, tmp_path: Path
) -> None:
    target.repo.commit({f"{PATH_IN_REPO}/config.yaml": configmap("settings", {"v": "1"})}, "1")
    api = target_api(target)
    clock = StallingClock()
    # Renewals far apart, so only the stall decides: the holder is frozen past its deadline.
    stalled = TargetLease(
        api, target.name, target.namespace, "stalled-holder", clock=clock, renew_every_seconds=3600
    )
    stalled.acquire()
    try:
        clock.stall(RENEW_DEADLINE_SECONDS)
        with pytest.raises(LeaseLost, match="lost before apply") as caught:
            converge_in_process(target, tmp_path, stalled, Cluster(api))
        assert caught.value.exit_code == EXIT_TRANSIENT
        assert live_objects(kube, target.namespace).names() == set()
        assert stalled.lost.is_set()
    finally:
        stalled.release()
        api.close()


def test_a_holder_that_loses_its_lease_during_apply_prunes_nothing(
    kube: client.ApiClient, target: Target, tmp_path: Path
) -> None:
    first = target.repo.commit(
        {
            f"{PATH_IN_REPO}/config.yaml": configmap("settings", {"v": "1"}),
            f"{PATH_IN_REPO}/extra.yaml": configmap("extra", {"v": "1"}),
        },
        "two ConfigMaps",
    )
    target.converge()
    target.repo.commit(
        {
            f"{PATH_IN_REPO}/config.yaml": configmap("settings", {"v": "2"}),
            f"{PATH_IN_REPO}/extra.yaml": None,
        },
        "change one, drop the other",
    )
    api = target_api(target)
    clock = StallingClock()
    stalled = TargetLease(
        api, target.name, target.namespace, "stalled-holder", clock=clock, renew_every_seconds=3600
    )

    class FreezesDuringApply(Cluster):
        """The real cluster; the holder's process freezes past its deadline while applying."""

        def apply(self, obj: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
            applied = super().apply(obj, dry_run=dry_run)
            clock.stall(RENEW_DEADLINE_SECONDS)
            return applied

    stalled.acquire()
    try:
        with pytest.raises(LeaseLost, match="lost before prune"):
            converge_in_process(target, tmp_path, stalled, FreezesDuringApply(api))
        assert configmap_data(kube, target.namespace, "settings") == {"v": "2"}  # applied
        assert configmap_data(kube, target.namespace, "extra") == {"v": "1"}  # not pruned
        assert inventory_of(kube, target)[0] == first  # and not recorded as converged
    finally:
        stalled.release()
        api.close()


def test_two_converges_at_once_end_at_the_head(kube: client.ApiClient, target: Target) -> None:
    names = [f"cm-{i:02d}" for i in range(12)]

    def files(version: str) -> dict[str, str | bytes | None]:
        return {f"{PATH_IN_REPO}/{n}.yaml": configmap(n, {"version": version}) for n in names}

    target.repo.commit(files("v1"), "v1")
    target.converge()
    target.repo.commit(files("v2"), "v2")

    # Two converges start together, and a push lands between their starts, so they may well
    # see different heads. Whichever order they run in, the namespace must end at the head.
    first = target.start()
    head = target.repo.commit(files("v3"), "v3")
    second = target.start()
    runs = [finished(first), finished(second)]
    codes = sorted(run.code for run in runs)
    assert codes in ([EXIT_OK, EXIT_OK], [EXIT_OK, EXIT_LEASE_HELD]), [r.explain() for r in runs]
    if EXIT_LEASE_HELD in codes:
        assert {run.result for run in runs} == {"success", "lease-held"}
        target.converge()  # what the Job's retry does
    else:
        assert second.returncode == EXIT_OK and runs[1].summary["sha"] == head

    versions = {configmap_data(kube, target.namespace, n)["version"] for n in names}
    assert versions == {"v3"}
    assert inventory_of(kube, target)[0] == head
