"""Faults in the middle of real work: what hooksync promises still holds when a part fails.

- the API server stops and comes back during a burst of pushes: every 202 is on a Job, every
  other answer is a 503 with Retry-After (design rule 3);
- the receiver is SIGKILLed during a burst and restarted: the same, and every SHA ends with
  exactly one final commit status (rule 4);
- a Job's pod is deleted while it waits for a rollout: the inventory stays consistent and the
  Job's retry (or the next run) converges (rule 5);
- the Git server is down during a fetch: the Job fails saying so, the commit status says so,
  and the next resync after Git is back succeeds;
- etcd restarts under a running receiver: it recovers without a restart of its own.

Components are only ever stopped on private control planes, never on the session cluster.
Every wait is bounded and waits for a condition, never for a duration.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from hooksync import names
from hooksync.inventory import decode_inventory, inventory_labels, parent_name
from receiver.jobview import job_shas
from world import webhooks
from world.cluster import LocalCluster
from world.controlplane import ControlPlane
from world.kubelet import wait_until
from world.receiver import ReceiverProcess
from world.rollouts import RolloutStandIn
from world.stack import DeliveryStack

pytestmark = pytest.mark.cluster

SECRET = f"faults-{secrets.token_hex(16)}"
HTTP_TIMEOUT = 30.0
FINAL_STATES = ("success", "failure", "error", "failed", "canceled")

CONFIGMAP = (
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: '{value}'\n"
)
SERVICE = (
    "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n"
    "  selector: {app: web}\n  ports:\n  - port: 80\n"
)
DEPLOYMENT = (
    "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n"
    "  selector: {{matchLabels: {{app: web}}}}\n  template:\n"
    "    metadata: {{labels: {{app: web}}, annotations: {{revision: '{revision}'}}}}\n"
    "    spec:\n      containers:\n      - name: web\n        image: nginx:1.27\n"
)
SECRET_MANIFEST = (
    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\nstringData:\n  value: '{value}'\n"
)


def app_files(value: str, revision: str = "1") -> dict[str, str | None]:
    return {
        "deploy/configmap.yaml": CONFIGMAP.format(name="web", value=value),
        "deploy/service.yaml": SERVICE,
        "deploy/deployment.yaml": DEPLOYMENT.format(revision=revision),
    }


# --- a receiver on a private control plane ------------------------------------------------------


def push(url: str, repo: str, sha: str) -> httpx.Response:
    return webhooks.send(url, webhooks.github_push(repo, sha, secret=SECRET), timeout=HTTP_TIMEOUT)


class Intake:
    """A receiver on `plane` whose one target never runs (its ServiceAccount does not exist),
    so its Jobs stay as dispatched: what the API server holds is what intake wrote."""

    target = "burst"
    repo = "acme/burst"

    def __init__(self, plane: ControlPlane, directory: Path) -> None:
        self.plane = plane
        self.api = config.new_client_from_config(config_file=str(plane.kubeconfig))
        self.namespace = f"faults-{uuid.uuid4().hex[:8]}"
        client.CoreV1Api(self.api).create_namespace({"metadata": {"name": self.namespace}})
        target = webhooks.target_config(self.target, "github", self.repo, namespace="burst-app")
        cfg = webhooks.receiver_config(self.namespace, [target])
        env = {"HOOKSYNC_GITHUB_WEBHOOK_SECRET": SECRET}
        directory.mkdir(parents=True, exist_ok=True)
        self.receiver = ReceiverProcess(directory, cfg, plane.kubeconfig, env=env).start()

    def push(self, sha: str) -> httpx.Response:
        return push(self.receiver.url, self.repo, sha)

    def recorded_shas(self) -> set[str]:
        answer = client.BatchV1Api(self.api).list_namespaced_job(
            self.namespace, _preload_content=False
        )
        items = json.loads(answer.data)["items"]  # type: ignore[attr-defined]
        return {sha for job in items for sha in job_shas(job)}

    def explain(self) -> str:
        return f"receiver log ends:\n{self.receiver.log()[-4000:]}"

    def close(self) -> None:
        self.receiver.stop()
        self.api.close()


@pytest.fixture
def plane() -> Iterator[ControlPlane]:
    """A control plane of this test's own, which it may stop and start at will."""
    with ControlPlane() as private:
        yield private


