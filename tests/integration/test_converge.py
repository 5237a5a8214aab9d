"""The converge engine end to end: `hooksync-job` against the local control plane, fetching real
Git repositories over token-protected HTTP, as the target's ServiceAccount under real RBAC.

Each test runs the command the way a Job does (a subprocess, or a real Job under the process
kubelet) and asserts what it leaves behind: objects, resourceVersions, the inventory, the
summary on stdout and the exit code.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from hooksync.inventory import decode_inventory, inventory_labels, parent_name
from hooksync.names import PRUNE, PRUNE_DISABLED, lease_name
from hooksync.summary import RunSummary
from world.cluster import LocalCluster
from world.gitserver import GitServer, Repo
from world.kubelet import wait_until

pytestmark = pytest.mark.cluster

GIT_TOKEN = f"git-{secrets.token_hex(12)}"
PATH_IN_REPO = "deploy"
EXIT_OK, EXIT_PERMANENT, EXIT_LEASE_HELD = 0, 2, 3
# Kinds whose objects the tests compare before and after a run.
WATCHED_KINDS = ("ConfigMap", "Service", "Deployment")


# --- manifests --------------------------------------------------------------------------------


def configmap(name: str, data: dict[str, str], annotations: dict[str, str] | None = None) -> str:
    metadata: dict[str, Any] = {"name": name}
    if annotations:
        metadata["annotations"] = annotations
    return yaml.safe_dump(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}
    )


def service(name: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {
                "selector": {"app": name},
                "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
            },
        }
    )


def deployment(name: str, replicas: int = 1, image: str = "registry.local/web:1") -> str:
    labels = {"app": name}
    return yaml.safe_dump(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "web", "image": image}]},
                },
            },
        }
    )


def shop_files(version: str = "v1") -> dict[str, str | bytes | None]:
    """The usual target: one ConfigMap, one Service and one Deployment, a file each."""
    return {
        f"{PATH_IN_REPO}/config.yaml": configmap("settings", {"version": version}),
        f"{PATH_IN_REPO}/service.yaml": service("web"),
        f"{PATH_IN_REPO}/deployment.yaml": deployment("web"),
    }


# --- the world around a target ----------------------------------------------------------------


@dataclass
class Run:
    """One finished `hooksync-job` process: exit code, parsed summary, raw output."""

    code: int
    summary: dict[str, Any]
    stdout: str
    stderr: str

    @property
    def result(self) -> str:
        return str(self.summary.get("result"))

    @property
    def counts(self) -> dict[str, int]:
        return dict(self.summary.get("counts") or {})

    def explain(self) -> str:
        return f"exit {self.code}\nstdout: {self.stdout}\nstderr: {self.stderr[-3000:]}"


def finished(process: subprocess.Popen[str], timeout: float = 120) -> Run:
    """Wait for a started `hooksync-job`; its summary is the last line of stdout."""
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    lines = [line for line in stdout.splitlines() if line.strip()]
    summary = json.loads(lines[-1]) if lines else {}
    return Run(process.returncode, summary, stdout, stderr)


@dataclass
class Target:
    """One hooksync target: its repo, namespace, and a kubeconfig for its ServiceAccount."""

    name: str
    namespace: str
    account: str
    repo: Repo
    kubeconfig: Path
    admin_kubeconfig: Path
    bin_dir: Path
    branch: str = "main"
    path: str = PATH_IN_REPO
    timeout: int = 60
    env: dict[str, str] = field(default_factory=dict)  # more environment for the command

    def argv(self, mode: str, *extra: str, branch: str | None = None) -> list[str]:
        return [
            sys.executable, "-m", "jobimage.cli", mode,
            "--target", self.name,
            "--clone-url", self.repo.url,
            "--branch", branch or self.branch,
            "--path", self.path,
            "--namespace", self.namespace,
            "--timeout", str(self.timeout),
            *extra,
        ]  # fmt: skip

    def environment(self, token: str | None, kubeconfig: Path | None) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("KUBERNETES_", "HOOKSYNC_"))
        }
        # Like the Job image: git and kustomize on PATH.
        env["PATH"] = os.pathsep.join([str(self.bin_dir), env.get("PATH", "/usr/bin:/bin")])
        env["KUBECONFIG"] = str(kubeconfig or self.kubeconfig)
        if token is not None:
            env["HOOKSYNC_GIT_TOKEN"] = token
        return env | self.env

    def start(
        self,
        mode: str = "apply",
        *extra: str,
        branch: str | None = None,
        token: str | None = GIT_TOKEN,
        kubeconfig: Path | None = None,
    ) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(mode, *extra, branch=branch),
            env=self.environment(token, kubeconfig),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(
        self,
        mode: str = "apply",
        *extra: str,
        branch: str | None = None,
        token: str | None = GIT_TOKEN,
        kubeconfig: Path | None = None,
    ) -> Run:
        process = self.start(mode, *extra, branch=branch, token=token, kubeconfig=kubeconfig)
        return finished(process)

    def converge(self, mode: str = "apply", *extra: str) -> Run:
        """Run and insist on success: for the steps a test builds on, not the one it checks."""
        run = self.run(mode, *extra)
        assert run.code == EXIT_OK and run.result in ("success", "no-op"), run.explain()
        return run


def grant_target_role(kube: client.ApiClient, namespace: str, account: str) -> None:
    """ServiceAccount + Role + RoleBinding: what the engine needs, in `namespace` only."""
    core = client.CoreV1Api(kube)
    rbac = client.RbacAuthorizationV1Api(kube)
    verbs = ["get", "list", "watch", "create", "update", "patch", "delete"]
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=account))
    )
    rules = [
        client.V1PolicyRule(
            api_groups=[""],
            resources=["configmaps", "services", "secrets", "serviceaccounts"],
            verbs=verbs,
        ),
        client.V1PolicyRule(
            api_groups=["apps"],
            resources=["deployments", "statefulsets", "daemonsets"],
            verbs=verbs,
        ),
        client.V1PolicyRule(api_groups=["batch"], resources=["jobs"], verbs=verbs),
        client.V1PolicyRule(api_groups=["coordination.k8s.io"], resources=["leases"], verbs=verbs),
        # The Job reads its namespace's Pod Security label.
        client.V1PolicyRule(api_groups=[""], resources=["namespaces"], verbs=["get"]),
    ]
    rbac.create_namespaced_role(
        namespace, client.V1Role(metadata=client.V1ObjectMeta(name=account), rules=rules)
    )
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name=account),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="Role", name=account
            ),
            subjects=[
                client.RbacV1Subject(kind="ServiceAccount", name=account, namespace=namespace)
            ],
        ),
    )


def service_account_token(kube: client.ApiClient, namespace: str, account: str) -> str:
    """A short-lived token for the ServiceAccount, minted with the TokenRequest API."""
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
    )
    answer = client.CoreV1Api(kube).create_namespaced_service_account_token(
        account, namespace, request
    )
    return str(answer.status.token)


class RolloutStandIn:
    """Plays the deployment controller, which the local control plane does not run: whenever a
    Deployment's generation is ahead of its status, report it observed and fully rolled out."""

    def __init__(self, kube: client.ApiClient, namespace: str) -> None:
        self.apps = client.AppsV1Api(kube)
        self.namespace = namespace
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rollout-stand-in", daemon=True)

    def __enter__(self) -> RolloutStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            try:
                for item in self.apps.list_namespaced_deployment(self.namespace).items:
                    observed = item.status.observed_generation if item.status else None
                    if observed != item.metadata.generation:
                        report_rolled_out(self.apps, item)
            except ApiException:
                continue


