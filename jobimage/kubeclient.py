"""The Job's HTTP client for the API server, on the standard library alone.

The official client's import (urllib3, every generated model, the dynamic client's discovery)
took most of a converge Job's start before its first API call. The Job needs only a handful of
JSON requests on plain dicts, so it speaks them itself: one keep-alive HTTPS connection per
concurrent caller, taken from a small pool, with the credentials chosen by the one rule both
commands follow (hooksync.kubeapi). In a pod nothing from `kubernetes` is imported; with a
kubeconfig (a Job run as a local process) its loader fills in the credentials, so every auth
form a kubeconfig can hold still works.
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import threading
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

from hooksync.kubeapi import (
    SERVICE_ACCOUNT,
    KubeConfigError,
    kubeconfig_configuration,
    service_account,
    uses_kubeconfig,
)
from hooksync.leases import Timeout

CONNECT_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 30.0
# Idle connections kept for reuse: enough for the converge's apply workers and the Lease renewer.
POOL_SIZE = 16


class ApiError(Exception):
    """The API server answered with an error status; `message` is its Status's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message


class Unreachable(Exception):
    """No answer from the API server (refused, reset, timed out, TLS failed); one line."""


class KubeClient:
    """JSON requests to one API server, safe to use from several threads at once.

    `authorization` gives the Authorization header's value for each request (None: send none),
    so a rotated token is picked up without a new client.
    """

    def __init__(
        self,
        server: str,
        context: ssl.SSLContext,
        authorization: Callable[[], str | None],
        *,
        pool_size: int = POOL_SIZE,
    ) -> None:
        url = urlsplit(server)
        if url.scheme not in ("https", "http") or not url.hostname:
            raise KubeConfigError(f"the API server address {server!r} is not an https:// URL")
        self.server = server
        self.host = url.hostname
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.secure = url.scheme == "https"  # plain HTTP only for a local proxy's address
        self.base_path = url.path.rstrip("/")
        self.context = context
        self.authorization = authorization
        self.pool_size = pool_size
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | None] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: Timeout = (CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS),
    ) -> Any:
        """Send one request and return its decoded JSON answer.

        Raises ApiError for an error status and Unreachable when no answer came. A pooled
        connection the server has closed meanwhile is replaced once, for any method: every
        write the Job makes is safe to repeat (apply, a compare-and-swap on resourceVersion,
        a delete with a uid precondition, a create that then conflicts).
        """
        params = {key: value for key, value in (query or {}).items() if value is not None}
        target = self.base_path + path + (f"?{urlencode(params)}" if params else "")
        headers = {"Accept": "application/json", "User-Agent": "hooksync-job"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        try:
            value = self.authorization()
        except (OSError, KubeConfigError) as exc:  # a token file being rotated, say
            reason = getattr(exc, "strerror", None) or exc
            raise Unreachable(f"cannot read the API credentials: {reason}") from None
        if value:
            headers["Authorization"] = value
        status, reason, data = self._exchange(method, target, payload, headers, timeout)
        if status >= 400:
            raise ApiError(status, _status_message(data) or reason or "no reason given")
        try:
            return json.loads(data) if data else {}
        except ValueError:
            raise Unreachable(f"the API server's answer to {method} {path} is not JSON") from None

    def _exchange(
        self,
        method: str,
        target: str,
        payload: bytes | None,
        headers: dict[str, str],
        timeout: Timeout,
    ) -> tuple[int, str, bytes]:
        for attempt in (1, 2):
            connection, reused = self._take(timeout, fresh=attempt == 2)
            try:
                if connection.sock is not None:
                    connection.sock.settimeout(timeout[1])
                connection.request(method, target, body=payload, headers=headers)
                answer = connection.getresponse()
                data = answer.read()
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                stale = isinstance(
                    exc, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
                )
                if reused and stale and attempt == 1:
                    # The server closed it while it sat idle (a restart, an idle timeout): the
                    # other idle ones are as dead, and a new connection may well get through.
                    self.close()
                    continue
                raise Unreachable(self._why(exc, f"no answer within {timeout[1]:g}s")) from None
            if answer.will_close:
                connection.close()
            else:
                self._give_back(connection)
            return answer.status, answer.reason, data
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _take(self, timeout: Timeout, fresh: bool) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._idle and not fresh:
                return self._idle.pop(), True
        connection: http.client.HTTPConnection
        if self.secure:
            connection = http.client.HTTPSConnection(
                self.host, self.port, timeout=timeout[0], context=self.context
            )
        else:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout[0])
        try:
            connection.connect()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise Unreachable(self._why(exc, f"no connection within {timeout[0]:g}s")) from None
        return connection, False

    def _give_back(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < self.pool_size:
                self._idle.append(connection)
                return
        connection.close()

    def _why(self, exc: BaseException, timed_out: str) -> str:
        """One line naming the server and what went wrong, never the request's headers."""
        where = f"API server {self.host}:{self.port} unreachable"
        if isinstance(exc, TimeoutError):
            return f"{where}: {timed_out}"
        if isinstance(exc, ssl.SSLError):
            return f"{where}: TLS failed: {exc.reason or type(exc).__name__}"
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return f"{where}: {' '.join(str(reason).split())}"

    def close(self) -> None:
        """Close the idle connections; requests still work after, on new ones."""
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


def _status_message(data: bytes) -> str:
    """The `message` of a Status answer, on one line; empty when the body has none."""
    try:
        status = json.loads(data) if data else {}
    except ValueError:
        return ""
    message = status.get("message") if isinstance(status, dict) else None
    return " ".join(str(message).split()) if message else ""


def connect(kubeconfig: str | None = None, *, pool_size: int = POOL_SIZE) -> KubeClient:
    """A client by the rule of hooksync.kubeapi: an explicit kubeconfig, KUBECONFIG, the pod's
    service account, ~/.kube/config. Raises KubeConfigError naming what is missing."""
    if not uses_kubeconfig(kubeconfig, os.environ):
        account = service_account(os.environ, SERVICE_ACCOUNT)
        try:
            context = ssl.create_default_context(cafile=str(account.ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise KubeConfigError(f"the service account CA {account.ca_file}: {exc}") from None
        return KubeClient(account.server, context, account.token.authorization, pool_size=pool_size)
    configuration = kubeconfig_configuration(kubeconfig)
    # Rather refuse than connect some other way than the kubeconfig says.
    for setting, option in (("proxy", "proxy-url"), ("tls_server_name", "tls-server-name")):
        if getattr(configuration, setting, None):
            raise KubeConfigError(
                f"the kubeconfig's cluster sets {option}, which hooksync-job does not support; "
                "use a kubeconfig that reaches the API server directly"
            )
    try:
        context = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None)
        if not configuration.verify_ssl:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if configuration.cert_file:
            context.load_cert_chain(configuration.cert_file, configuration.key_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise KubeConfigError(f"the kubeconfig's TLS files cannot be used: {exc}") from None

    def authorization() -> str | None:
        # The loader's refresh hook runs here, so expiring exec-plugin tokens are renewed.
        value: str | None = configuration.get_api_key_with_prefix(
            "BearerToken", alias="authorization"
        )
        return value

    return KubeClient(configuration.host, context, authorization, pool_size=pool_size)