@pytest.fixture
def intake(plane: ControlPlane, tmp_path: Path) -> Iterator[Intake]:
    stage = Intake(plane, tmp_path / "receiver")
    try:
        yield stage
    finally:
        stage.close()


# --- bursts -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    sha: str
    status: int | None  # None: no HTTP answer (connection refused or reset)
    body: str
    retry_after: str | None
    index: int


class Burst:
    """Sends pushes of fresh SHAs from `senders` threads until stopped; records every answer."""

    def __init__(
        self, send: Callable[[str], httpx.Response], make_sha: Callable[[], str], senders: int = 2
    ) -> None:
        self.send = send
        self.make_sha = make_sha
        self.outcomes: list[Outcome] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(senders)]

    def __enter__(self) -> Burst:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=HTTP_TIMEOUT + 10)
        assert not any(t.is_alive() for t in self.threads), "a sender hung"

    def _run(self) -> None:
        # Paced a little: a refusal is immediate, and a burst need not be a flood.
        while not self.stop.wait(0.02) and len(self.outcomes) < 3000:
            sha = self.make_sha()
            outcome: tuple[int | None, str, str | None]
            try:
                response = self.send(sha)
                outcome = (response.status_code, response.text, response.headers.get("retry-after"))
            except httpx.TransportError as exc:
                outcome = (None, f"{type(exc).__name__}: {exc}", None)
            with self.lock:
                status, text, retry_after = outcome
                self.outcomes.append(Outcome(sha, status, text, retry_after, len(self.outcomes)))

    def count(self, predicate: Callable[[Outcome], bool] = lambda o: True, since: int = 0) -> int:
        with self.lock:
            return sum(1 for o in self.outcomes[since:] if predicate(o))

    def mark(self) -> int:
        with self.lock:
            return len(self.outcomes)

    def wait(self, n: int, what: str, predicate: Callable[[Outcome], bool] = lambda o: True,
             since: int = 0, timeout: float = 90) -> None:  # fmt: skip
        try:
            wait_until(lambda: self.count(predicate, since) >= n, timeout=timeout, interval=0.05)
        except TimeoutError:
            raise AssertionError(f"{what}: not within {timeout}s; {self.table()}") from None

    def table(self) -> str:
        counts: dict[str, int] = {}
        for o in self.outcomes:
            key = str(o.status) if o.status is not None else "no answer"
            counts[key] = counts.get(key, 0) + 1
        return f"answers: {dict(sorted(counts.items()))}"


def accepted(outcome: Outcome) -> bool:
    return outcome.status == 202


def refused_503(outcome: Outcome) -> bool:
    return outcome.status == 503


def assert_503_answer(outcome: Outcome) -> None:
    assert outcome.retry_after is not None and outcome.retry_after.isdigit(), outcome
    assert int(outcome.retry_after) > 0, outcome
    reason = json.loads(outcome.body)["error"]
    assert reason and "\n" not in reason and "retry later" in reason, outcome


# --- the API server away mid-burst ----------------------------------------------------------