def report_rolled_out(apps: client.AppsV1Api, item: Any) -> None:
    """Patch a Deployment's status subresource as the controller would after a rollout."""
    replicas = item.spec.replicas if item.spec.replicas is not None else 1
    status = {
        "observedGeneration": item.metadata.generation,
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
    }
    apps.patch_namespaced_deployment_status(
        item.metadata.name, item.metadata.namespace, {"status": status}
    )


@pytest.fixture(scope="module")
def git(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    """One token-protected Git server for the module; each test makes its own repository."""
    with GitServer(tmp_path_factory.mktemp("git"), token=GIT_TOKEN) as server:
        yield server


@pytest.fixture
def target(
    cluster: LocalCluster,
    kube: client.ApiClient,
    namespace: str,
    git: GitServer,
    tmp_path: Path,
) -> Target:
    """A target converging `namespace` from a fresh repository, as its own ServiceAccount."""
    name = f"shop{uuid.uuid4().hex[:6]}"
    account = f"hooksync-{name}"
    grant_target_role(kube, namespace, account)
    kubeconfig = cluster.control_plane.write_kubeconfig(
        tmp_path / "kubeconfig", service_account_token(kube, namespace, account), user=account
    )
    assert cluster.control_plane.bin_dir is not None
    return Target(
        name=name,
        namespace=namespace,
        account=account,
        repo=git.create_repo(name),
        kubeconfig=kubeconfig,
        admin_kubeconfig=cluster.kubeconfig,
        bin_dir=cluster.control_plane.bin_dir,
    )


@pytest.fixture
def rollouts(kube: client.ApiClient, namespace: str) -> Iterator[RolloutStandIn]:
    with RolloutStandIn(kube, namespace) as stand_in:
        yield stand_in


@pytest.fixture
def other_namespace(kube: client.ApiClient) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(kube)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        core.delete_namespace(name, propagation_policy="Background")


# --- reading the cluster ----------------------------------------------------------------------


@dataclass
class Live:
    """What a namespace holds of the watched kinds: (kind, name) -> object dict."""

    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def versions(self) -> dict[tuple[str, str], str]:
        return {key: obj["metadata"]["resource_version"] for key, obj in self.objects.items()}

    def names(self) -> set[tuple[str, str]]:
        return set(self.objects)


def live_objects(kube: client.ApiClient, namespace: str) -> Live:
    core, apps = client.CoreV1Api(kube), client.AppsV1Api(kube)
    listings: dict[str, Callable[[str], Any]] = {
        "ConfigMap": core.list_namespaced_config_map,
        "Service": core.list_namespaced_service,
        "Deployment": apps.list_namespaced_deployment,
    }
    live = Live()
    for kind in WATCHED_KINDS:
        for item in listings[kind](namespace).items:
            if item.metadata.name == "kube-root-ca.crt":  # published by a controller, any time
                continue
            live.objects[(kind, item.metadata.name)] = item.to_dict()
    return live


def changed_between(before: Live, after: Live) -> set[tuple[str, str]]:
    """Objects whose resourceVersion moved, appeared, or vanished."""
    old, new = before.versions(), after.versions()
    return {key for key in old.keys() | new.keys() if old.get(key) != new.get(key)}


def inventory_of(kube: client.ApiClient, target: Target) -> tuple[str | None, list[str]]:
    """What the inventory ConfigMap records: (SHA, objects as Kind/name)."""
    parent = client.CoreV1Api(kube).read_namespaced_config_map(
        parent_name(target.name), target.namespace
    )
    record = decode_inventory(parent.data)
    return record.sha, sorted(str(ref) for ref in record.objects)


def configmap_data(kube: client.ApiClient, namespace: str, name: str) -> dict[str, str]:
    return dict(client.CoreV1Api(kube).read_namespaced_config_map(name, namespace).data or {})


def inventory_key(target: Target) -> tuple[str, str]:
    return ("ConfigMap", parent_name(target.name))


# --- apply, no-op, edit, prune ----------------------------------------------------------------


def test_apply_creates_then_noop_then_changes_one_then_prunes_one(
    kube: client.ApiClient, target: Target, rollouts: RolloutStandIn
) -> None:
    first_sha = target.repo.commit(shop_files("v1"), "first")

    first = target.run()
    assert first.code == EXIT_OK, first.explain()
    assert first.result == "success" and first.summary["sha"] == first_sha
    assert first.counts["created"] == 3 and first.counts["pruned"] == 0
    after_first = live_objects(kube, target.namespace)
    assert after_first.names() == {
        ("ConfigMap", "settings"), ("Service", "web"), ("Deployment", "web"),
        inventory_key(target),
    }  # fmt: skip
    labels = inventory_labels(target.name, target.namespace)
    for key, obj in after_first.objects.items():
        if key != inventory_key(target):
            assert labels.items() <= obj["metadata"]["labels"].items(), key
    sha, recorded = inventory_of(kube, target)
    assert sha == first_sha
    assert recorded == ["ConfigMap/settings", "Deployment/web", "Service/web"]

    # Same head again: nothing to do, and nothing written, inventory included.
    again = target.run()
    assert again.code == EXIT_OK, again.explain()
    assert again.result == "no-op" and again.summary["sha"] == first_sha
    assert changed_between(after_first, live_objects(kube, target.namespace)) == set()

    # One object edited in Git: exactly that object changes (and the inventory records it).
    edit_sha = target.repo.commit(
        {f"{PATH_IN_REPO}/config.yaml": configmap("settings", {"version": "v2"})}, "edit"
    )
    edited = target.run()
    assert edited.code == EXIT_OK, edited.explain()
    assert edited.counts["configured"] == 1 and edited.counts["unchanged"] == 2
    assert edited.summary["objects"] == ["ConfigMap/settings"]
    after_edit = live_objects(kube, target.namespace)
    assert changed_between(after_first, after_edit) == {
        ("ConfigMap", "settings"), inventory_key(target)
    }  # fmt: skip
    assert configmap_data(kube, target.namespace, "settings") == {"version": "v2"}
    assert inventory_of(kube, target)[0] == edit_sha

    # A file removed from Git: its object is pruned, and nothing else moves.
    prune_sha = target.repo.commit({f"{PATH_IN_REPO}/service.yaml": None}, "drop the service")
    pruned = target.run()
    assert pruned.code == EXIT_OK, pruned.explain()
    assert pruned.counts["pruned"] == 1 and pruned.counts["unchanged"] == 2
    assert pruned.summary["objects"] == ["-Service/web"]
    after_prune = live_objects(kube, target.namespace)
    assert changed_between(after_edit, after_prune) == {("Service", "web"), inventory_key(target)}
    assert ("Service", "web") not in after_prune.names()
    sha, recorded = inventory_of(kube, target)
    assert sha == prune_sha and recorded == ["ConfigMap/settings", "Deployment/web"]


def test_prune_spares_other_targets_unlabelled_objects_and_prune_disabled(
    kube: client.ApiClient, target: Target, other_namespace: str
) -> None:
    # Run as admin here, so that only the engine's own rules (not RBAC) keep prune inside its
    # target: with the target's Role, a stray delete elsewhere would merely be forbidden.
    core = client.CoreV1Api(kube)
    ns = target.namespace
    target.repo.commit(
        {
            f"{PATH_IN_REPO}/old.yaml": configmap("old", {"k": "v"}) + "---\n" + service("old"),
            f"{PATH_IN_REPO}/kept.yaml": configmap("kept", {"k": "v"}, {PRUNE: PRUNE_DISABLED}),
            f"{PATH_IN_REPO}/stays.yaml": configmap("stays", {"k": "v"}),
        },
        "first",
    )
    target.converge()

    def create_configmap(namespace: str, name: str, labels: dict[str, str] | None) -> None:
        meta = client.V1ObjectMeta(name=name, labels=labels)
        core.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata=meta))

    def create_service(namespace: str, name: str, labels: dict[str, str] | None) -> None:
        spec = client.V1ServiceSpec(ports=[client.V1ServicePort(port=80)])
        meta = client.V1ObjectMeta(name=name, labels=labels)
        core.create_namespaced_service(namespace, client.V1Service(metadata=meta, spec=spec))

    # Another target's objects and hand-made ones beside ours...
    other_labels = inventory_labels("another", ns)
    create_configmap(ns, "another-config", other_labels)
    create_service(ns, "another-web", other_labels)
    create_configmap(ns, "hand-made", None)
    create_service(ns, "hand-made", None)
    # ...and, elsewhere, namesakes of what is about to be pruned, even with this target's labels.
    own_labels = inventory_labels(target.name, ns)
    create_configmap(other_namespace, "old", own_labels)
    create_service(other_namespace, "old", own_labels)
    create_configmap(other_namespace, "kept", None)
    before = live_objects(kube, ns)
    elsewhere = live_objects(kube, other_namespace)

    target.repo.commit(
        {f"{PATH_IN_REPO}/old.yaml": None, f"{PATH_IN_REPO}/kept.yaml": None}, "drop old and kept"
    )
    run = target.run(kubeconfig=target.admin_kubeconfig)
    assert run.code == EXIT_OK, run.explain()
    assert run.counts["pruned"] == 2
    assert sorted(run.summary["objects"]) == ["-ConfigMap/old", "-Service/old"]
    after = live_objects(kube, ns)
    assert changed_between(before, after) == {
        ("ConfigMap", "old"), ("Service", "old"), inventory_key(target)
    }  # fmt: skip
    assert ("ConfigMap", "kept") in after.names()
    assert changed_between(elsewhere, live_objects(kube, other_namespace)) == set()
    assert inventory_of(kube, target)[1] == ["ConfigMap/stays"]


