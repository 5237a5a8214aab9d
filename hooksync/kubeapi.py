"""How both commands reach the API server: one choice of credentials, in one order.

An explicit kubeconfig file (the receiver's --kubeconfig), else the file KUBECONFIG names, else
the pod's service account when running in a cluster, else ~/.kube/config.

The service account is read here rather than by `kubernetes.config`, whose import (kubeconfig
parsing, cloud auth plugins, YAML) takes over half a second: a converge Job pays that on every
run before its first API call. Nothing from `kubernetes` is imported until a caller asks for
the official client or a kubeconfig is used, so the Job's own client (jobimage.kubeclient) can
share this rule without loading it.
"""

from __future__ import annotations

import ipaddress
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kubernetes import client

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# The kubelet rotates the projected token well before it expires; read it again this often.
TOKEN_REREAD_SECONDS = 60.0


class KubeConfigError(Exception):
    """No usable credentials for the API server; the message says which and how to fix it."""


def uses_kubeconfig(kubeconfig: str | None, env: Mapping[str, str]) -> bool:
    """Pure: whether the rule above picks a kubeconfig file (True) or the pod's service
    account (False)."""
    return bool(kubeconfig or env.get("KUBECONFIG") or not env.get("KUBERNETES_SERVICE_HOST"))


@dataclass
class ServiceAccountToken:
    """The mounted token, read again once TOKEN_REREAD_SECONDS have passed since the last read."""

    path: Path
    _value: str = field(default="", init=False, repr=False)
    _read_at: float | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def authorization(self) -> str:
        """The Authorization header's value: `Bearer <token>`."""
        with self._lock:
            now = time.monotonic()
            if self._read_at is None or now - self._read_at >= TOKEN_REREAD_SECONDS:
                token = self.path.read_text().strip()
                if not token:
                    raise KubeConfigError(f"the service account token {self.path} is empty")
                self._value, self._read_at = token, now
            return f"Bearer {self._value}"


@dataclass(frozen=True)
class ServiceAccount:
    """Where a pod reaches its API server, and as whom."""

    server: str
    ca_file: Path
    token: ServiceAccountToken


def service_account(env: Mapping[str, str], folder: Path) -> ServiceAccount:
    """The API server named by the pod's KUBERNETES_SERVICE_* variables, with the token and CA
    mounted in `folder`; KubeConfigError names what is missing."""
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
    return ServiceAccount(f"https://{host}:{port}", ca_file, ServiceAccountToken(token_file))


def kubeconfig_configuration(kubeconfig: str | None = None) -> client.Configuration:
    """The official client's Configuration from a kubeconfig file (`kubeconfig`, else
    KUBECONFIG, else ~/.kube/config), with every auth form the kubeconfig loader knows."""
    from kubernetes import client, config

    configuration = client.Configuration()
    try:
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    except config.ConfigException as exc:
        raise KubeConfigError(str(exc)) from None
    return configuration


def api_client(
    kubeconfig: str | None = None, *, pool_size: int, fail_fast: bool = False
) -> client.ApiClient:
    """An official API client by the rule above, with `pool_size` connections.

    `fail_fast` turns off urllib3's retries, so a caller that answers a webhook with 503 learns
    of an unreachable API server at once instead of after several silent retries.
    """
    from kubernetes import client

    if uses_kubeconfig(kubeconfig, os.environ):
        configuration = kubeconfig_configuration(kubeconfig)
    else:
        configuration = client.Configuration()
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
    account = service_account(env, folder)
    configuration.host = account.server
    configuration.ssl_ca_cert = str(account.ca_file)

    def refresh(settings: client.Configuration) -> None:
        settings.api_key = {"authorization": account.token.authorization()}

    refresh(configuration)
    # The client's stubs declare the hook as None only; it takes a callable at run time.
    configuration.refresh_api_key_hook = refresh  # type: ignore[assignment]
