"""The Job's in-cluster credentials, read without the Kubernetes client's config loader."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client

from hooksync.kubeapi import KubeConfigError, service_account_config


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