def test_api_server_restarting_mid_burst_loses_no_accepted_push(
    plane: ControlPlane, intake: Intake
) -> None:
    with Burst(intake.push, lambda: secrets.token_hex(20)) as burst:
        burst.wait(5, "202s before the outage", accepted)
        down = burst.mark()
        plane.stop_component("kube-apiserver")
        burst.wait(3, "503s while the API server is down", refused_503, since=down)
        plane.start_component("kube-apiserver")
        plane.wait_ready()
        back = burst.mark()
        burst.wait(5, "202s after the API server is back", accepted, since=back)
    outcomes = burst.outcomes
    print(f"\n{len(outcomes)} pushes; {burst.table()}")

    assert {o.status for o in outcomes} <= {202, 503}, [
        o for o in outcomes if o.status not in (202, 503)
    ]
    for outcome in outcomes:
        if outcome.status == 503:
            assert_503_answer(outcome)
    recorded = intake.recorded_shas()
    lost = [o.sha[:7] for o in outcomes if o.status == 202 and o.sha not in recorded]
    assert not lost, f"202 answered but on no Job: {lost}\n{intake.explain()}"
    # Something was refused while down, something accepted after: the burst spanned the outage.
    assert any(o.status == 503 for o in outcomes[down:])
    assert any(o.status == 202 for o in outcomes[back:])


# --- etcd restarting under a running receiver -------------------------------------------------


def test_receiver_recovers_by_itself_when_etcd_restarts(
    plane: ControlPlane, intake: Intake
) -> None:
    url = intake.receiver.url
    process = intake.receiver.process
    assert process is not None
    first = secrets.token_hex(20)
    assert intake.push(first).status_code == 202, intake.explain()

    plane.stop_component("etcd")
    during = intake.push(secrets.token_hex(20))
    # The API server is up but cannot store anything: the push is refused, not lost or hung.
    assert during.status_code == 503, during.text
    assert_503_answer(Outcome("", 503, during.text, during.headers.get("retry-after"), 0))

    plane.start_component("etcd")
    plane.wait_ready(90)

    answers: list[int] = []

    def accepted_again() -> str | None:
        sha = secrets.token_hex(20)
        answer = intake.push(sha)
        answers.append(answer.status_code)
        return sha if answer.status_code == 202 else None

    after = wait_until(accepted_again, timeout=60, interval=0.5)
    assert set(answers) <= {202, 503}, answers
    wait_until(lambda: httpx.get(f"{url}/readyz", timeout=10).status_code == 200, timeout=30)
    # The same process throughout: it recovered without being restarted.
    assert intake.receiver.process is process and process.poll() is None
    assert {first, after} <= intake.recorded_shas(), intake.explain()


# --- a private local cluster whose Jobs really run -------------------------------------------


@pytest.fixture(scope="module")
def private_cluster() -> Iterator[LocalCluster]:
    with LocalCluster() as local:
        yield local


def deploy_context(stack: DeliveryStack) -> str:
    return f"hooksync/deploy: {stack.target}"


def states(stack: DeliveryStack, sha: str) -> list[str]:
    return [
        str(s.get("state") or s.get("status"))
        for s in stack.statuses(sha)
        if (s.get("context") or s.get("name")) == deploy_context(stack)
    ]


def all_reported(stack: DeliveryStack) -> bool:
    jobs = stack.jobs()
    return bool(jobs) and all(
        (j["metadata"].get("annotations") or {}).get(names.REPORTED) == "complete"
        and names.STATUS_FINALIZER not in (j["metadata"].get("finalizers") or [])
        for j in jobs
    )


def inventory(stack: DeliveryStack) -> tuple[str | None, list[Any]]:
    parent = client.CoreV1Api(stack.api).read_namespaced_config_map(
        parent_name(stack.target), stack.target_namespace
    )
    record = decode_inventory(parent.data)
    return record.sha, list(record.objects)