@pytest.mark.parametrize(
    "emptiness",
    [
        pytest.param(
            {f"{PATH_IN_REPO}/empty.yaml": "---\n# nothing yet\n---\n\n"}, id="empty-docs"
        ),
        pytest.param({f"{PATH_IN_REPO}/README.md": "manifests go here\n"}, id="no-yaml"),
    ],
)
def test_render_with_zero_objects_prunes_nothing(
    kube: client.ApiClient,
    target: Target,
    rollouts: RolloutStandIn,
    emptiness: dict[str, str | bytes | None],
) -> None:
    target.repo.commit(shop_files(), "first")
    target.converge()
    before = live_objects(kube, target.namespace)

    everything_gone: dict[str, str | bytes | None] = dict.fromkeys(shop_files())
    target.repo.commit(everything_gone | emptiness, "empty the folder")
    run = target.run()
    assert run.code == EXIT_OK, run.explain()
    assert run.counts["pruned"] == 0
    after = live_objects(kube, target.namespace)
    assert after.names() == before.names()
    assert changed_between(before, after) - {inventory_key(target)} == set()

    # The objects stay prunable: once Git has objects again, the ones it dropped go.
    target.repo.commit(
        {f"{PATH_IN_REPO}/config.yaml": configmap("settings", {"version": "v1"})}, "one back"
    )
    back = target.run()
    assert back.code == EXIT_OK, back.explain()
    assert sorted(back.summary["objects"]) == ["-Deployment/web", "-Service/web"]
    assert live_objects(kube, target.namespace).names() == {
        ("ConfigMap", "settings"), inventory_key(target)
    }  # fmt: skip


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        pytest.param(
            yaml.safe_dump(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "sneaky-ns"}}
            ),
            "Namespace is cluster-scoped",
            id="namespace",
        ),
        pytest.param(
            yaml.safe_dump(
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRole",
                    "metadata": {"name": "sneaky-role"},
                    "rules": [],
                }
            ),
            "ClusterRole is cluster-scoped",
            id="clusterrole",
        ),
        pytest.param(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "elsewhere", "namespace": "kube-system"},
                }
            ),
            "is in namespace 'kube-system'",
            id="foreign-namespace",
        ),
    ],
)
def test_object_outside_the_namespace_fails_permanently_and_applies_nothing(
    kube: client.ApiClient, target: Target, bad: str, expected: str
) -> None:
    target.repo.commit({f"{PATH_IN_REPO}/config.yaml": configmap("settings", {"v": "1"})}, "ok")
    target.converge()
    before = live_objects(kube, target.namespace)

    target.repo.commit(
        {
            f"{PATH_IN_REPO}/config.yaml": configmap("settings", {"v": "2"}),
            f"{PATH_IN_REPO}/fresh.yaml": configmap("fresh", {"v": "2"}),
            f"{PATH_IN_REPO}/zz-bad.yaml": bad,
        },
        "bad",
    )
    run = target.run()
    assert run.code == EXIT_PERMANENT, run.explain()
    assert run.result == "failure"
    assert expected in run.summary["message"] and "zz-bad.yaml" in run.summary["message"]
    assert changed_between(before, live_objects(kube, target.namespace)) == set()
    names = {ns.metadata.name for ns in client.CoreV1Api(kube).list_namespace().items}
    assert "sneaky-ns" not in names
    roles = client.RbacAuthorizationV1Api(kube).list_cluster_role().items
    assert "sneaky-role" not in {role.metadata.name for role in roles}


