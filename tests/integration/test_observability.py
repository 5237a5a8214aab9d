"""What an operator sees: /metrics after a scripted set of deliveries and after a real deploy,
/healthz and /readyz while the API server is away, and logs that are JSON and hold no secret.

The scripted deliveries go to a receiver whose target names a ServiceAccount that does not
exist: the API server refuses the Jobs' pods, so the first apply Job stays active and the
second push deterministically waits behind it (one Job created, one push coalesced).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client, config
from prometheus_client.parser import text_string_to_metric_families

from hooksync import names
from hooksync.summary import RunSummary
from world import webhooks
from world.cluster import LocalCluster
from world.controlplane import ControlPlane
from world.kubelet import wait_until
from world.receiver import ReceiverProcess
from world.stack import WEBHOOK_SECRET, DeliveryStack

pytestmark = pytest.mark.cluster

REPO = "acme/metrics"
HEX40 = re.compile(r"[0-9a-f]{40}")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

APP = {
    "deploy/configmap.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  greeting: hello\n"
    ),
}


def receiver_config(namespace: str) -> dict[str, Any]:
    """One GitHub target, `metrics`, following main of acme/metrics."""
    return webhooks.receiver_config(namespace, [webhooks.target_config("metrics", "github", REPO)])


def github(
    base: str,
    event: str,
    doc: Any,
    *,
    delivery: str | None = None,
    secret: str = webhooks.GITHUB_SECRET,
) -> httpx.Response:
    body = doc if isinstance(doc, bytes) else webhooks.as_body(doc)
    return webhooks.send(
        base, webhooks.github_delivery(event, body, secret=secret, delivery_id=delivery)
    )


def push(sha: str, branch: str = "main", repo: str = REPO) -> dict[str, Any]:
    return webhooks.github_push_payload(repo, sha, ref=f"refs/heads/{branch}")


def scrape(base: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every sample on /metrics: {sample name: {sorted label pairs: value}}."""
    answer = httpx.get(f"{base}/metrics", timeout=10)
    assert answer.status_code == 200
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[key] = sample.value
    return samples


def labelled(values: dict[tuple[tuple[str, str], ...], float], *names_: str) -> dict[Any, float]:
    """Samples keyed by the values of `names_`, in that order."""
    return {tuple(dict(key)[n] for n in names_): value for key, value in values.items()}