def inventory_problems(stack: DeliveryStack) -> list[str]:
    """What is wrong with the inventory: recorded objects that are gone, replaced, unlabelled."""
    _, objects = inventory(stack)
    core, apps = client.CoreV1Api(stack.api), client.AppsV1Api(stack.api)
    readers: dict[str, Callable[[str, str], Any]] = {
        "ConfigMap": core.read_namespaced_config_map,
        "Service": core.read_namespaced_service,
        "Secret": core.read_namespaced_secret,
        "Deployment": apps.read_namespaced_deployment,
    }
    labels = inventory_labels(stack.target, stack.target_namespace)
    problems = []
    for ref in objects:
        try:
            live = readers[ref.kind](ref.name, ref.namespace)
        except ApiException as exc:
            problems.append(f"{ref}: {exc.status} {exc.reason}")
            continue
        if ref.uid and live.metadata.uid != ref.uid:
            problems.append(f"{ref}: recorded uid {ref.uid}, live {live.metadata.uid}")
        carried = live.metadata.labels or {}
        if any(carried.get(k) != v for k, v in labels.items()):
            problems.append(f"{ref}: lacks the inventory labels {labels}")
    return problems


def recorded_names(stack: DeliveryStack) -> set[str]:
    return {f"{ref.kind}/{ref.name}" for ref in inventory(stack)[1]}


# --- the receiver killed mid-burst ------------------------------------------------------------


def test_receiver_killed_mid_burst_loses_and_doubles_no_status(
    private_cluster: LocalCluster, tmp_path: Path
) -> None:
    with DeliveryStack(private_cluster, tmp_path, target="kill") as stack:
        receiver = stack.receivers[0]
        counter = iter(range(10_000))

        def commit() -> str:
            n = next(counter)
            return stack.commit(app_files(f"kill-{n}", revision=str(n % 3)), f"burst {n}")

        def send(sha: str) -> httpx.Response:
            return stack.push_event(sha)

        with Burst(send, commit, senders=1) as burst:
            burst.wait(4, "202s before the kill", accepted)
            receiver.stop(signal.SIGKILL)
            killed = burst.mark()
            burst.wait(2, "pushes refused while the receiver is dead", since=killed,
                       predicate=lambda o: o.status is None)  # fmt: skip
            receiver.start()
            back = burst.mark()
            burst.wait(4, "202s after the restart", accepted, since=back)
        outcomes = burst.outcomes
        print(f"\n{len(outcomes)} pushes; {burst.table()}")

        assert {o.status for o in outcomes} <= {202, None}, burst.table()
        jobs = stack.jobs()
        recorded = {sha for job in jobs for sha in job_shas(job)}
        lost = [o.sha[:7] for o in outcomes if o.status == 202 and o.sha not in recorded]
        assert not lost, f"202 answered but on no Job: {lost}"

        wait_until(lambda: all_reported(stack), timeout=150, interval=0.5)
        head = stack.repo.head() if stack.repo else None
        problems = {}
        for outcome in outcomes:
            posted = states(stack, outcome.sha)
            finals = [s for s in posted if s in FINAL_STATES]
            if outcome.sha in recorded or outcome.sha == head:
                if len(finals) != 1 or posted[-1] not in FINAL_STATES:
                    problems[outcome.sha[:7]] = (outcome.status, posted)
            elif len(finals) > 1 or (posted and posted[-1] not in FINAL_STATES):
                # Never dispatched: at most the one status of a run that deployed it as head.
                problems[outcome.sha[:7]] = (outcome.status, posted)
        assert not problems, (
            f"statuses per SHA (answer, states): {problems}\n{burst.table()}\n"
            + explain_statuses(stack, [o.sha for o in outcomes if o.sha[:7] in problems])
        )
        assert all(states(stack, o.sha)[-1] == "success" for o in outcomes if o.status == 202)
        assert stack.objects()["ConfigMap/web"]["data"]["value"] == f"kill-{len(outcomes) - 1}"


def explain_statuses(stack: DeliveryStack, shas: list[str]) -> str:
    """Each SHA's statuses with their descriptions, and what every Job stood for and ran."""
    lines = []
    for sha in shas:
        posted = [(s.get("state"), s.get("description")) for s in stack.statuses(sha)]
        lines.append(f"{sha[:7]}: {posted}")
    for job in stack.jobs():
        annotations = job["metadata"].get("annotations") or {}
        summary = json.loads(annotations.get(names.SUMMARY) or "{}")
        lines.append(
            f"{job['metadata']['name']}: shas {[s[:7] for s in job_shas(job)]}, "
            f"ran {str(summary.get('sha'))[:7]}, {summary.get('message')!r}"
        )
    return "\n".join(lines)