def test_apply_converges_the_branch_head_not_an_older_commit(
    kube: client.ApiClient, target: Target
) -> None:
    older = target.repo.commit(
        {f"{PATH_IN_REPO}/config.yaml": configmap("settings", {"version": "older"})}, "older"
    )
    newest = target.repo.commit(
        {f"{PATH_IN_REPO}/config.yaml": configmap("settings", {"version": "newest"})}, "newest"
    )
    # The Job for the older push starts only now; its args carry no SHA, so it takes the head.
    run = target.run()
    assert run.code == EXIT_OK, run.explain()
    assert run.summary["sha"] == newest != older
    assert configmap_data(kube, target.namespace, "settings") == {"version": "newest"}
    assert inventory_of(kube, target)[0] == newest

    # Even handed the older SHA, an apply converges the head: an old event cannot roll back.
    stale = target.run("apply", "--sha", older)
    assert stale.code == EXIT_OK, stale.explain()
    assert stale.summary["sha"] == newest
    assert configmap_data(kube, target.namespace, "settings") == {"version": "newest"}
    assert inventory_of(kube, target)[0] == newest


def test_two_converges_at_once_end_at_the_head(kube: client.ApiClient, target: Target) -> None:
    names = [f"cm-{i:02d}" for i in range(12)]

    def files(version: str) -> dict[str, str | bytes | None]:
        return {f"{PATH_IN_REPO}/{n}.yaml": configmap(n, {"version": version}) for n in names}

    target.repo.commit(files("v1"), "v1")
    target.converge()
    target.repo.commit(files("v2"), "v2")

    # Two converges start together, and a push lands between their starts, so they may well
    # see different heads. Whichever order they run in, the namespace must end at the head.
    first = target.start()
    head = target.repo.commit(files("v3"), "v3")
    second = target.start()
    runs = [finished(first), finished(second)]
    codes = sorted(run.code for run in runs)
    assert codes in ([EXIT_OK, EXIT_OK], [EXIT_OK, EXIT_LEASE_HELD]), [r.explain() for r in runs]
    if EXIT_LEASE_HELD in codes:
        assert {run.result for run in runs} == {"success", "lease-held"}
        target.converge()  # what the Job's retry does
    else:
        assert second.returncode == EXIT_OK and runs[1].summary["sha"] == head

    versions = {configmap_data(kube, target.namespace, n)["version"] for n in names}
    assert versions == {"v3"}
    assert inventory_of(kube, target)[0] == head