@pytest.fixture
def scripted_receiver(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> Iterator[ReceiverProcess]:
    receiver = ReceiverProcess(
        tmp_path,
        receiver_config(namespace),
        cluster.kubeconfig,
        env=webhooks.RECEIVER_ENV,
        args=["--no-background"],
    )
    with receiver:
        yield receiver


def test_metrics_count_a_scripted_set_of_deliveries_exactly(
    scripted_receiver: ReceiverProcess,
) -> None:
    base = scripted_receiver.url
    first, second, elsewhere = (secrets.token_hex(20) for _ in range(3))
    first_delivery = str(uuid.uuid4())
    deliveries = [first_delivery]

    def sent(answer: httpx.Response, status: int) -> dict[str, Any]:
        assert answer.status_code == status, answer.text
        return dict(answer.json())

    created = sent(github(base, "push", push(first), delivery=first_delivery), 202)
    assert [j["outcome"] for j in created["jobs"]] == ["created"]
    waiting = sent(github(base, "push", push(second)), 202)
    assert [j["outcome"] for j in waiting["jobs"]] == ["coalesced"]
    assert sent(github(base, "push", push(elsewhere, branch="other")), 200)["status"] == "ignored"
    duplicate = sent(github(base, "push", push(first), delivery=first_delivery), 200)
    assert duplicate["status"] == "already dispatched"
    for _ in range(2):
        sent(github(base, "push", push(secrets.token_hex(20)), secret="not-the-secret"), 401)
    sent(github(base, "push", b'{"ref": "refs/heads/main", '), 400)
    assert sent(github(base, "ping", {"zen": "Keep it logically awesome.", "hook_id": 1}), 200)[
        "status"
    ] == "ping"  # fmt: skip
    gitlab_push = {
        "object_kind": "push", "ref": "refs/heads/main", "before": "0" * 40,
        "after": second, "checkout_sha": second,
        "project": {"path_with_namespace": "acme/elsewhere", "id": 1}, "commits": [],
    }  # fmt: skip
    answer = webhooks.send(
        base, webhooks.gitlab_token_delivery("Push Hook", webhooks.as_body(gitlab_push))
    )
    assert sent(answer, 200)["status"] == "ignored"

    metrics = scrape(base)
    assert labelled(metrics["hooksync_deliveries_total"], "provider", "event", "outcome") == {
        ("github", "push", "dispatched"): 2,
        ("github", "push", "ignored"): 1,
        ("github", "push", "duplicate"): 1,
        ("github", "push", "rejected"): 3,
        ("github", "ping", "ping"): 1,
        ("gitlab", "push", "ignored"): 1,
    }
    assert labelled(metrics["hooksync_deliveries_rejected_total"], "provider", "reason") == {
        ("github", "SignatureError"): 2,
        ("github", "MalformedDelivery"): 1,
    }
    assert labelled(metrics["hooksync_signature_failures_total"], "provider") == {("github",): 2}
    assert labelled(metrics["hooksync_request_duration_seconds_count"], "provider") == {
        ("github",): 8,
        ("gitlab",): 1,
    }
    assert labelled(metrics["hooksync_jobs_created_total"], "target", "mode") == {
        ("metrics", "apply"): 1
    }
    assert labelled(metrics["hooksync_pushes_coalesced_total"], "target") == {("metrics",): 1}
    assert metrics["hooksync_leader"] == {(): 0}  # --no-background: never the leader
    assert "hooksync_converges_total" not in metrics  # nothing finished

    # Bounded labels: no SHA, no delivery id, nothing payload-shaped in any label value.
    values = {v for samples in metrics.values() for key in samples for _, v in key}
    assert not [v for v in values if HEX40.search(v) or UUID.search(v)], values
    assert not {first, second, elsewhere, *deliveries} & values


# -- health ---------------------------------------------------------------------------------


def _get(url: str, **kwargs: Any) -> httpx.Response:
    return httpx.get(url, timeout=30, **kwargs)


def test_liveness_stays_up_while_readiness_follows_the_api_server(
    own_control_plane: ControlPlane, tmp_path: Path
) -> None:
    api = config.new_client_from_config(config_file=str(own_control_plane.kubeconfig))
    client.CoreV1Api(api).create_namespace({"metadata": {"name": "hooksync"}})
    api.close()
    receiver = ReceiverProcess(
        tmp_path, receiver_config("hooksync"), own_control_plane.kubeconfig,
        env=webhooks.RECEIVER_ENV,
    )  # fmt: skip
    with receiver:
        base = receiver.url
        assert _get(f"{base}/healthz").status_code == 200
        wait_until(lambda: _get(f"{base}/readyz").status_code == 200, timeout=15)
        assert _get(f"{base}/").status_code == 200

        own_control_plane.stop_component("kube-apiserver")
        assert _get(f"{base}/healthz").status_code == 200
        wait_until(lambda: _get(f"{base}/readyz").status_code == 503, timeout=15)
        assert _get(f"{base}/healthz").status_code == 200
        assert _get(f"{base}/metrics").status_code == 200
        down = _get(f"{base}/")
        assert down.status_code == 503 and "unreachable" in down.text

        own_control_plane.start_component("kube-apiserver")
        own_control_plane.wait_ready()
        wait_until(lambda: _get(f"{base}/readyz").status_code == 200, timeout=30)
        assert _get(f"{base}/").status_code == 200
        assert _get(f"{base}/healthz").status_code == 200


def test_no_configuration_no_receiver(tmp_path: Path) -> None:
    # Readiness means "configuration loaded": a receiver whose file is invalid never serves.
    broken = tmp_path / "config.yaml"
    document = receiver_config("hooksync")
    document["targets"][0]["branch"] = "bad..branch"
    broken.write_text(yaml.safe_dump(document))
    result = subprocess.run(
        [sys.executable, "-m", "receiver.cli", "--config", str(broken), "--port", "0"],
        capture_output=True, text=True, timeout=60, check=False,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert result.returncode == 2
    assert "branch" in result.stderr and "not a valid Git branch name" in result.stderr


# -- a full run: metrics of the converge, and what the logs hold -----------------------------


@pytest.fixture(scope="module")
def deployed(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    stack = DeliveryStack(cluster, tmp_path_factory.mktemp("obs-stack"), target="obs")
    with stack:
        sha = stack.commit(APP, "deploy the web config")
        answer = stack.push_event(sha)
        assert answer.status_code == 202, answer.text
        job = answer.json()["jobs"][0]["job"]
        status = stack.wait_final_status(sha)
        assert status["state"] == "success", status
        batch = client.BatchV1Api(stack.api)

        def reported() -> bool:
            annotations = batch.read_namespaced_job(job, stack.jobs_namespace).metadata.annotations
            return (annotations or {}).get(names.REPORTED) == "complete"

        wait_until(reported, timeout=30)
        yield stack, sha, job


def test_metrics_after_a_deploy_show_the_converge_and_the_statuses(deployed: Any) -> None:
    stack, sha, _job = deployed
    metrics = scrape(stack.receivers[0].url)
    assert labelled(metrics["hooksync_converges_total"], "target", "mode", "result") == {
        ("obs", "apply", "success"): 1
    }
    assert labelled(metrics["hooksync_converge_duration_seconds_count"], "mode") == {("apply",): 1}
    latest = labelled(metrics["hooksync_last_converge_duration_seconds"], "target", "mode")
    assert set(latest) == {("obs", "apply")} and latest[("obs", "apply")] > 0
    # One series per target, carrying the SHA deployed.
    assert labelled(metrics["hooksync_last_applied_info"], "target", "sha") == {("obs", sha): 1}
    assert labelled(metrics["hooksync_last_success_timestamp_seconds"], "target")[("obs",)] > 0
    posted = labelled(metrics["hooksync_commit_statuses_total"], "provider", "outcome")
    assert posted == {("github", "posted"): len(stack.statuses(sha))}
    assert metrics["hooksync_leader"] == {(): 1}
    assert labelled(metrics["hooksync_jobs_created_total"], "target", "mode") == {
        ("obs", "apply"): 1
    }


def test_the_record_lease_holds_the_last_result(deployed: Any) -> None:
    stack, sha, job = deployed
    lease = client.CoordinationV1Api(stack.api).read_namespaced_lease(
        "hooksync-record-obs", stack.jobs_namespace
    )
    annotations = lease.metadata.annotations
    assert annotations["hooksync.dev/applied-sha"] == sha
    assert annotations["hooksync.dev/last-result"] == "success"
    assert annotations["hooksync.dev/last-job"] == job
    assert annotations["hooksync.dev/drifted"] == "0"
    assert lease.metadata.labels[names.TARGET] == "obs"


def _secrets(stack: DeliveryStack) -> dict[str, str]:
    basic = base64.b64encode(f"x-access-token:{stack.git_token}".encode()).decode()
    return {
        "webhook secret": WEBHOOK_SECRET,
        "host token": stack.host_token,
        "git token": stack.git_token,
        "git token as basic auth": basic,
        "link key": stack.link_key,
    }


def test_receiver_logs_are_json_lines_with_context_and_no_secret(deployed: Any) -> None:
    stack, _sha, job = deployed
    text = stack.receivers[0].log()
    for what, value in _secrets(stack).items():
        assert value not in text, f"the receiver log holds the {what}"
    entries = []
    for line in text.splitlines():
        entry = json.loads(line)  # every line is one JSON object
        assert {"time", "level", "msg"} <= entry.keys(), line
        entries.append(entry)
    dispatched = [e for e in entries if e["msg"] == "delivery dispatched"]
    assert len(dispatched) == 1
    assert dispatched[0]["job"] == job and dispatched[0]["target"] == "obs"
    assert dispatched[0]["event"] == "push" and UUID.fullmatch(dispatched[0]["delivery"])
    posted = [e for e in entries if e["msg"] == "status posted"]
    assert posted and all(e["job"] == job and e["target"] == "obs" for e in posted)
    # Payloads are never logged whole.
    assert "head_commit" not in text and "repository" not in text


def test_job_pod_logs_hold_no_secret(deployed: Any) -> None:
    stack, _sha, job = deployed
    core = client.CoreV1Api(stack.api)
    pods = core.list_namespaced_pod(stack.jobs_namespace, label_selector=f"job-name={job}").items
    assert pods
    for pod in pods:
        text = core.read_namespaced_pod_log(pod.metadata.name, stack.jobs_namespace)
        assert text.strip(), f"pod {pod.metadata.name} logged nothing"
        for what, value in _secrets(stack).items():
            assert value not in text, f"pod {pod.metadata.name}'s log holds the {what}"
        lines = text.splitlines()
        # The last line is the run's summary document (it is also the termination message);
        # every other line is a log entry.
        assert RunSummary.from_json(lines[-1]) is not None, lines[-1]
        for line in lines[:-1]:
            entry = json.loads(line)
            assert {"time", "level", "msg"} <= entry.keys(), line
            assert entry.get("target") == "obs", line


def test_status_page_and_metrics_hold_no_secret(deployed: Any) -> None:
    stack, _sha, _job = deployed
    base = stack.receivers[0].url
    for path in ("/", "/metrics"):
        body = _get(f"{base}{path}").text
        for what, value in _secrets(stack).items():
            assert value not in body, f"{path} shows the {what}"