# --- a Job's pod deleted while it waits for a rollout -------------------------------------


def job_pods(stack: DeliveryStack, job: str) -> list[Any]:
    return list(
        client.CoreV1Api(stack.api)
        .list_namespaced_pod(stack.jobs_namespace, label_selector=f"job-name={job}")
        .items
    )


def pod_log(stack: DeliveryStack, pod: str) -> str:
    try:
        return str(client.CoreV1Api(stack.api).read_namespaced_pod_log(pod, stack.jobs_namespace))
    except ApiException:
        return ""


def logged_step(log: str, step: str) -> bool:
    for line in log.splitlines():
        with contextlib.suppress(ValueError):
            if json.loads(line).get("step") == step:
                return True
    return False


def test_a_pod_deleted_mid_converge_leaves_a_consistent_inventory(
    private_cluster: LocalCluster, tmp_path: Path
) -> None:
    with DeliveryStack(private_cluster, tmp_path, target="podkill") as stack:
        files = app_files("one")
        files["deploy/old.yaml"] = CONFIGMAP.format(name="old", value="to be pruned")
        first = stack.commit(files, "the app, with a ConfigMap to prune later")
        assert stack.push_event(first).status_code == 202
        assert stack.wait_final_status(first)["state"] == "success"
        assert inventory(stack)[0] == first and not inventory_problems(stack)

        # The next commit changes the Deployment (a rollout to wait for), drops one object and
        # adds one of a kind the inventory has not seen. With rollouts paused, its Job applies,
        # prunes, and then waits in its health step, where its pod is deleted.
        assert stack.rollouts is not None
        stack.rollouts.stop()
        second = stack.commit(
            {
                **app_files("two", revision="2"),
                "deploy/old.yaml": None,
                "deploy/new.yaml": SECRET_MANIFEST.format(name="new", value="added"),
            },
            "new revision, one object fewer, one of a new kind",
        )
        answer = stack.push_event(second)
        assert answer.status_code == 202, answer.text
        job = json.loads(answer.text)["jobs"][0]["job"]

        def waiting_for_rollout() -> Any:
            for pod in job_pods(stack, job):
                if pod.status.phase == "Running" and logged_step(
                    pod_log(stack, pod.metadata.name), "prune"
                ):
                    return pod
            return None

        pod = wait_until(waiting_for_rollout, timeout=60, interval=0.2)
        # Past apply and prune: the new objects are live and the pruned one is gone.
        objects = stack.objects()
        assert "ConfigMap/old" not in objects and "Deployment/web" in objects
        # The Job records what it applied before it waits (so a kill now leaves nothing
        # unrecorded); wait for that record, bounded, then kill.
        wait_until(lambda: logged_step(pod_log(stack, pod.metadata.name), "record"), timeout=30)
        client.CoreV1Api(stack.api).delete_namespaced_pod(pod.metadata.name, stack.jobs_namespace)
        wait_until(
            lambda: pod.metadata.uid not in {p.metadata.uid for p in job_pods(stack, job)},
            timeout=60,
        )

        # The converge died mid-way: the inventory still names exactly what is live and ours,
        # at the SHA last fully applied, so the retry does not skip the rollout it missed.
        sha, _ = inventory(stack)
        assert sha == first
        assert not inventory_problems(stack), inventory_problems(stack)
        assert recorded_names(stack) == {
            "ConfigMap/web", "Service/web", "Deployment/web", "Secret/new",
        }  # fmt: skip

        stack.rollouts = RolloutStandIn(stack.api, [stack.target_namespace]).start()
        status = stack.wait_final_status(second, timeout=150)
        assert status["state"] == "success", status
        wait_until(lambda: all_reported(stack), timeout=60)
        assert states(stack, second).count("success") == 1, states(stack, second)

        # The status goes out as soon as the pod ends; the Job controller counts it a moment later.
        def counted() -> Any:
            found = client.BatchV1Api(stack.api).read_namespaced_job(job, stack.jobs_namespace)
            return found if found.status.succeeded else None

        finished = wait_until(counted, timeout=30)
        assert finished.status.succeeded == 1 and (finished.status.failed or 0) >= 1
        assert inventory(stack)[0] == second and not inventory_problems(stack)

        # And the following converge succeeds, on a consistent inventory.
        third = stack.commit({"deploy/new.yaml": None}, "drop the new Secret again")
        assert stack.push_event(third).status_code == 202
        assert stack.wait_final_status(third)["state"] == "success"
        assert inventory(stack)[0] == third and not inventory_problems(stack)
        assert recorded_names(stack) == {"ConfigMap/web", "Service/web", "Deployment/web"}
        assert "Secret/new" not in {
            f"Secret/{s.metadata.name}"
            for s in client.CoreV1Api(stack.api).list_namespaced_secret(stack.target).items
        }