# --- the Lease --------------------------------------------------------------------------------


def put_lease(kube: client.ApiClient, target: Target, holder: str, renewed_ago: float) -> None:
    renewed = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=renewed_ago)
    body = client.V1Lease(
        metadata=client.V1ObjectMeta(name=lease_name(target.name)),
        spec=client.V1LeaseSpec(
            holder_identity=holder,
            lease_duration_seconds=30,
            acquire_time=renewed,
            renew_time=renewed,
        ),
    )
    client.CoordinationV1Api(kube).create_namespaced_lease(target.namespace, body)


def read_lease(kube: client.ApiClient, target: Target) -> Any:
    return client.CoordinationV1Api(kube).read_namespaced_lease(
        lease_name(target.name), target.namespace
    )


def test_lease_held_by_a_live_holder_exits_3_and_applies_nothing(
    kube: client.ApiClient, target: Target
) -> None:
    target.repo.commit({f"{PATH_IN_REPO}/config.yaml": configmap("settings", {"v": "1"})}, "1")
    put_lease(kube, target, "hooksync-shop-apply-abc1234-x7k2p", renewed_ago=0)
    # A converge waits a little for a running one before it gives up; keep that wait short.
    target.env["HOOKSYNC_LEASE_WAIT_SECONDS"] = "2"
    target.timeout = 5

    run = target.run()
    assert run.code == EXIT_LEASE_HELD, run.explain()
    assert run.result == "lease-held"
    assert "hooksync-shop-apply-abc1234-x7k2p" in run.summary["message"]
    assert live_objects(kube, target.namespace).names() == set()
    assert read_lease(kube, target).spec.holder_identity == "hooksync-shop-apply-abc1234-x7k2p"


