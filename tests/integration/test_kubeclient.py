"""The Job's own API client (jobimage.kubeclient) and the converge's door on it (jobimage.kube),
against the local control plane as the target's ServiceAccount.

Fixtures (`target`, `other_namespace`, `own_control_plane`) are in conftest.py.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from hooksync.inventory import ObjectRef
from jobimage.errors import PermanentError, TransientError
from jobimage.kube import Cluster
from jobimage.kubeclient import ApiError, KubeClient, Unreachable, connect
from world.cluster import LocalCluster
from world.controlplane import ControlPlane, free_port
from world.converge import Target, service_account_token
from world.stack import POD_SECURITY_BASELINE

pytestmark = pytest.mark.cluster


@pytest.fixture
def job_api(target: Target) -> Iterator[KubeClient]:
    """The Job's client as the target's ServiceAccount, from its kubeconfig."""
    api = connect(str(target.kubeconfig))
    try:
        yield api
    finally:
        api.close()


def labelled(name: str, namespace: str, team: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": {"team": team}},
        "data": {"v": "1"},
    }


def test_apply_dry_run_list_get_and_delete_with_a_uid_precondition(
    job_api: KubeClient, target: Target, kube: client.ApiClient
) -> None:
    cluster = Cluster(job_api)
    ns = target.namespace
    ref = ObjectRef("", "v1", "ConfigMap", ns, "web")

    previewed = cluster.apply(labelled("web", ns, "a"), dry_run=True)
    assert previewed["metadata"]["name"] == "web" and previewed["data"] == {"v": "1"}
    assert cluster.get(ref) is None  # a dry run writes nothing

    created = cluster.apply(labelled("web", ns, "a"))
    cluster.apply(labelled("other", ns, "b"))
    live = cluster.get(ref)
    assert live is not None and live["metadata"]["uid"] == created["metadata"]["uid"]
    managers = {entry["manager"] for entry in live["metadata"]["managedFields"]}
    assert managers == {"hooksync"}
    listed = cluster.list("v1", "ConfigMap", ns, "team=a")
    assert [(o["kind"], o["apiVersion"], o["metadata"]["name"]) for o in listed] == [
        ("ConfigMap", "v1", "web")
    ]
    assert cluster.is_namespaced("v1", "ConfigMap") is True
    assert cluster.is_namespaced("rbac.authorization.k8s.io/v1", "ClusterRole") is False

    # Another object of the same name (a new uid) is not ours to delete.
    stale = ObjectRef("", "v1", "ConfigMap", ns, "web", uid="00000000-0000-0000-0000-000000000000")
    assert cluster.delete(stale) is False
    assert client.CoreV1Api(kube).read_namespaced_config_map("web", ns).data == {"v": "1"}
    mine = ObjectRef("", "v1", "ConfigMap", ns, "web", uid=created["metadata"]["uid"])
    assert cluster.delete(mine) is True
    assert cluster.delete(mine) is False  # already gone
    assert [o["metadata"]["name"] for o in cluster.list("v1", "ConfigMap", ns, "team")] == ["other"]


def test_a_kind_the_server_does_not_serve_is_unknown_and_applying_it_is_permanent(
    job_api: KubeClient, target: Target
) -> None:
    cluster = Cluster(job_api)
    widget = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": target.namespace},
    }
    assert cluster.is_namespaced("example.com/v1", "Widget") is None
    assert cluster.is_namespaced("v1", "NoSuchKind") is None  # a served group-version
    assert cluster.get(ObjectRef.from_object(widget)) is None
    assert cluster.list("example.com/v1", "Widget", target.namespace) == []
    assert cluster.delete(ObjectRef.from_object(widget)) is False
    with pytest.raises(
        PermanentError, match=r"the API server does not serve example\.com/v1 Widget"
    ):
        cluster.apply(widget)


def test_a_forbidden_request_is_permanent_and_names_the_role(
    job_api: KubeClient, other_namespace: str
) -> None:
    cluster = Cluster(job_api)
    with pytest.raises(PermanentError) as caught:
        cluster.apply(labelled("x", other_namespace, "a"))
    message = str(caught.value)
    assert message.startswith('applying ConfigMap/x: configmaps "x" is forbidden: ')
    assert "cannot patch resource" in message and "the target's Role must allow this" in message
    assert "\n" not in message
    with pytest.raises(PermanentError, match="Role must allow"):
        cluster.list("v1", "ConfigMap", other_namespace)


def test_in_a_pod_the_mounted_token_is_used_and_read_again_when_rotated(
    cluster: LocalCluster,
    kube: client.ApiClient,
    target: Target,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plane = cluster.control_plane
    folder = tmp_path / "serviceaccount"
    folder.mkdir()
    (folder / "token").write_text(service_account_token(kube, target.namespace, target.account))
    (folder / "ca.crt").write_text(plane.ca_file.read_text())
    host, port = plane.api_url.removeprefix("https://").rsplit(":", 1)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", host)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", port)
    monkeypatch.setattr("jobimage.kubeclient.SERVICE_ACCOUNT", folder)
    monkeypatch.setattr("hooksync.kubeapi.TOKEN_REREAD_SECONDS", 0.0)

    api = connect()
    assert api.server == plane.api_url
    labels = Cluster(api).namespace_labels(target.namespace)
    assert POD_SECURITY_BASELINE.items() <= labels.items()

    (folder / "token").write_text("not-a-token")  # rotated, here to something invalid
    with pytest.raises(ApiError) as caught:
        api.request("GET", f"/api/v1/namespaces/{target.namespace}")
    assert caught.value.status == 401
    with pytest.raises(TransientError, match="Unauthorized"):  # 401 may pass: not permanent
        Cluster(api).list("v1", "ConfigMap", target.namespace)
    api.close()


def test_an_unreachable_server_is_a_transient_one_line_error(
    cluster: LocalCluster, target: Target
) -> None:
    secret = "a-token-that-must-not-show"
    closed = KubeClient(
        f"https://127.0.0.1:{free_port()}",
        ssl.create_default_context(),
        lambda: f"Bearer {secret}",
    )
    with pytest.raises(TransientError) as caught:
        Cluster(closed).list("v1", "ConfigMap", target.namespace)
    message = str(caught.value)
    assert "API discovery failed: API server 127.0.0.1:" in message
    assert "unreachable" in message and "\n" not in message and secret not in message

    # The real API server, with a CA that does not sign its certificate.
    untrusted = KubeClient(
        cluster.control_plane.api_url, ssl.create_default_context(), lambda: f"Bearer {secret}"
    )
    with pytest.raises(Unreachable, match="TLS failed: CERTIFICATE_VERIFY_FAILED") as tls:
        untrusted.request("GET", "/api/v1")
    assert "\n" not in str(tls.value) and secret not in str(tls.value)


def test_a_server_that_never_answers_times_out_on_one_line() -> None:
    with socket.socket() as listener:  # accepts the connection (the backlog) and says nothing
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        silent = KubeClient(f"http://127.0.0.1:{port}", ssl.create_default_context(), lambda: None)
        with pytest.raises(Unreachable) as caught:
            silent.request("GET", "/api/v1", timeout=(1.0, 0.3))
    assert str(caught.value) == f"API server 127.0.0.1:{port} unreachable: no answer within 0.3s"


def test_connections_are_kept_alive_shared_by_threads_and_replaced_after_a_restart(
    own_control_plane: ControlPlane,
) -> None:
    plane = own_control_plane
    api = connect(str(plane.kubeconfig), pool_size=4)
    errors: list[BaseException] = []

    def read_many() -> None:
        try:
            for _ in range(10):
                assert api.request("GET", "/api/v1/namespaces/default")["kind"] == "Namespace"
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=read_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert 1 <= len(api._idle) <= 4  # kept alive, no more than the pool holds

    # The API server restarts: every pooled connection is dead, and the next request, sent on
    # one of them, goes out again on a new connection instead of failing.
    plane.stop_component("kube-apiserver")
    plane.start_component("kube-apiserver")
    plane.wait_ready()
    assert api.request("GET", "/api/v1/namespaces/default")["metadata"]["name"] == "default"
    assert len(api._idle) == 1  # the dead ones were dropped, the new one kept
    api.close()
