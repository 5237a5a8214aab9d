"""How both commands reach the API server: one choice of credentials, in one order.

An explicit kubeconfig file (the receiver's --kubeconfig), else the file KUBECONFIG names, else
the pod's service account when running in a cluster, else ~/.kube/config.

The service account is read here rather than by `kubernetes.config`, whose import (kubeconfig
parsing, cloud auth plugins, YAML) takes over half a second: a converge Job pays that on every
run before its first API call. `kubernetes.config` is imported only when a kubeconfig is used.
"""

from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Mapping
from pathlib import Path

from kubernetes import client

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# The kubelet rotates the projected token well before it expires; read it again this often.
TOKEN_REREAD_SECONDS = 60.0


class KubeConfigError(Exception):
    """No usable credentials for the API server; the message says which and how to fix it."""


def api_client(
    kubeconfig: str | None = None, *, pool_size: int, fail_fast: bool = False
) -> client.ApiClient:
    """An API client by the rule above, with `pool_size` connections.

    `fail_fast` turns off urllib3's retries, so a caller that answers a webhook with 503 learns
    of an unreachable API server at once instead of after several silent retries.
    """
    configuration = client.Configuration()
    in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    if kubeconfig or os.environ.get("KUBECONFIG") or not in_cluster:
        from kubernetes import config

        try:
            config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        except config.ConfigException as exc:
            raise KubeConfigError(str(exc)) from None
    else:
        service_account_config(configuration, os.environ, SERVICE_ACCOUNT)
    if fail_fast:
        configuration.retries = False
    configuration.connection_pool_maxsize = pool_size
    return client.ApiClient(configuration)


def service_account_config(
    configuration: client.Configuration, env: Mapping[str, str], folder: Path
) -> None:
    """Point `configuration` at the API server named by the pod's KUBERNETES_SERVICE_* variables,
    with the mounted service account token (re-read every minute) and CA."""
    host = env.get("KUBERNETES_SERVICE_HOST", "")
    port = env.get("KUBERNETES_SERVICE_PORT", "")
    token_file, ca_file = folder / "token", folder / "ca.crt"
    if not host or not port:
        raise KubeConfigError(
            "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must both be set in a pod"
        )
    if not token_file.is_file() or not ca_file.is_file():
        raise KubeConfigError(
            f"no service account token and CA in {folder}: set automountServiceAccountToken"
        )
    try:
        ipaddress.IPv6Address(host)
        host = f"[{host}]"
    except ValueError:
        pass
    configuration.host = f"https://{host}:{port}"
    configuration.ssl_ca_cert = str(ca_file)
    read_at = 0.0

    def refresh(settings: client.Configuration) -> None:
        nonlocal read_at
        if time.monotonic() - read_at < TOKEN_REREAD_SECONDS and read_at:
            return
        token = token_file.read_text().strip()
        if not token:
            raise KubeConfigError(f"the service account token {token_file} is empty")
        settings.api_key = {"authorization": f"Bearer {token}"}
        read_at = time.monotonic()

    refresh(configuration)
    # The client's stubs declare the hook as None only; it takes a callable at run time.
    configuration.refresh_api_key_hook = refresh  # type: ignore[assignment]
