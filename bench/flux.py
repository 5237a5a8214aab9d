"""Flux on the local control plane, for the side-by-side benchmarks (never for the tests).

source-controller, kustomize-controller and notification-controller, built by `hack/build-flux`,
run as processes with the admin kubeconfig, their CRDs applied from their module source. A
GitRepository follows the app's repository on the bench's Git server (token as basic auth), a
Kustomization applies its folder into a target namespace, and a GitHub Receiver turns a signed
push webhook into an immediate fetch, as a user would set Flux up for pushes.

`side_by_side` measures Flux and hooksync on the same cluster in the same run: push -> live and
push -> done (Flux with `wait: true` and `wait: false`), a 300-object first apply and no-op, a
200-push storm, idle and peak memory.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from kubernetes import client

from bench.converge_bench import manifests as big_manifests
from bench.e2e_bench import CONFIGMAPS, app
from bench.figures import Memory, median, memory
from bench.load import paced
from bench.watches import Watches
from world import webhooks
from world.cluster import LocalCluster
from world.controlplane import REPO_ROOT, free_port, run_kubectl
from world.gitserver import GitServer
from world.rollouts import RolloutStandIn
from world.stack import POD_SECURITY_BASELINE, DeliveryStack

BUILD_SCRIPT = REPO_ROOT / "hack" / "build-flux"
CONTROLLERS = ("source-controller", "kustomize-controller", "notification-controller")
NAMESPACE = "flux-system"
TARGET_NAMESPACE = "fluxapp"
APP_PATH = "deploy"
BIG_PATH = "big"
LIVE_CONFIGMAP = f"config-{CONFIGMAPS - 1}"
WEBHOOK_TOKEN = "flux-bench-webhook-token"
KUSTOMIZE = ("kustomize.toolkit.fluxcd.io", "v1", "kustomizations")
SOURCE = ("source.toolkit.fluxcd.io", "v1", "gitrepositories")
NOTIFICATION = ("notification.toolkit.fluxcd.io", "v1", "receivers")
TIMEOUT = 180.0


def built() -> Path | None:
    """Flux's cache folder when all three controllers are built there, else None."""
    done = subprocess.run(
        [str(BUILD_SCRIPT), "--print"], capture_output=True, text=True, check=False
    )
    folder = Path(done.stdout.strip()) if done.returncode == 0 else None
    if folder is None or not all((folder / name).is_file() for name in CONTROLLERS):
        return None
    return folder


# -- Flux as processes -----------------------------------------------------------------------


