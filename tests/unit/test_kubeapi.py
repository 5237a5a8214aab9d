"""The in-cluster credentials, read without the Kubernetes client's config loader, for the
receiver's official client and the Job's own (jobimage.kubeclient)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from kubernetes import client

from hooksync.kubeapi import KubeConfigError, service_account_config
from jobimage.kubeclient import connect
from world.pki import write_pki


def account(folder: Path, token: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "token").write_text(token + "\n")
    (folder / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    return folder


def test_the_pods_service_account_and_the_api_servers_address(tmp_path: Path) -> None:
    folder = account(tmp_path / "sa", "first-token")
    configuration = client.Configuration()
    env = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    service_account_config(configuration, env, folder)
    assert configuration.host == "https://10.0.0.1:443"
    assert configuration.ssl_ca_cert == str(folder / "ca.crt")
    assert configuration.get_api_key_with_prefix("authorization") == "Bearer first-token"


def test_an_ipv6_service_address_is_bracketed(tmp_path: Path) -> None:
    configuration = client.Configuration()
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"}
    service_account_config(configuration, env, account(tmp_path / "sa", "first-token"))
    assert configuration.host == "https://[fd00::1]:6443"


def test_a_rotated_token_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = account(tmp_path / "sa", "first-token")
    configuration = client.Configuration()
    env = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    monkeypatch.setattr("hooksync.kubeapi.TOKEN_REREAD_SECONDS", 0.0)
    service_account_config(configuration, env, folder)
    account(folder, "rotated-token")
    assert configuration.get_api_key_with_prefix("authorization") == "Bearer rotated-token"


@pytest.mark.parametrize(
    ("env", "make_files", "says"),
    [
        ({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, True, "KUBERNETES_SERVICE_PORT"),
        (
            {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"},
            False,
            "automountServiceAccountToken",
        ),
    ],
)
def test_missing_pieces_are_named(
    tmp_path: Path, env: dict[str, str], make_files: bool, says: str
) -> None:
    folder = account(tmp_path / "sa", "first-token") if make_files else tmp_path / "none"
    with pytest.raises(KubeConfigError, match=says):
        service_account_config(client.Configuration(), env, folder)


def test_the_job_in_a_pod_imports_neither_the_kubernetes_client_nor_urllib3() -> None:
    # A fresh interpreter, as a Job's pod starts one: what it imports is its start-up time.
    code = (
        "import sys\n"
        "import jobimage.cli\n"
        # What the run imports once the fetch has started, and the client it connects with.
        "import jobimage.converge, jobimage.kube, jobimage.kubeclient, jobimage.lease\n"
        "loaded = sorted({m.split('.')[0] for m in sys.modules} & {'kubernetes', 'urllib3'})\n"
        "assert not loaded, loaded\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env.update(KUBERNETES_SERVICE_HOST="10.0.0.1", KUBERNETES_SERVICE_PORT="443")
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_the_jobs_client_in_a_pod_takes_the_address_and_rereads_the_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = account(tmp_path / "sa", "first-token")
    ca = write_pki(tmp_path / "pki")["ca.crt"].read_text()  # a real CA: the client loads it
    (folder / "ca.crt").write_text(ca)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    monkeypatch.setattr("jobimage.kubeclient.SERVICE_ACCOUNT", folder)
    monkeypatch.setattr("hooksync.kubeapi.TOKEN_REREAD_SECONDS", 0.0)
    api = connect()
    assert (api.server, api.host, api.port) == ("https://[fd00::1]:6443", "fd00::1", 6443)
    assert api.authorization() == "Bearer first-token"
    account(folder, "rotated-token")
    (folder / "ca.crt").write_text(ca)
    assert api.authorization() == "Bearer rotated-token"


def test_the_jobs_client_names_a_ca_it_cannot_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = account(tmp_path / "sa", "first-token")  # its ca.crt holds no certificate
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.setattr("jobimage.kubeclient.SERVICE_ACCOUNT", folder)
    with pytest.raises(KubeConfigError, match=r"the service account CA .*ca\.crt"):
        connect()


def test_the_jobs_client_refuses_a_kubeconfig_proxy_it_would_not_use(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\n"
        "clusters:\n- name: c\n  cluster:\n    server: https://10.0.0.1:6443\n"
        "    proxy-url: http://proxy.example:3128\n"
        "users:\n- name: u\n  user:\n    token: t\n"
        "contexts:\n- name: x\n  context:\n    cluster: c\n    user: u\n"
        "current-context: x\n"
    )
    with pytest.raises(KubeConfigError, match="sets proxy-url, which hooksync-job does not"):
        connect(str(kubeconfig))
