"""Fixtures shared by every test: the local cluster (started once per session), namespaces,
and the GitHub and GitLab stand-ins with one repository each."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import settings
from kubernetes import client, config

from world.cluster import LocalCluster, temporary_namespace
from world.gitea import gitea_folder
from world.githosts import STANDIN_TOKEN, GitHubStandIn, GitLabStandIn
from world.stack import POD_SECURITY_BASELINE

# Property tests check what is accepted, never how fast: a loaded CI machine must not fail them
# on Hypothesis's per-example deadline.
settings.register_profile("hooksync", deadline=None)
settings.load_profile("hooksync")


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build Gitea before the first test that needs it, outside every test's timeout: the first
    build on a machine takes about ten minutes, later runs find it in the cache."""
    if any(item.path.match("integration/test_gitea.py") for item in session.items):
        gitea_folder()


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    """etcd, kube-apiserver, kube-controller-manager and the process kubelet, for the session."""
    local = LocalCluster()
    local.start()
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="session")
def kube(cluster: LocalCluster) -> Iterator[client.ApiClient]:
    """An admin API client for the local cluster."""
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def namespace(kube: client.ApiClient) -> Iterator[str]:
    """A fresh namespace enforcing Pod Security baseline (as a target's must), deleted after."""
    with temporary_namespace(kube, labels=POD_SECURITY_BASELINE) as name:
        yield name


@pytest.fixture
def github_host() -> Iterator[GitHubStandIn]:
    """The GitHub stand-in with the repository acme/shop; it accepts STANDIN_TOKEN."""
    with GitHubStandIn(STANDIN_TOKEN) as host:
        host.add_repo("acme/shop")
        yield host


@pytest.fixture
def gitlab_host() -> Iterator[GitLabStandIn]:
    """The GitLab stand-in with the project acme/platform/shop; it accepts STANDIN_TOKEN."""
    with GitLabStandIn(STANDIN_TOKEN) as host:
        host.add_repo("acme/platform/shop")
        yield host
