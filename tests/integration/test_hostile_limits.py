"""Hostile HTTP clients against the real receiver process, over real sockets: the limits of
the configuration's `http` section and the lingering close.

Two receivers: a strict one with deadlines of a few seconds (its API server is a closed port:
nothing it is asked here needs one), for clients that are cut off; and a patient one on the
local control plane with a small body budget, for refusals that do not depend on time and
for a verified delivery that is still dispatched (202) while 200 hostile connections are open.

Each refusal must be the documented answer with a one-line JSON reason, and must reach a
client that is still sending: a reset instead of an answer is a failure. Waits are generous
bounds for correctness only; how soon clients are cut off is measured in
bench/hostile_bench.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import json
import secrets
import select
import socket
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from world.cluster import LocalCluster
from world.kubelet import wait_until
from world.receiver import ReceiverProcess

GITHUB_SECRET = f"gh-{secrets.token_hex(16)}"
REPO = "acme/shop"
KIB = 1024
MAX_BODY_BYTES = 256 * KIB
BUDGET_BYTES = 512 * KIB
PATIENT_CONNECTIONS = 250
STRICT_CONNECTIONS = 16
STRICT_TIMEOUTS = {
    "headerTimeoutSeconds": 3,
    "bodyTimeoutSeconds": 3,
    "idleTimeoutSeconds": 2,
    "keepAliveTimeoutSeconds": 1,
}
PATIENT_TIMEOUTS = {
    "headerTimeoutSeconds": 300,
    "bodyTimeoutSeconds": 300,
    "idleTimeoutSeconds": 300,
    "keepAliveTimeoutSeconds": 300,
}
WAIT = 30.0  # a generous bound on anything the receiver should do at once or after a deadline

CLOSED_PORT_KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: 'https://127.0.0.1:9'}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
"""


def receiver_config(namespace: str, http: dict[str, Any]) -> dict[str, Any]:
    return {
        "namespace": namespace,
        "jobImage": "hooksync-job:test",
        "publicURL": "http://127.0.0.1:9",
        "github": {"apiURL": "http://127.0.0.1:9"},
        "maxBodyBytes": MAX_BODY_BYTES,
        "http": http,
        "targets": [
            {
                "name": "shop",
                "provider": "github",
                "repo": REPO,
                "branch": "main",
                "path": "deploy",
                "cloneURL": "http://127.0.0.1:9/x.git",
                "namespace": "limits-shop",
                "serviceAccount": "hooksync-test-absent",
            }
        ],
    }


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReceiverProcess]:
    """A receiver with deadlines of a few seconds and a low connection limit."""
    directory = tmp_path_factory.mktemp("strict")
    kubeconfig = directory / "kubeconfig"
    kubeconfig.write_text(CLOSED_PORT_KUBECONFIG)
    http = {**STRICT_TIMEOUTS, "maxConnections": STRICT_CONNECTIONS}
    process = ReceiverProcess(
        directory,
        receiver_config("hooksync", http),
        kubeconfig,
        env={"HOOKSYNC_GITHUB_WEBHOOK_SECRET": GITHUB_SECRET},
        args=["--no-background"],
    )
    with process:
        yield process


@dataclass
class Patient:
    process: ReceiverProcess
    namespace: str
    kube: client.ApiClient

    def jobs(self) -> list[str]:
        listed = client.BatchV1Api(self.kube).list_namespaced_job(self.namespace)
        return [str(job.metadata.name) for job in listed.items]