# --- the Git server down during a fetch -------------------------------------------------------


def test_git_down_fails_the_job_with_a_clear_status_and_the_next_resync_recovers(
    private_cluster: LocalCluster, tmp_path: Path
) -> None:
    with DeliveryStack(private_cluster, tmp_path, target="gitdown") as stack:
        sha = stack.commit(app_files("while git is down"), "a commit Git cannot serve yet")
        stack.git.set_available(False)
        answer = stack.push_event(sha)
        assert answer.status_code == 202, answer.text

        status = stack.wait_final_status(sha, timeout=150)
        print(f"\nfinal status while Git is down: {status['state']}: {status['description']}")
        assert status["state"] == "failure", status
        assert "git fetch" in status["description"], status
        wait_until(lambda: all_reported(stack), timeout=30)
        [job] = stack.jobs()
        summary = json.loads(job["metadata"]["annotations"][names.SUMMARY])
        assert summary["result"] == "failure"
        assert f"git fetch from {stack.git.url(stack.repo_name)} failed" in summary["message"]
        assert "503" in summary["message"], summary
        assert states(stack, sha).count("failure") == 1
        assert stack.git_token not in json.dumps(job)
        served = [r.status for r in stack.git.requests]
        assert served and set(served) == {503}, served

        # Git is back: the next resync converges the head.
        stack.git.set_available(True)
        result = run_resync(stack, tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        done = json.loads(result.stdout.strip().splitlines()[-1])
        assert done["result"] == "success" and done["sha"] == sha, done
        assert inventory(stack)[0] == sha and not inventory_problems(stack)
        assert stack.objects()["ConfigMap/web"]["data"]["value"] == "while git is down"


def run_resync(stack: DeliveryStack, directory: Path) -> subprocess.CompletedProcess[str]:
    """`hooksync-job resync` for the stack's target, run by hand as the Job would run it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOOKSYNC_", "KUBERNETES_"))}
    env.update(
        KUBECONFIG=str(stack.cluster.kubeconfig),
        HOOKSYNC_GIT_TOKEN=stack.git_token,
        HOOKSYNC_TERMINATION_LOG=str(directory / "no-such-dir" / "termination-log"),
        TMPDIR=str(directory),
        POD_NAME=f"resync-by-hand-{uuid.uuid4().hex[:6]}",
    )
    command = [
        str(Path(sys.executable).parent / "hooksync-job"), "resync",
        "--target", stack.target,
        "--clone-url", stack.git.url(stack.repo_name),
        "--branch", "main",
        "--path", "deploy",
        "--namespace", stack.target_namespace,
        "--prune",
        "--timeout", "60",
    ]  # fmt: skip
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=120, check=False
    )