class FluxControllers:
    """The three controllers as processes against the cluster; their logs in `directory`."""

    def __init__(self, cluster: LocalCluster, folder: Path, directory: Path) -> None:
        self.cluster = cluster
        self.folder = folder
        self.directory = directory
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.storage_port = free_port()
        self.receiver_port = free_port()

    @property
    def receiver_url(self) -> str:
        return f"http://127.0.0.1:{self.receiver_port}"

    def install_crds(self) -> None:
        for name in CONTROLLERS:
            run_kubectl(
                self.cluster.control_plane,
                "apply",
                "--server-side",
                "-f",
                str(self.folder / "crds" / name),
            )
        run_kubectl(
            self.cluster.control_plane,
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd",
            "--all",
        )

    def start(self) -> FluxControllers:
        self.directory.mkdir(parents=True, exist_ok=True)
        storage = self.directory / "storage"
        storage.mkdir(exist_ok=True)
        common = ["--log-encoding=json", "--enable-leader-election=false"]
        extra = {
            "source-controller": [
                f"--storage-path={storage}",
                f"--storage-addr=127.0.0.1:{self.storage_port}",
                f"--storage-adv-addr=127.0.0.1:{self.storage_port}",
            ],
            "kustomize-controller": ["--no-remote-bases=true"],
            "notification-controller": [
                f"--receiverAddr=127.0.0.1:{self.receiver_port}",
                f"--events-addr=127.0.0.1:{free_port()}",
            ],
        }
        env = {
            **os.environ,
            "KUBECONFIG": str(self.cluster.kubeconfig),
            "RUNTIME_NAMESPACE": NAMESPACE,
            "TMPDIR": str(self.directory),
        }
        for name in CONTROLLERS:
            argv = [
                str(self.folder / name),
                *common,
                f"--metrics-addr=127.0.0.1:{free_port()}",
                f"--health-addr=127.0.0.1:{free_port()}",
                *extra[name],
            ]
            log = (self.directory / f"{name}.log").open("ab")
            self.processes[name] = subprocess.Popen(
                argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            log.close()
        return self

    def stop(self) -> None:
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def check_running(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                tail = (self.directory / f"{name}.log").read_text(errors="replace")[-3000:]
                raise SystemExit(f"{name} exited {process.returncode}:\n{tail}")

    def memory(self) -> Memory:
        """The three processes' resident memory, summed (now and each one's peak)."""
        found = [memory(p.pid) for p in self.processes.values()]
        return Memory(
            sum(m.rss_mb for m in found if m is not None),
            sum(m.hwm_mb for m in found if m is not None),
        )


# -- the objects Flux works from -----------------------------------------------------------------


def _manifest(kind: str, name: str, spec: dict[str, Any], api_version: str) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec,
    }


def kustomization(name: str, path: str, namespace: str, wait: bool) -> dict[str, Any]:
    spec = {
        "interval": "60m",
        "sourceRef": {"kind": "GitRepository", "name": "app"},
        "path": f"./{path}",
        "prune": True,
        "wait": wait,
        "timeout": "2m",
        "targetNamespace": namespace,
    }
    return _manifest("Kustomization", name, spec, "kustomize.toolkit.fluxcd.io/v1")


def ready_at(obj: dict[str, Any], sha: str) -> bool:
    """Ready=True with `sha` applied (a Kustomization) or fetched (a GitRepository)."""
    status = obj.get("status") or {}
    revision = str(status.get("lastAppliedRevision") or "")
    conditions = status.get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    return ready and revision.endswith(sha)


class FluxSetup:
    """The Git repository, the Flux objects and watches on them, on one cluster."""

    def __init__(self, cluster: LocalCluster, git: GitServer, token: str) -> None:
        self.cluster = cluster
        self.api = client.ApiClient(_admin_configuration(cluster))
        self.custom = client.CustomObjectsApi(self.api)
        self.core = client.CoreV1Api(self.api)
        self.repo = git.create_repo("acme/flux-app")
        self.token = token
        self.webhook_path = ""
        self.watches = Watches(
            [
                (
                    "kustomization",
                    self.custom.list_namespaced_custom_object,
                    (*KUSTOMIZE[:2], NAMESPACE, KUSTOMIZE[2]),
                ),
                ("configmap", self.core.list_namespaced_config_map, (TARGET_NAMESPACE,)),
            ]
        )

    def create(self, files: dict[str, str | None]) -> str:
        """Namespaces, secrets, GitRepository, Receiver; returns the first commit."""
        for namespace in (NAMESPACE, TARGET_NAMESPACE):
            self.core.create_namespace({"metadata": {"name": namespace}})
        self.core.create_namespaced_secret(
            NAMESPACE,
            {
                "metadata": {"name": "git-auth"},
                "stringData": {"username": "x-access-token", "password": self.token},
            },
        )
        self.core.create_namespaced_secret(
            NAMESPACE,
            {"metadata": {"name": "webhook-token"}, "stringData": {"token": WEBHOOK_TOKEN}},
        )
        sha = self.repo.commit(files, "first")
        source = {
            "interval": "60m",
            "url": self.repo.url,
            "ref": {"branch": "main"},
            "secretRef": {"name": "git-auth"},
        }
        self._create(
            SOURCE, _manifest("GitRepository", "app", source, "source.toolkit.fluxcd.io/v1")
        )
        receiver = {
            "type": "github",
            "events": ["push"],
            "secretRef": {"name": "webhook-token"},
            "resources": [
                {
                    "apiVersion": "source.toolkit.fluxcd.io/v1",
                    "kind": "GitRepository",
                    "name": "app",
                }
            ],
        }
        self._create(
            NOTIFICATION,
            _manifest("Receiver", "github", receiver, "notification.toolkit.fluxcd.io/v1"),
        )
        self.watches.start()
        deadline = time.monotonic() + TIMEOUT
        while not self.webhook_path:
            obj: Any = self.custom.get_namespaced_custom_object(
                *NOTIFICATION[:2], NAMESPACE, NOTIFICATION[2], "github"
            )
            self.webhook_path = str((obj.get("status") or {}).get("webhookPath") or "")
            if time.monotonic() > deadline:
                raise SystemExit(f"the Flux Receiver has no webhookPath: {obj.get('status')}")
            time.sleep(0.2)
        return sha

    def add_kustomization(self, name: str, path: str, namespace: str, wait: bool) -> float:
        """Create a Kustomization; the wall time it was sent."""
        sent = time.time()
        self._create(KUSTOMIZE, kustomization(name, path, namespace, wait))
        return sent

    def set_wait(self, name: str, wait: bool) -> None:
        self.custom.patch_namespaced_custom_object(
            *KUSTOMIZE[:2], NAMESPACE, KUSTOMIZE[2], name, {"spec": {"wait": wait}}
        )

    def request_reconcile(self, name: str) -> tuple[float, str]:
        """Ask for a reconcile now, as `flux reconcile` does; (wall time, the token)."""
        stamp = datetime.datetime.now(datetime.UTC).isoformat()
        sent = time.time()
        self.custom.patch_namespaced_custom_object(
            *KUSTOMIZE[:2],
            NAMESPACE,
            KUSTOMIZE[2],
            name,
            {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": stamp}}},
        )
        return sent, stamp

    def push(self, sha: str, url: str) -> httpx.Response:
        delivery = webhooks.github_push("acme/flux-app", sha, secret=WEBHOOK_TOKEN)
        return httpx.post(
            f"{url}{self.webhook_path}", content=delivery.body, headers=delivery.headers, timeout=30
        )

    def close(self) -> None:
        self.watches.stop()
        self.api.close()

    def _create(self, kind: tuple[str, str, str], body: dict[str, Any]) -> None:
        self.custom.create_namespaced_custom_object(kind[0], kind[1], NAMESPACE, kind[2], body)


def _admin_configuration(cluster: LocalCluster) -> client.Configuration:
    from kubernetes import config

    configuration = client.Configuration()
    config.load_kube_config(str(cluster.kubeconfig), client_configuration=configuration)
    return configuration


# -- the measures ----------------------------------------------------------------------------


@dataclass
class SideBySide:
    """Flux's figures and hooksync's, measured in the same run."""

    live: float = float("nan")  # Flux: push -> ConfigMap live (both wait settings), median
    ready_wait: float = float("nan")  # push -> Ready at the revision, wait: true
    ready_nowait: float = float("nan")  # push -> Ready at the revision, wait: false
    rows: list[tuple[str, str, str]] = field(default_factory=list)  # (measure, Flux, hooksync)
    notes: list[str] = field(default_factory=list)

    def table(self, hooksync_live: float, hooksync_status: float) -> str:
        lines = [f"{'measure':<58} {'Flux':>14} {'hooksync':>14}"]
        rows = [
            ("POST -> change live, median", f"{self.live:.2f} s", f"{hooksync_live:.2f} s"),
            (
                "POST -> done, health checked (Flux wait: true; hooksync status)",
                f"{self.ready_wait:.2f} s",
                f"{hooksync_status:.2f} s",
            ),
            (
                "POST -> done, Flux without health wait (wait: false)",
                f"{self.ready_nowait:.2f} s",
                "-",
            ),
            *self.rows,
        ]
        lines += [f"{a:<58} {b:>14} {c:>14}" for a, b, c in rows]
        lines += self.notes
        return "\n".join(lines)


def _revision_live(revision: str) -> Callable[[dict[str, Any]], bool]:
    def test(obj: dict[str, Any]) -> bool:
        name = (obj.get("metadata") or {}).get("name")
        return name == LIVE_CONFIGMAP and (obj.get("data") or {}).get("revision") == revision

    return test


def _ready(name: str, sha: str) -> Callable[[dict[str, Any]], bool]:
    def test(obj: dict[str, Any]) -> bool:
        return (obj.get("metadata") or {}).get("name") == name and ready_at(obj, sha)

    return test


def flux_pushes(
    setup: FluxSetup, url: str, runs: int, wait: bool
) -> tuple[list[float], list[float]]:
    """`runs` pushes of the 20-object app; (push -> live, push -> Ready) in seconds."""
    setup.set_wait("app", wait)
    live: list[float] = []
    ready: list[float] = []
    for run in range(runs):
        revision = f"flux-{uuid.uuid4().hex[:6]}-{run}"
        sha = setup.repo.commit(app(revision), f"revision {revision}")
        posted = time.time()
        answer = setup.push(sha, url)
        if answer.status_code >= 300:
            raise SystemExit(f"the Flux Receiver answered {answer.status_code}: {answer.text}")
        done = setup.watches.wait(posted, "kustomization", _ready("app", sha), TIMEOUT)
        seen = setup.watches.wait(posted, "configmap", _revision_live(revision), 10)
        live.append(seen.at - posted)
        ready.append(done.at - posted)
        print(
            f"  flux wait={str(wait).lower()} push {run + 1}: live {live[-1]:.2f} s, "
            f"Ready {ready[-1]:.2f} s",
            flush=True,
        )
    return live, ready


def flux_big(setup: FluxSetup, runs: int) -> tuple[list[float], list[float]]:
    """300 objects: first apply into a clean namespace, and a no-op reconcile; seconds."""
    sha = setup.repo.head()  # what the GitRepository has fetched last
    first: list[float] = []
    noop: list[float] = []
    for run in range(runs):
        namespace = f"fluxbig-{uuid.uuid4().hex[:6]}"
        setup.core.create_namespace({"metadata": {"name": namespace}})
        name = f"big-{run}"
        sent = setup.add_kustomization(name, BIG_PATH, namespace, wait=False)
        done = setup.watches.wait(sent, "kustomization", _ready(name, sha), TIMEOUT)
        first.append(done.at - sent)
        sent, stamp = setup.request_reconcile(name)

        def handled(obj: dict[str, Any], name: str = name, stamp: str = stamp) -> bool:
            status = obj.get("status") or {}
            return _ready(name, sha)(obj) and status.get("lastHandledReconcileAt") == stamp

        done = setup.watches.wait(sent, "kustomization", handled, TIMEOUT)
        noop.append(done.at - sent)
        print(
            f"  flux 300 objects {run + 1}: first apply {first[-1]:.2f} s, no-op {noop[-1]:.2f} s",
            flush=True,
        )
    return first, noop


def hooksync_big(
    cluster: LocalCluster, stack: DeliveryStack, runs: int
) -> tuple[list[float], list[float]]:
    """The same 300 objects by `hooksync-job apply` into a clean namespace, then `resync`."""
    bin_dir = cluster.control_plane.bin_dir
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKSYNC_")}
    env.update(
        KUBECONFIG=str(cluster.kubeconfig),
        HOOKSYNC_GIT_TOKEN=stack.git_token,
        PATH=os.pathsep.join([str(Path(sys.executable).parent), str(bin_dir), env["PATH"]]),
    )
    first: list[float] = []
    noop: list[float] = []
    core = client.CoreV1Api(stack.api)
    namespaces = [f"hsbig-{uuid.uuid4().hex[:6]}" for _ in range(runs)]
    # The health wait needs the Deployments rolled out, which the stand-in does for the
    # controller this control plane does not run.
    rollouts = RolloutStandIn(stack.api, namespaces, interval=0.1, workers=8).start()
    try:
        _hooksync_big_runs(core, env, stack, namespaces, first, noop)
    finally:
        rollouts.stop()
    return first, noop


def _hooksync_big_runs(
    core: client.CoreV1Api,
    env: dict[str, str],
    stack: DeliveryStack,
    namespaces: list[str],
    first: list[float],
    noop: list[float],
) -> None:
    for run, namespace in enumerate(namespaces):
        # As a target's namespace must be: Pod Security enforced (hooksync checks it first).
        core.create_namespace({"metadata": {"name": namespace, "labels": POD_SECURITY_BASELINE}})
        for mode, into in (("apply", first), ("resync", noop)):
            argv = [
                sys.executable,
                "-m",
                "jobimage.cli",
                mode,
                "--target",
                f"big{run}",
                "--clone-url",
                stack.clone_url(),
                "--branch",
                "main",
                "--path",
                BIG_PATH,
                "--namespace",
                namespace,
                "--prune",
                "--timeout",
                "120",
            ]
            started = time.perf_counter()
            done = subprocess.run(
                argv, env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=False
            )
            into.append(time.perf_counter() - started)
            result = json.loads(done.stdout.strip().splitlines()[-1]).get("result")
            if done.returncode != 0 or result not in ("success", "no-op"):
                raise SystemExit(f"hooksync-job {mode} exited {done.returncode}: {done.stdout}")
        print(
            f"  hooksync 300 objects {run + 1}: first apply {first[-1]:.2f} s, "
            f"no-op {noop[-1]:.2f} s",
            flush=True,
        )


def storm_flux(setup: FluxSetup, url: str, pushes: int, rate: float) -> tuple[float, float]:
    """`pushes` commits, then their webhooks at `rate`/s; seconds until the last is live and
    Ready (wait: true, as the push path measures done)."""
    setup.set_wait("app", True)
    tag = uuid.uuid4().hex[:6]
    revisions = [f"storm-{tag}-{n}" for n in range(pushes)]
    shas = [setup.repo.commit(app(r), f"storm {n}") for n, r in enumerate(revisions)]
    started = time.time()
    paced(rate, pushes, lambda i: setup.push(shas[i], url))
    done = setup.watches.wait(started, "kustomization", _ready("app", shas[-1]), 600)
    live = setup.watches.wait(started, "configmap", _revision_live(revisions[-1]), 10)
    return live.at - started, done.at - started


def storm_hooksync(stack: DeliveryStack, pushes: int, rate: float) -> tuple[float, float]:
    """The same storm through the receiver; until the last commit is live (a watch on the
    app's ConfigMap, as for Flux) and its final status reaches the host (the host's record)."""
    tag = uuid.uuid4().hex[:6]
    revisions = [f"storm-{tag}-{n}" for n in range(pushes)]
    shas = [stack.commit(app(r), f"storm {n}") for n, r in enumerate(revisions)]
    core = client.CoreV1Api(stack.api)
    configmaps = Watches(
        [("configmap", core.list_namespaced_config_map, (stack.target_namespace,))]
    ).start()
    try:
        started = time.time()
        paced(rate, pushes, lambda i: stack.push_event(shas[i]))
        status = stack.wait_final_status(shas[-1], timeout=600)
        live = configmaps.wait(started, "configmap", _revision_live(revisions[-1]), 10)
    finally:
        configmaps.stop()
    if status.get("state") != "success":
        raise SystemExit(f"hooksync storm: last status {status}")
    done = min(
        call.at
        for call in stack.host.calls
        if call.method == "POST"
        and call.path.endswith(f"/statuses/{shas[-1]}")
        and isinstance(call.body, dict)
        and call.body.get("state") == "success"
    )
    return live.at - started, done - started


def side_by_side(
    cluster: LocalCluster, scratch: Path, folder: Path, *, runs: int, quick: bool
) -> SideBySide:
    """Flux's figures and hooksync's, in the same run on the same cluster."""
    result = SideBySide()
    token = secrets.token_hex(16)
    big_runs = 1 if quick else 3
    storm = 40 if quick else 200
    with GitServer(scratch / "flux-git", token=token) as git:
        controllers = FluxControllers(cluster, folder, scratch / "flux")
        print("Flux: CRDs and controllers...", flush=True)
        controllers.install_crds()
        controllers.start()
        setup = FluxSetup(cluster, git, token)
        rollouts = RolloutStandIn(setup.api, [TARGET_NAMESPACE]).start()
        try:
            files: dict[str, str | None] = dict(app("flux-first"))
            files.update({f"{BIG_PATH}/{k}": v for k, v in big_manifests().items()})
            sha = setup.create(files)
            sent = setup.add_kustomization("app", APP_PATH, TARGET_NAMESPACE, wait=True)
            setup.watches.wait(sent, "kustomization", _ready("app", sha), TIMEOUT)
            time.sleep(5)
            idle = controllers.memory()
            url = controllers.receiver_url
            live_wait, result.ready_wait = _medians(flux_pushes(setup, url, runs, wait=True))
            live_nowait, result.ready_nowait = _medians(flux_pushes(setup, url, runs, wait=False))
            result.live = median([live_wait, live_nowait])
            controllers.check_running()
            flux_first, flux_noop = flux_big(setup, big_runs)
            flux_storm = storm_flux(setup, url, storm, 20.0)
            peak = controllers.memory()
        finally:
            rollouts.stop()
            setup.close()
            controllers.stop()

    stack = DeliveryStack(
        cluster, scratch / "hooksync-side", target="side", receiver_start_seconds=180.0
    )
    try:
        stack.start()
        stack.commit({f"{BIG_PATH}/{k}": v for k, v in big_manifests().items()}, "300 objects")
        receiver = stack.receivers[0].process
        assert receiver is not None
        time.sleep(5)
        hs_idle = memory(receiver.pid)
        ours_first, ours_noop = hooksync_big(cluster, stack, big_runs)
        stack.commit(app("warm"), "warm")
        ours_storm = storm_hooksync(stack, storm, 20.0)
        hs_peak = memory(receiver.pid)
    finally:
        stack.stop()

    result.rows += [
        (
            "300 objects, first apply, clean namespace, median",
            f"{median(flux_first):.2f} s",
            f"{median(ours_first):.2f} s",
        ),
        ("300 objects, no-op, median", f"{median(flux_noop):.2f} s", f"{median(ours_noop):.2f} s"),
        (
            f"{storm} pushes at 20/s: last commit live",
            f"{flux_storm[0]:.2f} s",
            f"{ours_storm[0]:.2f} s",
        ),
        (
            f"{storm} pushes at 20/s: last commit done (Ready / status)",
            f"{flux_storm[1]:.2f} s",
            f"{ours_storm[1]:.2f} s",
        ),
        (
            "idle memory (Flux: 3 controllers; hooksync: receiver)",
            f"{idle.rss_mb:.0f} MB",
            f"{hs_idle.rss_mb if hs_idle else float('nan'):.0f} MB",
        ),
        (
            "peak memory (VmHWM)",
            f"{peak.hwm_mb:.0f} MB",
            f"{hs_peak.hwm_mb if hs_peak else float('nan'):.0f} MB",
        ),
    ]
    result.notes += [
        "Flux's 300-object figures are Kustomization create / reconcile request -> Ready with "
        "wait: false (the source already fetched);",
        "hooksync's are `hooksync-job apply` / `resync` run directly (process start, fetch and "
        "health wait included).",
        "hooksync's memory leaves out its Jobs (about 50 MB each while one runs).",
    ]
    return result


def _medians(pair: tuple[list[float], list[float]]) -> tuple[float, float]:
    return median(pair[0]), median(pair[1])


__all__ = ["SideBySide", "built", "side_by_side"]
