"""Webhook deliveries as GitHub and GitLab send them, and receivers configured to take them.

A `Delivery` holds the exact path, headers and body of one request, so a test can send it,
change one header, or replay it byte for byte (same delivery id, same signature) as a Git
host's "Redeliver" does, and a benchmark can build deliveries first and time only the sending.

The webhook secrets are made once per process; `RECEIVER_ENV` gives them to a receiver.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import httpx

Provider = Literal["github", "gitlab"]

GITHUB_PATH = "/hooks/github"
GITLAB_PATH = "/hooks/gitlab"
ZERO_SHA = "0" * 40


def new_signing_key() -> str:
    """A GitLab signing token (`whsec_` and 32 random bytes, base64), as GitLab makes them."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


GITHUB_SECRET = f"gh-{secrets.token_hex(16)}"
GITLAB_TOKEN = f"gl-{secrets.token_hex(16)}"
GITLAB_SIGNING_KEY = new_signing_key()

# The environment that makes a receiver accept every delivery built here with the defaults.
RECEIVER_ENV = {
    "HOOKSYNC_GITHUB_WEBHOOK_SECRET": GITHUB_SECRET,
    "HOOKSYNC_GITLAB_WEBHOOK_TOKEN": GITLAB_TOKEN,
    "HOOKSYNC_GITLAB_SIGNING_TOKEN": GITLAB_SIGNING_KEY,
}

# Nothing listens on the discard port: no status report or clone can leave the machine.
NOWHERE = "http://127.0.0.1:9"
NOWHERE_CLONE_URL = f"{NOWHERE}/x.git"
# Jobs of a target whose ServiceAccount does not exist are created but never get a pod.
ABSENT_SERVICE_ACCOUNT = "hooksync-test-absent"


def random_sha() -> str:
    return secrets.token_hex(20)


# --- signatures -----------------------------------------------------------------------------


