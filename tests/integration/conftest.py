"""Fixtures the integration tests share: a control plane a test may stop, a second namespace,
and the converge world (a token-protected Git server, a target, the rollout stand-in)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from world.cluster import LocalCluster, temporary_namespace
from world.controlplane import ControlPlane
from world.converge import GIT_TOKEN, Target, grant_target_role, service_account_token
from world.gitserver import GitServer
from world.rollouts import RolloutStandIn


@pytest.fixture
def own_control_plane(cluster: LocalCluster) -> Iterator[ControlPlane]:
    """A second, independent control plane whose API server a test may stop and start at
    will (never the session's)."""
    plane = ControlPlane(bin_dir=cluster.control_plane.bin_dir)
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture
def other_namespace(kube: client.ApiClient) -> Iterator[str]:
    """Another fresh namespace beside `namespace`, deleted after the test."""
    with temporary_namespace(kube) as name:
        yield name


@pytest.fixture(scope="module")
def git(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    """One token-protected Git server for the module; each test makes its own repository."""
    with GitServer(tmp_path_factory.mktemp("git"), token=GIT_TOKEN) as server:
        yield server


@pytest.fixture
def target(
    cluster: LocalCluster,
    kube: client.ApiClient,
    namespace: str,
    git: GitServer,
    tmp_path: Path,
) -> Target:
    """A target converging `namespace` from a fresh repository, as its own ServiceAccount."""
    name = f"shop{uuid.uuid4().hex[:6]}"
    account = f"hooksync-{name}"
    grant_target_role(kube, namespace, account)
    kubeconfig = cluster.control_plane.write_kubeconfig(
        tmp_path / "kubeconfig", service_account_token(kube, namespace, account), user=account
    )
    assert cluster.control_plane.bin_dir is not None
    return Target(
        name=name,
        namespace=namespace,
        account=account,
        repo=git.create_repo(name),
        kubeconfig=kubeconfig,
        admin_kubeconfig=cluster.kubeconfig,
        bin_dir=cluster.control_plane.bin_dir,
    )


@pytest.fixture
def rollouts(kube: client.ApiClient, namespace: str) -> Iterator[RolloutStandIn]:
    """The deployment controller's part, for `namespace`."""
    with RolloutStandIn(kube, [namespace], interval=0.1) as stand_in:
        yield stand_in