def test_expired_lease_is_taken_over(kube: client.ApiClient, target: Target) -> None:
    sha = target.repo.commit(
        {f"{PATH_IN_REPO}/config.yaml": configmap("settings", {"v": "1"})}, "1"
    )
    put_lease(kube, target, "a-pod-that-died", renewed_ago=3600)

    run = target.run()
    assert run.code == EXIT_OK, run.explain()
    assert run.result == "success" and run.summary["sha"] == sha
    assert configmap_data(kube, target.namespace, "settings") == {"v": "1"}
    lease = read_lease(kube, target)
    assert lease.spec.holder_identity is None  # released at the end
    assert lease.spec.lease_transitions == 1


# --- preview, drift, health -------------------------------------------------------------------


def test_preview_reports_counts_of_a_pull_request_and_changes_nothing(
    kube: client.ApiClient, target: Target, rollouts: RolloutStandIn
) -> None:
    target.repo.commit(shop_files("v1"), "main")
    target.converge()
    pr_head = target.repo.commit(
        {
            f"{PATH_IN_REPO}/config.yaml": configmap("settings", {"version": "v2"}),
            f"{PATH_IN_REPO}/service.yaml": None,
            f"{PATH_IN_REPO}/extra.yaml": configmap("extra", {"new": "yes"}),
        },
        "a pull request",
        branch="feature",
    )
    before = live_objects(kube, target.namespace)

    run = target.run("preview", "--sha", pr_head)
    assert run.code == EXIT_OK, run.explain()
    assert run.result == "success" and run.summary["mode"] == "preview"
    assert run.summary["sha"] == pr_head
    assert run.counts == {
        "created": 1, "configured": 1, "unchanged": 1, "pruned": 1, "drifted": 0
    }  # fmt: skip
    assert sorted(run.summary["objects"]) == [
        "-Service/web", "ConfigMap/extra", "ConfigMap/settings"
    ]  # fmt: skip
    assert changed_between(before, live_objects(kube, target.namespace)) == set()
    assert configmap_data(kube, target.namespace, "settings") == {"version": "v1"}


def test_resync_reports_and_reverts_drift(
    kube: client.ApiClient, target: Target, rollouts: RolloutStandIn
) -> None:
    sha = target.repo.commit(shop_files(), "first")
    target.converge()
    apps = client.AppsV1Api(kube)
    apps.patch_namespaced_deployment("web", target.namespace, {"spec": {"replicas": 3}})
    before = live_objects(kube, target.namespace)

    run = target.run("resync")
    assert run.code == EXIT_OK, run.explain()
    assert run.result == "success" and run.summary["sha"] == sha
    assert run.counts["drifted"] == 1
    assert run.summary["drifted"] == ["Deployment/web"]
    assert "Deployment/web" in run.summary["message"]
    assert apps.read_namespaced_deployment("web", target.namespace).spec.replicas == 1
    assert changed_between(before, live_objects(kube, target.namespace)) == {("Deployment", "web")}


