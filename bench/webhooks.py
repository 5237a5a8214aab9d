"""Signed GitHub push deliveries as the Git host sends them, built once and sent cheaply.

A `Delivery` holds the exact headers and body, so a benchmark can time only the request, and
can replay a delivery byte for byte (same delivery id, same signature) as GitHub's "Redeliver"
does.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

PATH = "/hooks/github"


def random_sha() -> str:
    return secrets.token_hex(20)


def push_payload(repo: str, sha: str, branch: str = "main", before: str | None = None) -> bytes:
    """The parts of GitHub's push payload that hooksync reads."""
    document: dict[str, Any] = {
        "ref": f"refs/heads/{branch}",
        "before": before or "0" * 40,
        "after": sha,
        "created": before is None,
        "deleted": False,
        "forced": False,
        "repository": {"full_name": repo, "name": repo.rsplit("/", 1)[-1]},
        "pusher": {"name": "bench"},
        "commits": [{"id": sha, "message": "change"}],
        "head_commit": {"id": sha, "message": "change"},
    }
    return json.dumps(document).encode()


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Delivery:
    body: bytes
    headers: dict[str, str]
    sha: str = ""
    delivery_id: str = ""
    kind: str = "valid"


def push(
    secret: str, repo: str, sha: str, branch: str = "main", delivery_id: str | None = None
) -> Delivery:
    """A push of `sha` on `branch`, signed with `secret`."""
    body = push_payload(repo, sha, branch)
    delivery_id = delivery_id or str(uuid.uuid4())
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery_id,
        "X-Hub-Signature-256": signature(secret, body),
        "User-Agent": "GitHub-Hookshot/bench",
    }
    return Delivery(body, headers, sha, delivery_id)


@dataclass
class Answer:
    status: int
    body: bytes
    seconds: float

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass
class Sender:
    """Sends deliveries over one keep-alive HTTP/1.1 connection per thread (http.client)."""

    host: str
    port: int
    timeout: float = 30.0
    _local: threading.local = field(default_factory=threading.local)
    _all: list[http.client.HTTPConnection] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self._local.connection = connection
            with self._lock:
                self._all.append(connection)
        return connection

    def send(self, delivery: Delivery, path: str = PATH) -> Answer:
        """POST the delivery; one reconnect if the kept-alive connection was closed."""
        for attempt in (1, 2):
            connection = self._connection()
            started = time.perf_counter()
            try:
                connection.request("POST", path, body=delivery.body, headers=delivery.headers)
                response = connection.getresponse()
                data = response.read()
                elapsed = time.perf_counter() - started
                if response.will_close:
                    connection.close()
                return Answer(response.status, data, elapsed)
            except (http.client.HTTPException, OSError):
                connection.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            for connection in self._all:
                connection.close()
            self._all.clear()