@pytest.fixture(scope="module")
def patient(
    cluster: LocalCluster, kube: client.ApiClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Patient]:
    """A receiver on the local control plane with long deadlines and a small body budget."""
    namespace = f"t-limits-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(kube)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    http = {
        **PATIENT_TIMEOUTS,
        "unverifiedBodyBytes": BUDGET_BYTES,
        "maxConnections": PATIENT_CONNECTIONS,
    }
    process = ReceiverProcess(
        tmp_path_factory.mktemp("patient"),
        receiver_config(namespace, http),
        cluster.kubeconfig,
        env={"HOOKSYNC_GITHUB_WEBHOOK_SECRET": GITHUB_SECRET},
        args=["--no-background"],
    )
    try:
        with process:
            yield Patient(process, namespace, kube)
    finally:
        # The Jobs carry the status finalizer, which nothing would lift now.
        batch = client.BatchV1Api(kube)
        for job in batch.list_namespaced_job(namespace).items:
            batch.patch_namespaced_job(
                job.metadata.name, namespace, {"metadata": {"finalizers": None}}
            )
        with contextlib.suppress(ApiException):
            core.delete_namespace(namespace, propagation_policy="Background")


# --- raw HTTP on real sockets -----------------------------------------------------------------


def connect(process: ReceiverProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", process.port), timeout=WAIT)


def head(process: ReceiverProcess, length: int | None, *extra: str) -> bytes:
    lines = [
        "POST /hooks/github HTTP/1.1",
        f"Host: 127.0.0.1:{process.port}",
        "Content-Type: application/json",
        "X-GitHub-Event: push",
        f"X-Hub-Signature-256: sha256={'0' * 64}",
        *extra,
    ]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def reason(self) -> str:
        document = json.loads(self.body)
        assert isinstance(document, dict) and set(document) == {"error"}, document
        reason = document["error"]
        assert isinstance(reason, str) and reason and "\n" not in reason, reason
        return reason


def read_answer(sock: socket.socket) -> Answer:
    """One HTTP answer from `sock`; ConnectionError if the receiver closed without one."""
    response = http.client.HTTPResponse(sock)
    try:
        response.begin()
    except http.client.RemoteDisconnected as exc:
        raise ConnectionError("closed without an answer") from exc
    return Answer(
        response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    )


def closed_without_answer(sock: socket.socket) -> bool:
    """Whether the receiver closes `sock` without writing anything (waits up to WAIT)."""
    sock.settimeout(WAIT)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def trickle_until_answered(sock: socket.socket, piece: bytes, every: float = 0.5) -> Answer:
    """Send `piece` every `every` seconds until an answer is waiting, then read it."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if select.select([sock], [], [], every)[0]:
            return read_answer(sock)
        sock.sendall(piece)
    raise AssertionError(f"no answer within {WAIT} s while trickling")


def signature(body: bytes) -> str:
    return "sha256=" + hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest()


def push(branch: str) -> tuple[bytes, dict[str, str]]:
    sha = secrets.token_hex(20)
    body = json.dumps(
        {
            "ref": f"refs/heads/{branch}",
            "before": "0" * 40,
            "after": sha,
            "repository": {"full_name": REPO, "name": "shop"},
            "commits": [{"id": sha, "message": "change"}],
            "head_commit": {"id": sha},
        }
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": signature(body),
    }
    return body, headers


def deliver(process: ReceiverProcess, branch: str) -> tuple[int, dict[str, Any]]:
    """A signed push on a fresh connection, as a Git host sends it: (status, JSON answer)."""
    body, headers = push(branch)
    connection = http.client.HTTPConnection("127.0.0.1", process.port, timeout=WAIT)
    try:
        connection.request("POST", "/hooks/github", body, headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def served(process: ReceiverProcess) -> bool:
    """Whether the receiver answers /healthz (connections of earlier tests may still count)."""
    try:
        with urllib.request.urlopen(f"{process.url}/healthz", timeout=WAIT) as answer:  # noqa: S310
            return bool(answer.status == 200)
    except OSError:
        return False


def assert_healthy(process: ReceiverProcess) -> None:
    assert process.process is not None and process.process.poll() is None
    wait_until(lambda: served(process), timeout=WAIT)
    log = process.log()
    assert "Traceback" not in log and "Exception in ASGI application" not in log, log[-3000:]


# --- cut off: the strict receiver -------------------------------------------------------------


def test_a_silent_connection_is_closed_without_an_answer(strict: ReceiverProcess) -> None:
    with connect(strict) as sock:
        assert closed_without_answer(sock)
    assert_healthy(strict)


def test_slowloris_headers_are_cut_off_at_the_header_deadline(strict: ReceiverProcess) -> None:
    with connect(strict) as sock:
        sock.sendall(f"POST /hooks/github HTTP/1.1\r\nHost: 127.0.0.1:{strict.port}\r\n".encode())
        # A header line every half second: never idle, but the head never ends.
        answer = trickle_until_answered(sock, b"X-Padding: a\r\n")
    assert answer.status == 408, answer
    assert answer.headers["connection"] == "close"
    assert "headers did not arrive within 3 s" in answer.reason()
    assert_healthy(strict)


def test_a_slow_body_is_cut_off_at_the_body_deadline(strict: ReceiverProcess) -> None:
    with connect(strict) as sock:
        sock.sendall(head(strict, 10_000))
        answer = trickle_until_answered(sock, b"x")
    assert answer.status == 408, answer
    assert "body did not arrive within 3 s" in answer.reason()
    assert_healthy(strict)


def test_a_body_stalled_half_way_is_cut_off_when_idle(strict: ReceiverProcess) -> None:
    with connect(strict) as sock:
        sock.sendall(head(strict, 10_000) + b"x" * 5_000)
        answer = read_answer(sock)
    assert answer.status == 408, answer
    assert "arrived for 2 s" in answer.reason()
    assert_healthy(strict)


@pytest.mark.cluster
def test_a_kept_alive_connection_is_closed_after_the_configured_keep_alive(
    strict: ReceiverProcess, patient: Patient
) -> None:
    def kept_alive(process: ReceiverProcess) -> socket.socket:
        sock = connect(process)
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{process.port}\r\n\r\n".encode())
        answer = read_answer(sock)
        assert answer.status == 200 and "connection" not in answer.headers, answer
        return sock

    with kept_alive(patient.process) as long, kept_alive(strict) as short:
        assert closed_without_answer(short)  # keepAliveTimeoutSeconds: 1
        long.setblocking(False)
        with pytest.raises(BlockingIOError):  # keepAliveTimeoutSeconds: 300, still open
            long.recv(1)


def test_connections_over_the_limit_are_answered_503_with_retry_after(
    strict: ReceiverProcess,
) -> None:
    held: list[socket.socket] = []
    try:
        for _ in range(STRICT_CONNECTIONS):
            held.append(connect(strict))
        with connect(strict) as extra:
            extra.sendall(
                f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{strict.port}\r\n\r\n".encode()
            )
            answer = read_answer(extra)
    finally:
        for sock in held:
            sock.close()
    assert answer.status == 503, answer
    assert answer.headers["retry-after"].isdigit()
    assert "http.maxConnections" in answer.reason()
    assert_healthy(strict)


# --- refused while still sending: the patient receiver ----------------------------------------


@pytest.mark.cluster
def test_a_413_reaches_urllib_while_it_is_still_sending(patient: Patient) -> None:
    url = f"{patient.process.url}/hooks/github"
    body = b"x" * (4 * MAX_BODY_BYTES)
    statuses = []
    for _ in range(5):
        request = urllib.request.Request(  # noqa: S310 (loopback)
            url, data=body, headers={"Content-Type": "application/json", "X-GitHub-Event": "push"}
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=WAIT)  # noqa: S310
        statuses.append(refused.value.code)
        reason = json.loads(refused.value.read())["error"]
        assert "limit" in reason, reason
    assert statuses == [413] * 5
    assert_healthy(patient.process)


@pytest.mark.cluster
@pytest.mark.parametrize(
    ("name", "headers", "reason"),
    [
        ("one header of 1 MB", ["X-Big: " + "a" * 1_000_000], "over 16384 bytes"),
        ("2,000 headers of 4 KB", [f"X-H{i}: {'b' * 4000}" for i in range(2000)], "over 16384"),
        ("200 small headers", [f"X-H{i}: c" for i in range(200)], "more than 100 header fields"),
    ],
)
def test_oversized_or_too_many_headers_get_431(
    patient: Patient, name: str, headers: list[str], reason: str
) -> None:
    with connect(patient.process) as sock:
        sock.sendall(head(patient.process, 2, *headers) + b"{}")
        answer = read_answer(sock)
    assert answer.status == 431, (name, answer)
    assert answer.headers["connection"] == "close"
    assert reason in answer.reason()
    assert_healthy(patient.process)


@pytest.mark.cluster
def test_bodies_past_the_budget_get_503_while_small_deliveries_are_still_received(
    patient: Patient,
) -> None:
    declared = MAX_BODY_BYTES - KIB
    holders: list[socket.socket] = []
    try:
        # Three bodies hold 3 x (200 KiB - the 64 KiB allowance) = 408 KiB of the 512 KiB.
        for _ in range(3):
            sock = connect(patient.process)
            sock.sendall(head(patient.process, declared) + b"x" * (200 * KIB))
            holders.append(sock)

        def refused() -> Answer | None:
            # Once the receiver has read what the holders sent, one more such body cannot fit.
            with connect(patient.process) as sock:
                sock.sendall(head(patient.process, declared))
                if not select.select([sock], [], [], 1.0)[0]:
                    return None  # admitted, waiting for its body: try again
                return read_answer(sock)

        answer = wait_until(refused, timeout=WAIT)
        assert answer.status == 503, answer
        assert answer.headers["retry-after"].isdigit()
        assert answer.headers["connection"] == "close"
        assert "http.unverifiedBodyBytes" in answer.reason()
        # A push is far smaller than the allowance each request has.
        status, document = deliver(patient.process, "not-followed")
        assert status == 200 and document["status"] == "ignored", document
    finally:
        for sock in holders:
            sock.close()

    def received_whole() -> Answer | None:
        with connect(patient.process) as sock:
            sock.sendall(head(patient.process, declared) + b"x" * declared)
            answer = read_answer(sock)
        return None if answer.status == 503 else answer

    # Closing the holders gave their share back: a large body fits again, is read whole and
    # then refused for its signature.
    answer = wait_until(received_whole, timeout=WAIT)
    assert answer.status == 401, answer
    assert_healthy(patient.process)


@pytest.mark.cluster
def test_a_verified_delivery_is_dispatched_while_200_hostile_connections_are_open(
    patient: Patient,
) -> None:
    process = patient.process
    hostile: list[socket.socket] = []
    try:
        for index in range(200):
            sock = connect(process)
            hostile.append(sock)
            kind = index % 3
            if kind == 0:  # a body just under maxBodyBytes, never finished
                sock.sendall(head(process, MAX_BODY_BYTES - 1) + b"x" * (100 * KIB))
            elif kind == 1:  # a head that never ends
                sock.sendall(
                    f"POST /hooks/github HTTP/1.1\r\nHost: 127.0.0.1:{process.port}\r\n".encode()
                )
            # else: silent
        status, document = deliver(process, "main")
        assert status == 202, document
        (job,) = document["jobs"]
        assert job["outcome"] == "created" and job["job"] in patient.jobs()
        for index, sock in enumerate(hostile):  # the attack goes on
            if index % 3 == 0:
                with contextlib.suppress(OSError):  # refused bodies were closed on
                    sock.sendall(b"x" * KIB)
            elif index % 3 == 1:
                sock.sendall(b"X-Padding: a\r\n")
        status, document = deliver(process, "main")
        assert status == 202, document
    finally:
        for sock in hostile:
            sock.close()
    assert_healthy(process)