def report_rollout_later(
    kube: client.ApiClient,
    namespace: str,
    name: str,
    generation: int,
    process: subprocess.Popen[str],
    seen_running: list[bool],
) -> threading.Thread:
    """Once the Deployment reaches `generation`, wait a little and report it rolled out, as
    the controller would; record whether the apply was still waiting at that moment."""
    apps = client.AppsV1Api(kube)

    def reached() -> Any:
        try:
            item = apps.read_namespaced_deployment(name, namespace)
        except ApiException:
            return None
        return item if (item.metadata.generation or 0) >= generation else None

    def work() -> None:
        item = wait_until(reached, 60, interval=0.1)
        time.sleep(1.5)
        seen_running.append(process.poll() is None)
        report_rolled_out(apps, item)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def test_apply_waits_for_the_deployment_to_roll_out(kube: client.ApiClient, target: Target) -> None:
    target.repo.commit(shop_files(), "first")
    process = target.start()
    seen_running: list[bool] = []
    report_rollout_later(kube, target.namespace, "web", 1, process, seen_running).join(60)
    run = finished(process)
    assert run.code == EXIT_OK, run.explain()
    assert run.result == "success"
    assert seen_running == [True]

    # A new template bumps the generation: the status written for the old one is stale, so the
    # apply waits for the controller to observe the new generation.
    target.repo.commit(
        {f"{PATH_IN_REPO}/deployment.yaml": deployment("web", image="registry.local/web:2")}, "2"
    )
    process = target.start()
    seen_running = []
    report_rollout_later(kube, target.namespace, "web", 2, process, seen_running).join(60)
    run = finished(process)
    assert run.code == EXIT_OK, run.explain()
    assert run.counts["configured"] == 1
    assert seen_running == [True]


def test_apply_fails_naming_the_deployment_that_never_becomes_ready(
    kube: client.ApiClient, target: Target
) -> None:
    target.repo.commit(shop_files(), "first")
    target.timeout = 5
    run = target.run()
    assert run.code == EXIT_PERMANENT, run.explain()
    assert run.result == "failure"
    assert "not ready" in run.summary["message"]
    assert "Deployment/web" in run.summary["message"]
    # What was applied stays recorded, at no SHA, so the next run tries again.
    sha, recorded = inventory_of(kube, target)
    assert sha is None and "Deployment/web" in recorded


# --- kustomize, Git errors --------------------------------------------------------------------


def test_kustomization_is_applied_with_the_names_kustomize_generates(
    kube: client.ApiClient, target: Target, tmp_path: Path
) -> None:
    files: dict[str, str | bytes | None] = {
        f"{PATH_IN_REPO}/kustomization.yaml": yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "namePrefix": "shop-",
                "resources": ["service.yaml"],
                "configMapGenerator": [{"name": "settings", "literals": ["colour=blue"]}],
            }
        ),
        f"{PATH_IN_REPO}/service.yaml": service("web"),
    }
    sha = target.repo.commit(files, "kustomize")
    # What kustomize itself makes of the same files: the names to expect.
    for path, content in files.items():
        (tmp_path / "k" / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "k" / path).write_text(str(content))
    built = subprocess.run(
        [str(target.bin_dir / "kustomize"), "build", str(tmp_path / "k" / PATH_IN_REPO)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    expected = {(doc["kind"], doc["metadata"]["name"]) for doc in yaml.safe_load_all(built.stdout)}
    generated = [name for kind, name in expected if kind == "ConfigMap"]
    assert len(generated) == 1 and generated[0].startswith("shop-settings-")

    run = target.run()
    assert run.code == EXIT_OK, run.explain()
    assert run.summary["sha"] == sha and run.counts["created"] == 2
    live = live_objects(kube, target.namespace).names() - {inventory_key(target)}
    assert live == expected
    assert configmap_data(kube, target.namespace, generated[0]) == {"colour": "blue"}


def test_missing_branch_fails_permanently_with_a_clear_message(
    kube: client.ApiClient, target: Target
) -> None:
    target.repo.commit(shop_files(), "first")
    run = target.run(branch="no-such-branch")
    assert run.code == EXIT_PERMANENT, run.explain()
    assert run.result == "failure"
    assert "branch 'no-such-branch' not found" in run.summary["message"]
    assert live_objects(kube, target.namespace).names() == set()


def test_wrong_token_fails_permanently_and_never_shows_the_token(
    kube: client.ApiClient, target: Target
) -> None:
    target.repo.commit(shop_files(), "first")
    wrong = f"wrong-{secrets.token_hex(12)}"
    run = target.run(token=wrong)
    assert run.code == EXIT_PERMANENT, run.explain()
    assert run.result == "failure"
    assert "authentication" in run.summary["message"].lower()
    encoded = base64.b64encode(f"x-access-token:{wrong}".encode()).decode()
    for secret in (wrong, encoded, GIT_TOKEN):
        assert secret not in run.stdout and secret not in run.stderr
    assert live_objects(kube, target.namespace).names() == set()


# --- a real Job -------------------------------------------------------------------------------

CONTAINER = "converge"


def converge_job(name: str, target: Target, git_secret: str) -> dict[str, Any]:
    """The Job the receiver would create: explicit command, the target's ServiceAccount, the
    Git token from a Secret, and no retries for a permanent failure (exit code 2)."""
    argv = target.argv("apply")
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 3,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": CONTAINER,
                            "operator": "In",
                            "values": [EXIT_PERMANENT],
                        },
                    }
                ]
            },
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": target.account,
                    "containers": [
                        {
                            "name": CONTAINER,
                            "image": "ghcr.io/hooksync/hooksync-job:test",
                            "command": argv[:3],
                            "args": argv[3:],
                            "env": [
                                {
                                    "name": "POD_NAME",
                                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                                },
                                {
                                    "name": "HOOKSYNC_GIT_TOKEN",
                                    "valueFrom": {
                                        "secretKeyRef": {"name": git_secret, "key": "token"}
                                    },
                                },
                            ],
                            "terminationMessagePolicy": "FallbackToLogsOnError",
                        }
                    ],
                }
            },
        },
    }