def github_signature(body: bytes, secret: str = GITHUB_SECRET) -> str:
    """The X-Hub-Signature-256 value: HMAC-SHA256 of the raw body, hex, `sha256=` first."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def github_legacy_signature(body: bytes, secret: str = GITHUB_SECRET) -> str:
    """The X-Hub-Signature value GitHub still sends beside the SHA-256 one: HMAC-SHA1, hex."""
    return "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def standard_webhook_signature(
    message_id: str, timestamp: int, body: bytes, key: str = GITLAB_SIGNING_KEY
) -> str:
    """The webhook-signature value of the Standard Webhooks scheme GitLab signs with:
    HMAC-SHA256 of `id.timestamp.body` under the base64 key after `whsec_`, base64, `v1,`."""
    secret = base64.b64decode(key.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(secret, signed, hashlib.sha256).digest()).decode()


# --- payloads: the parts hooksync reads -----------------------------------------------------


def github_push_payload(
    repo: str, sha: str, *, ref: str = "refs/heads/main", before: str | None = None
) -> dict[str, Any]:
    """A GitHub push of `sha` to `ref`; without `before`, the push creates the branch."""
    return {
        "ref": ref,
        "before": before or ZERO_SHA,
        "after": sha,
        "created": before is None,
        "deleted": False,
        "repository": {"full_name": repo, "name": repo.rsplit("/", 1)[-1]},
        "commits": [{"id": sha, "message": "change"}],
        "head_commit": {"id": sha},
    }


def github_pull_request_payload(
    repo: str,
    head_sha: str,
    *,
    number: int = 1,
    action: str = "synchronize",
    head_branch: str = "feature",
    base_branch: str = "main",
    base_sha: str = ZERO_SHA,
) -> dict[str, Any]:
    """An open GitHub pull request from `head_branch` at `head_sha` into `base_branch`."""
    repository = {"full_name": repo, "id": 1}
    return {
        "action": action,
        "number": number,
        "pull_request": {
            "number": number,
            "state": "open",
            "head": {"sha": head_sha, "ref": head_branch, "repo": repository},
            "base": {"sha": base_sha, "ref": base_branch, "repo": repository},
        },
        "repository": repository,
    }


def github_ping_payload(repo: str, zen: str = "Keep it logically awesome.") -> dict[str, Any]:
    """What GitHub sends once when a webhook is added."""
    return {"zen": zen, "hook_id": 1, "repository": {"full_name": repo, "id": 1}}


def gitlab_push_payload(
    repo: str, sha: str, *, ref: str = "refs/heads/main", before: str | None = None
) -> dict[str, Any]:
    """A GitLab push of `sha` to `ref` in the project `repo` (group/name)."""
    return {
        "object_kind": "push",
        "ref": ref,
        "before": before or ZERO_SHA,
        "after": sha,
        "checkout_sha": sha,
        "project": {"path_with_namespace": repo, "id": 1},
        "commits": [{"id": sha}],
    }


def gitlab_merge_request_payload(
    repo: str,
    last_commit: str,
    *,
    iid: int = 1,
    action: str = "open",
    target_branch: str = "main",
) -> dict[str, Any]:
    """An open GitLab merge request into `target_branch` whose head is `last_commit`."""
    return {
        "object_kind": "merge_request",
        "project": {"path_with_namespace": repo, "id": 1},
        "object_attributes": {
            "iid": iid,
            "action": action,
            "target_branch": target_branch,
            "source_project_id": 1,
            "target_project_id": 1,
            "last_commit": {"id": last_commit},
        },
    }


def as_body(document: Any) -> bytes:
    return json.dumps(document).encode()


# --- deliveries -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """One HTTP request as a Git host sends it."""

    path: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    delivery_id: str = ""
    sha: str = ""  # the commit it announces, when the builder knows it
    chunked: bool = False  # no Content-Length: the receiver must count as it reads


def chunked(delivery: Delivery) -> Delivery:
    return replace(delivery, chunked=True)


def github_delivery(
    event: str,
    body: bytes,
    *,
    secret: str | None = GITHUB_SECRET,
    content_type: str = "application/json",
    delivery_id: str | None = None,
    signed_body: bytes | None = None,
    sha: str = "",
) -> Delivery:
    """A GitHub delivery; `signed_body` is what the signature covers (default: `body`), and
    no `secret` means no signature at all."""
    delivery_id = delivery_id or str(uuid.uuid4())
    # Every header GitHub documents for a delivery, as real senders (Gitea too) send them.
    headers = {
        "Content-Type": content_type,
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery_id,
        "X-GitHub-Hook-ID": "1",
        "X-GitHub-Hook-Installation-Target-Type": "repository",
        "X-GitHub-Hook-Installation-Target-ID": "1",
        "User-Agent": "GitHub-Hookshot/world",
    }
    if secret is not None:
        signed = signed_body or body
        headers["X-Hub-Signature"] = github_legacy_signature(signed, secret)
        headers["X-Hub-Signature-256"] = github_signature(signed, secret)
    return Delivery(GITHUB_PATH, body, headers, delivery_id, sha)


def gitlab_token_delivery(
    event: str,
    body: bytes,
    *,
    token: str | None = GITLAB_TOKEN,
    content_type: str = "application/json",
    delivery_id: str | None = None,
    sha: str = "",
) -> Delivery:
    """A GitLab delivery authenticated by X-Gitlab-Token (none without `token`)."""
    delivery_id = delivery_id or str(uuid.uuid4())
    headers = {
        "Content-Type": content_type,
        "X-Gitlab-Event": event,
        "X-Gitlab-Event-UUID": delivery_id,
        "User-Agent": "GitLab/world",
    }
    if token is not None:
        headers["X-Gitlab-Token"] = token
    return Delivery(GITLAB_PATH, body, headers, delivery_id, sha)


def gitlab_signed_delivery(
    event: str,
    body: bytes,
    *,
    key: str = GITLAB_SIGNING_KEY,
    delivery_id: str | None = None,
    timestamp: int | None = None,
    signed_body: bytes | None = None,
    content_type: str = "application/json",
    sha: str = "",
) -> Delivery:
    """A GitLab delivery signed the Standard Webhooks way (webhook-id/-timestamp/-signature)."""
    delivery_id = delivery_id or str(uuid.uuid4())
    timestamp = int(time.time()) if timestamp is None else timestamp
    signature = standard_webhook_signature(delivery_id, timestamp, signed_body or body, key)
    headers = {
        "Content-Type": content_type,
        "X-Gitlab-Event": event,
        "webhook-id": delivery_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
        "User-Agent": "GitLab/world",
    }
    return Delivery(GITLAB_PATH, body, headers, delivery_id, sha)


def github_push(
    repo: str,
    sha: str,
    *,
    branch: str = "main",
    before: str | None = None,
    secret: str = GITHUB_SECRET,
    delivery_id: str | None = None,
) -> Delivery:
    """A signed GitHub push of `sha` on `branch`."""
    payload = github_push_payload(repo, sha, ref=f"refs/heads/{branch}", before=before)
    return github_delivery(
        "push", as_body(payload), secret=secret, delivery_id=delivery_id, sha=sha
    )


def github_pull_request(
    repo: str,
    head_sha: str,
    *,
    number: int = 1,
    head_branch: str = "feature",
    base_branch: str = "main",
    secret: str = GITHUB_SECRET,
) -> Delivery:
    """A signed GitHub pull_request event (synchronize) for `head_sha`."""
    payload = github_pull_request_payload(
        repo, head_sha, number=number, head_branch=head_branch, base_branch=base_branch
    )
    return github_delivery("pull_request", as_body(payload), secret=secret, sha=head_sha)


def github_ping(repo: str, *, secret: str = GITHUB_SECRET) -> Delivery:
    """A signed GitHub ping."""
    return github_delivery("ping", as_body(github_ping_payload(repo)), secret=secret)


def gitlab_push(
    repo: str,
    sha: str,
    *,
    branch: str = "main",
    before: str | None = None,
    token: str = GITLAB_TOKEN,
) -> Delivery:
    """A GitLab Push Hook of `sha` on `branch`, with the secret token."""
    payload = gitlab_push_payload(repo, sha, ref=f"refs/heads/{branch}", before=before)
    return gitlab_token_delivery("Push Hook", as_body(payload), token=token, sha=sha)


def gitlab_merge_request(
    repo: str,
    last_commit: str,
    *,
    iid: int = 1,
    target_branch: str = "main",
    token: str = GITLAB_TOKEN,
) -> Delivery:
    """A GitLab Merge Request Hook for `last_commit`, with the secret token."""
    payload = gitlab_merge_request_payload(repo, last_commit, iid=iid, target_branch=target_branch)
    return gitlab_token_delivery(
        "Merge Request Hook", as_body(payload), token=token, sha=last_commit
    )


def send(base_url: str, delivery: Delivery, timeout: float = 30.0) -> httpx.Response:
    """POST `delivery` to the receiver at `base_url` (in 16 KiB chunks if it is chunked)."""
    content: bytes | Iterator[bytes] = delivery.body
    if delivery.chunked:
        body = delivery.body
        content = (body[i : i + 16384] for i in range(0, len(body), 16384))
    return httpx.post(
        f"{base_url}{delivery.path}", content=content, headers=delivery.headers, timeout=timeout
    )


# --- many deliveries, cheaply ---------------------------------------------------------------


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
    """Sends deliveries over one keep-alive HTTP/1.1 connection per thread (http.client), so
    a benchmark times the receiver rather than connection set-up."""

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

    def send(self, delivery: Delivery) -> Answer:
        """POST the delivery; one reconnect if the kept-alive connection was closed."""
        for attempt in (1, 2):
            connection = self._connection()
            started = time.perf_counter()
            try:
                connection.request(
                    "POST", delivery.path, body=delivery.body, headers=delivery.headers
                )
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


# --- receiver configurations ----------------------------------------------------------------


def target_config(
    name: str,
    provider: Provider,
    repo: str,
    *,
    branch: str = "main",
    namespace: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A target whose Jobs never run (absent ServiceAccount) and could clone nothing."""
    return {
        "name": name,
        "provider": provider,
        "repo": repo,
        "cloneURL": NOWHERE_CLONE_URL,
        "branch": branch,
        "path": "deploy",
        "namespace": namespace or f"app-{name}",
        "serviceAccount": ABSENT_SERVICE_ACCOUNT,
        **extra,
    }


def receiver_config(
    namespace: str, targets: list[dict[str, Any]], **settings: Any
) -> dict[str, Any]:
    """A receiver configuration whose Jobs go to `namespace` and whose status reports and
    links point nowhere; `settings` adds or overrides top-level fields (`maxBodyBytes`...)."""
    return {
        "namespace": namespace,
        "jobImage": "hooksync-job:test",
        "publicURL": NOWHERE,
        "github": {"apiURL": NOWHERE},
        "gitlab": {"apiURL": NOWHERE},
        "targets": targets,
        **settings,
    }
