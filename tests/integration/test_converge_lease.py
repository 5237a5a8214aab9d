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
from typing import Any

import pytest
from kubernetes import client

from hooksync.jobspec import EXIT_LEASE_HELD, EXIT_OK
from hooksync.names import lease_name
from world.converge import (
    PATH_IN_REPO,
    Target,
    configmap_data,
    finished,
    inventory_of,
    live_objects,
)
from world.manifests import configmap

pytestmark = pytest.mark.cluster


def put_lease(kube: client.ApiClient, target: Target, holder: str, renewed_ago: float) -> None:
    renewed = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=renewed_ago)
    body = client.V1Lease(
        metadata=client.V1ObjectMeta(name=lease_name(target.name)),
        spec=client.V1LeaseSpec(
            holder_identity=holder,
            lease_duration_seconds=30,
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


def test_expired_lease_is_taken_over(kube: client.ApiClient, target: Target) -> None:
    sha = target.repo.commit(
        {f"{PATH_IN_REPO}/config.yaml": configmap("settings", {"v": "1"})}, "1"
    )
    put_lease(kube, target, "a-pod-that-died", renewed_ago=3600)

    run = target.run()
    assert run.code == EXIT_OK, run.explain()
    assert run.result == "success" and run.summary["sha"] == sha
    assert configmap_data(kube, target.namespace, "settings") == {"v": "1"}
    lease = read_lease(kube, target)
    assert lease.spec.holder_identity is None  # released at the end
    assert lease.spec.lease_transitions == 1


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