def run_job(kube: client.ApiClient, target: Target, name: str) -> tuple[Any, list[Any]]:
    """Create the converge Job, wait for it to finish; return the Job and its pods."""
    core, batch = client.CoreV1Api(kube), client.BatchV1Api(kube)
    secret = f"{name}-git"
    core.create_namespaced_secret(
        target.namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=secret), string_data={"token": GIT_TOKEN}
        ),
    )
    batch.create_namespaced_job(target.namespace, converge_job(name, target, secret))

    def finished() -> Any:
        job = batch.read_namespaced_job(name, target.namespace)
        done = [c for c in job.status.conditions or [] if c.type in ("Complete", "Failed")]
        return job if any(c.status == "True" for c in done) else None

    job = wait_until(finished, 90, interval=0.3)
    pods = core.list_namespaced_pod(target.namespace, label_selector=f"job-name={name}").items
    return job, pods


def termination_summary(pod: Any) -> RunSummary:
    terminated = pod.status.container_statuses[0].state.terminated
    summary = RunSummary.from_json(terminated.message)
    assert summary is not None, terminated.message
    return summary


def test_job_under_the_process_kubelet_completes_with_a_summary(
    kube: client.ApiClient, target: Target
) -> None:
    sha = target.repo.commit(
        {
            f"{PATH_IN_REPO}/config.yaml": configmap("settings", {"v": "1"}),
            f"{PATH_IN_REPO}/service.yaml": service("web"),
        },
        "first",
    )
    job, pods = run_job(kube, target, "hooksync-apply-1")
    conditions = {c.type: c.status for c in job.status.conditions}
    assert conditions.get("Complete") == "True", [pod.status.to_dict() for pod in pods]
    assert len(pods) == 1
    summary = termination_summary(pods[0])
    assert summary.result == "success" and summary.sha == sha
    assert summary.counts["created"] == 2
    assert configmap_data(kube, target.namespace, "settings") == {"v": "1"}
    assert inventory_of(kube, target)[0] == sha


def test_job_with_a_cluster_scoped_object_fails_without_retries(
    kube: client.ApiClient, target: Target
) -> None:
    target.repo.commit(
        {
            f"{PATH_IN_REPO}/config.yaml": configmap("settings", {"v": "1"}),
            f"{PATH_IN_REPO}/namespace.yaml": yaml.safe_dump(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "not-allowed"}}
            ),
        },
        "cluster-scoped",
    )
    job, pods = run_job(kube, target, "hooksync-apply-2")
    failed = next(c for c in job.status.conditions if c.type == "Failed")
    assert failed.status == "True" and failed.reason == "PodFailurePolicy"
    assert len(pods) == 1 and job.status.failed == 1
    terminated = pods[0].status.container_statuses[0].state.terminated
    assert terminated.exit_code == EXIT_PERMANENT
    summary = termination_summary(pods[0])
    assert summary.result == "failure" and "cluster-scoped" in summary.message
    assert live_objects(kube, target.namespace).names() == set()
