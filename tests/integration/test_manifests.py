"""The install manifests (k8s/) on the real control plane: what each identity may and may not do.

`kubectl apply -k` installs the base and the example target exactly as a user would. Then the
receiver's and the target's ServiceAccounts get real tokens (TokenRequest), and the receiver's
and the Job's own code (Job and CronJob manifests, leader election, server-side apply, the
target Lease) runs as them: RBAC must allow all of it, and refuse anything outside the
namespaces each identity is meant for. The control plane runs no Deployment controller, so the
receiver's pods never start here; the objects themselves are what is tested.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from hooksync import names
from hooksync.config import Config, parse_config
from hooksync.inventory import ObjectRef
from hooksync.leases import CoordinationLeases, Lease
from hooksync.names import resync_cronjob_name
from jobimage.errors import PermanentError
from jobimage.kube import Cluster
from jobimage.kubeclient import connect
from jobimage.lease import TargetLease
from jobimage.podsecurity import ENFORCE_LABEL
from receiver.cli import parse_args
from receiver.dispatch.cronjobs import reconcile_cronjobs
from receiver.dispatch.manifests import build_job
from receiver.pages.status import STATUS_TOKEN_ENV
from receiver.pages.sync import SYNC_TOKEN_ENV
from receiver.reporting.leader import LeaderElector
from world.cluster import LocalCluster
from world.controlplane import binaries_dir, run_kubectl
from world.kubelet import wait_until

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "k8s"
TARGET_DIR = BASE / "examples" / "target-shop"
JOBS_NS = "hooksync"
TARGET_NS = "shop"
RECEIVER_SA = "hooksync-receiver"
TARGET_SA = "hooksync-shop"
GIT_SECRET = "hooksync-shop-git"
SHA = "0123456789abcdef0123456789abcdef01234567"
# Rules every authenticated identity has (system:basic-user); nothing else may show up.
SELF_REVIEWS = {
    "selfsubjectreviews.authentication.k8s.io",
    "selfsubjectaccessreviews.authorization.k8s.io",
    "selfsubjectrulesreviews.authorization.k8s.io",
}
ALL_VERBS = {"get", "list", "watch", "create", "update", "patch", "delete"}


# --- building and installing ------------------------------------------------------------------


def kustomize_build(path: Path) -> list[dict[str, Any]]:
    """`kustomize build path` with the real kustomize binary."""
    result = subprocess.run(
        [str(binaries_dir() / "kustomize"), "build", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [
        obj
        for obj in objects
        if obj["kind"] == kind and (name is None or obj["metadata"]["name"] == name)
    ]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


@pytest.fixture(scope="module")
def base() -> list[dict[str, Any]]:
    return kustomize_build(BASE)


@pytest.fixture(scope="module")
def target_objects() -> list[dict[str, Any]]:
    return kustomize_build(TARGET_DIR)


@pytest.fixture(scope="module")
def example_config(base: list[dict[str, Any]]) -> Config:
    configmap = find(base, "ConfigMap", "hooksync-config")
    return parse_config(configmap["data"]["config.yaml"], source="k8s/config.yaml")


@pytest.fixture(scope="module")
def installed(cluster: LocalCluster, kube: client.ApiClient) -> Iterator[None]:
    """k8s/ and the example target, applied with `kubectl apply -k`; removed afterwards."""
    cp = cluster.control_plane
    try:
        for path in (BASE, TARGET_DIR):
            result = run_kubectl(cp, "apply", "-k", str(path), check=False)
            assert result.returncode == 0, result.stderr
        yield
    finally:
        _uninstall(cluster, kube)


def _uninstall(cluster: LocalCluster, kube: client.ApiClient) -> None:
    # Jobs keep the receiver's finalizer until a status is posted; nothing posts one here.
    batch = client.BatchV1Api(kube)
    try:
        for job in batch.list_namespaced_job(JOBS_NS).items:
            if job.metadata.finalizers:
                batch.patch_namespaced_job(
                    job.metadata.name, JOBS_NS, {"metadata": {"finalizers": None}}
                )
    except ApiException:
        pass
    # Other tests use namespace `shop` too: leave nothing behind, not even a Terminating one.
    run_kubectl(
        cluster.control_plane,
        "delete", "namespace", JOBS_NS, TARGET_NS,
        "--ignore-not-found", "--wait=true", "--timeout=120s",
        check=False,
    )  # fmt: skip


# --- identities -------------------------------------------------------------------------------


@dataclasses.dataclass
class Identity:
    kubeconfig: Path
    api: client.ApiClient

    def kubectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(binaries_dir() / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            check=False,
        )

    def can_i(self, verb: str, resource: str, namespace: str | None) -> bool:
        where = ["--namespace", namespace] if namespace else ["--all-namespaces"]
        answer = self.kubectl("auth", "can-i", verb, resource, *where)
        assert answer.stdout.strip() in ("yes", "no"), answer.stderr
        return answer.stdout.strip() == "yes"

    def rules(self, namespace: str) -> dict[str, set[str]]:
        """`kubectl auth can-i --list`: verbs by resource."""
        answer = self.kubectl("auth", "can-i", "--list", "--namespace", namespace)
        assert answer.returncode == 0, answer.stderr
        rules: dict[str, set[str]] = {}
        for line in answer.stdout.splitlines()[1:]:
            verbs = re.search(r"\[([^\]]*)\]\s*$", line)
            resource = line.split()[0] if line.split() else ""
            if not resource or resource.startswith("[") or verbs is None:
                continue  # a non-resource URL rule
            rules.setdefault(resource, set()).update(verbs.group(1).split())
        return rules


def _identity(
    cluster: LocalCluster, kube: client.ApiClient, folder: Path, namespace: str, account: str
) -> Iterator[Identity]:
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
    )
    answer = client.CoreV1Api(kube).create_namespaced_service_account_token(
        account, namespace, request
    )
    path = cluster.control_plane.write_kubeconfig(
        folder / f"{account}.kubeconfig",
        answer.status.token,
        user=f"system:serviceaccount:{namespace}:{account}",
    )
    api = config.new_client_from_config(config_file=str(path))
    try:
        yield Identity(path, api)
    finally:
        api.close()


@pytest.fixture(scope="module")
def receiver(
    installed: None, cluster: LocalCluster, kube: client.ApiClient, tmp_path_factory
) -> Iterator[Identity]:
    yield from _identity(cluster, kube, tmp_path_factory.mktemp("receiver"), JOBS_NS, RECEIVER_SA)


@pytest.fixture(scope="module")
def target(
    installed: None, cluster: LocalCluster, kube: client.ApiClient, tmp_path_factory
) -> Iterator[Identity]:
    yield from _identity(cluster, kube, tmp_path_factory.mktemp("target"), JOBS_NS, TARGET_SA)


def assert_forbidden(call: Callable[[], Any]) -> None:
    with pytest.raises(ApiException) as caught:
        call()
    assert caught.value.status == 403, caught.value.body


def configmap(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"greeting": "hello"},
    }


def deployment(name: str, namespace: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "web", "image": "ghcr.io/example/web:1.0"}]},
            },
        },
    }


# --- the built manifests ----------------------------------------------------------------------


def test_base_and_target_build_with_the_real_kustomize(
    base: list[dict[str, Any]], target_objects: list[dict[str, Any]]
) -> None:
    assert sorted(obj["kind"] for obj in base) == sorted(
        [
            "Namespace", "ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Deployment",
            "Service", "PodDisruptionBudget", "NetworkPolicy",
        ]
    )  # fmt: skip
    for obj in base:
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == JOBS_NS, obj["metadata"]
    # Secrets are the user's to create; the base never overwrites them.
    assert not [obj for obj in base if obj["kind"] == "Secret"]
    assert {(o["kind"], o["metadata"].get("namespace")) for o in target_objects} == {
        ("Namespace", None),
        ("ServiceAccount", JOBS_NS),
        ("Role", TARGET_NS),
        ("RoleBinding", TARGET_NS),
        ("Secret", JOBS_NS),
    }
    for obj in base + target_objects:
        assert obj["kind"] not in ("ClusterRole", "ClusterRoleBinding")


def test_receiver_deployment_is_hardened(base: list[dict[str, Any]]) -> None:
    deploy = find(base, "Deployment", "hooksync-receiver")
    spec = deploy["spec"]
    pod = spec["template"]["spec"]
    assert spec["replicas"] == 2
    assert pod["serviceAccountName"] == RECEIVER_SA
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod.get("topologySpreadConstraints") or pod.get("affinity", {}).get("podAntiAffinity")

    (container,) = pod["containers"]
    assert container["image"] == "ghcr.io/hooksync/hooksync-receiver:0.1.0"
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == 65532
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["resources"]["requests"] and container["resources"]["limits"]

    # The arguments are ones the receiver accepts, and its port is the one probed and served.
    args = parse_args(container["args"])
    assert args.config == "/etc/hooksync/config.yaml"
    (port,) = container["ports"]
    assert port["containerPort"] == args.port == 8080
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    # Liveness waits for the start: a slow start is not restarted over and over.
    startup = container["startupProbe"]
    assert startup["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60

    env = {item["name"]: item["valueFrom"] for item in container["env"]}
    assert env.pop("POD_NAME") == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env.pop("POD_NAMESPACE") == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert set(env) == {
        "HOOKSYNC_GITHUB_WEBHOOK_SECRET", "HOOKSYNC_GITHUB_TOKEN", "HOOKSYNC_GITLAB_WEBHOOK_TOKEN",
        "HOOKSYNC_GITLAB_SIGNING_TOKEN", "HOOKSYNC_GITLAB_TOKEN", "HOOKSYNC_GITEA_WEBHOOK_SECRET",
        "HOOKSYNC_GITEA_TOKEN", "HOOKSYNC_LINK_KEY",
        STATUS_TOKEN_ENV, SYNC_TOKEN_ENV,
    }  # fmt: skip
    for name, source in env.items():
        assert source == {
            "secretKeyRef": {"name": "hooksync-secrets", "key": name, "optional": True}
        }

    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    config_volume = volumes[mounts["/etc/hooksync"]["name"]]
    assert config_volume["configMap"]["name"] == "hooksync-config"
    assert "subPath" not in mounts["/etc/hooksync"]  # a subPath mount never sees updates


def test_service_pdb_and_networkpolicy_select_the_receiver(base: list[dict[str, Any]]) -> None:
    pod_labels = find(base, "Deployment")["spec"]["template"]["metadata"]["labels"]
    container = find(base, "Deployment")["spec"]["template"]["spec"]["containers"][0]

    def selects(selector: dict[str, str]) -> bool:
        return bool(selector) and all(pod_labels.get(k) == v for k, v in selector.items())

    service = find(base, "Service", "hooksync-receiver")
    assert selects(service["spec"]["selector"])
    (port,) = service["spec"]["ports"]
    assert port["port"] == 80
    assert port["targetPort"] in (8080, container["ports"][0]["name"])

    pdb = find(base, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert selects(pdb["spec"]["selector"]["matchLabels"])

    policy = find(base, "NetworkPolicy")
    assert selects(policy["spec"]["podSelector"]["matchLabels"])
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert [rule["ports"] for rule in policy["spec"]["ingress"]] == [
        [{"protocol": "TCP", "port": 8080}]
    ]


def test_example_config_names_the_example_targets_objects(
    example_config: Config, target_objects: list[dict[str, Any]]
) -> None:
    assert example_config.job_image == "ghcr.io/hooksync/hooksync-job:0.1.0"
    assert example_config.namespace is None  # Jobs run in the receiver's own namespace
    (shop,) = example_config.targets
    assert (shop.name, shop.namespace) == ("shop", TARGET_NS)
    account = find(target_objects, "ServiceAccount")
    assert account["metadata"] == {
        "name": shop.service_account, "namespace": JOBS_NS, "labels": account["metadata"]["labels"]
    }  # fmt: skip
    secret = find(target_objects, "Secret")
    assert secret["metadata"]["name"] == shop.git_secret
    assert set(secret["stringData"]) == {"token"}
    binding = find(target_objects, "RoleBinding")
    assert binding["metadata"]["namespace"] == shop.namespace
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": shop.service_account, "namespace": JOBS_NS}
    ]
    assert binding["roleRef"]["name"] == find(target_objects, "Role")["metadata"]["name"]


# --- on the control plane ---------------------------------------------------------------------


def test_apply_creates_every_object_and_leaves_no_diff(
    installed: None, cluster: LocalCluster, kube: client.ApiClient
) -> None:
    assert client.AppsV1Api(kube).read_namespaced_deployment("hooksync-receiver", JOBS_NS)
    assert client.CoreV1Api(kube).read_namespaced_config_map("hooksync-config", JOBS_NS)
    assert client.CoreV1Api(kube).read_namespaced_service_account(TARGET_SA, JOBS_NS)
    assert client.RbacAuthorizationV1Api(kube).read_namespaced_role("hooksync-converge", TARGET_NS)
    # Nothing left to change: a second apply would be a no-op (kubectl diff exits 0).
    for path in (BASE, TARGET_DIR):
        diff = run_kubectl(cluster.control_plane, "diff", "-k", str(path), check=False)
        assert diff.returncode == 0, diff.stdout + diff.stderr


def test_receiver_identity_has_exactly_its_rules(receiver: Identity) -> None:
    rules = receiver.rules(JOBS_NS)
    assert rules.pop("jobs.batch") == ALL_VERBS
    assert rules.pop("cronjobs.batch") == ALL_VERBS
    assert rules.pop("leases.coordination.k8s.io") == ALL_VERBS - {"delete"}
    assert rules.pop("pods") == {"get", "list", "watch"}
    assert rules.pop("pods/log") == {"get"}
    assert set(rules) <= SELF_REVIEWS, rules  # nothing else: no Secrets, no pods/exec, no RBAC
    assert set(receiver.rules(TARGET_NS)) <= SELF_REVIEWS
    assert set(receiver.rules("default")) <= SELF_REVIEWS

    assert receiver.can_i("create", "jobs.batch", JOBS_NS)
    assert not receiver.can_i("get", "secrets", JOBS_NS)
    assert not receiver.can_i("create", "pods", JOBS_NS)
    assert not receiver.can_i("create", "serviceaccounts/token", JOBS_NS)
    assert not receiver.can_i("create", "jobs.batch", "default")
    assert not receiver.can_i("list", "jobs.batch", None)
    assert not receiver.can_i("list", "configmaps", TARGET_NS)


def test_receiver_creates_patches_and_deletes_its_jobs(
    receiver: Identity, kube: client.ApiClient, example_config: Config
) -> None:
    batch = client.BatchV1Api(receiver.api)
    (shop,) = example_config.targets
    # The receiver's own Job manifest, suspended so that nothing runs it here.
    body = build_job(example_config, shop, "apply", SHA, "refs/heads/main", "d-1", suspend=True)
    name = body["metadata"]["name"]
    batch.create_namespaced_job(JOBS_NS, body)
    selector = f"{names.MANAGED_BY}={names.MANAGED_BY_VALUE},{names.TARGET}=shop"
    listed = batch.list_namespaced_job(JOBS_NS, label_selector=selector).items
    assert [job.metadata.name for job in listed] == [name]
    batch.patch_namespaced_job(name, JOBS_NS, {"metadata": {"annotations": {"x/reported": "1"}}})

    batch.delete_namespaced_job(name, JOBS_NS, propagation_policy="Background")
    held = batch.read_namespaced_job(name, JOBS_NS)
    assert held.metadata.deletion_timestamp is not None  # the status finalizer holds it
    batch.patch_namespaced_job(name, JOBS_NS, {"metadata": {"finalizers": None}})

    def gone() -> bool:
        try:
            client.BatchV1Api(kube).read_namespaced_job(name, JOBS_NS)
        except ApiException as exc:
            return bool(exc.status == 404)
        return False

    wait_until(gone, timeout=30)


def test_receiver_reconciles_resync_cronjobs(
    receiver: Identity, kube: client.ApiClient, example_config: Config
) -> None:
    (shop,) = example_config.targets
    name = resync_cronjob_name(shop.name)
    admin = client.BatchV1Api(kube)

    def with_schedule(schedule: str) -> Config:
        # New Year's only, so the CronJob controller starts nothing during the test.
        return dataclasses.replace(
            example_config, targets=(dataclasses.replace(shop, resync=schedule),)
        )

    changes = reconcile_cronjobs(receiver.api, with_schedule("0 0 1 1 *"), JOBS_NS)
    assert changes.created == [name]
    changes = reconcile_cronjobs(receiver.api, with_schedule("30 0 1 1 *"), JOBS_NS)
    assert changes.updated == [name]
    assert admin.read_namespaced_cron_job(name, JOBS_NS).spec.schedule == "30 0 1 1 *"
    changes = reconcile_cronjobs(receiver.api, with_schedule(""), JOBS_NS)
    assert changes.deleted == [name]


def test_receiver_elects_a_leader_and_reads_pods(receiver: Identity) -> None:
    elector = LeaderElector(receiver.api, JOBS_NS, "receiver-test")
    thread = threading.Thread(target=elector.run, daemon=True)
    thread.start()
    try:
        assert elector.is_leader.wait(15), "the receiver could not take its Lease"
    finally:
        elector.stop.set()
        thread.join(15)
    coordination = client.CoordinationV1Api(receiver.api)
    lease = coordination.read_namespaced_lease(names.LEADER_LEASE_NAME, JOBS_NS)
    assert not lease.spec.holder_identity  # released on stop: an update
    coordination.patch_namespaced_lease(
        names.LEADER_LEASE_NAME, JOBS_NS, {"metadata": {"annotations": {"x/patched": "1"}}}
    )

    core = client.CoreV1Api(receiver.api)
    core.list_namespaced_pod(JOBS_NS, label_selector="job-name=none")
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_pod_log("no-such-pod", JOBS_NS)
    assert caught.value.status == 404  # allowed; there is just no such pod


def test_a_replica_whose_clock_runs_45s_ahead_does_not_take_a_leadership_still_renewed(
    receiver: Identity,
) -> None:
    """Both replicas as the receiver's own ServiceAccount; the Lease times are 3 s so that the
    test watches several whole Lease durations."""
    leader = Lease(
        CoordinationLeases(receiver.api),
        names.LEADER_LEASE_NAME,
        JOBS_NS,
        "replica-on-time",
        duration_seconds=3,
        renew_deadline_seconds=2,
    )
    ahead = LeaderElector(
        receiver.api,
        JOBS_NS,
        "replica-45s-ahead",
        lease_seconds=3,
        renew_seconds=0.5,
        renew_deadline_seconds=2,
        wall_clock=lambda: datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=45),
    )
    wait_until(lambda: leader.try_hold().held, timeout=15)
    thread = threading.Thread(target=ahead.run, daemon=True)
    thread.start()
    try:
        # By wall clocks the leader's renewTime looks 42 s overdue to `ahead` at every look.
        until = time.monotonic() + 9
        while time.monotonic() < until:
            assert leader.try_hold().held, "the leader lost a Lease it kept renewing"
            assert not ahead.is_leader.is_set(), "taken over while still renewed"
            time.sleep(0.5)
        # The leader stops renewing without letting go (its process hangs): the other replica
        # takes over once its own clock has seen the Lease unchanged for 3 s.
        started = time.monotonic()
        assert ahead.is_leader.wait(10), "a Lease nobody renews was never taken over"
        assert time.monotonic() - started >= 2
        assert not leader.held()
    finally:
        ahead.stop.set()
        thread.join(15)


def test_receiver_is_forbidden_everything_else(receiver: Identity, example_config: Config) -> None:
    core = client.CoreV1Api(receiver.api)
    batch = client.BatchV1Api(receiver.api)
    coordination = client.CoordinationV1Api(receiver.api)
    (shop,) = example_config.targets
    job = build_job(example_config, shop, "apply", SHA, "refs/heads/main", None, suspend=True)
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    token: dict[str, Any] = {"spec": {"audiences": []}}

    assert_forbidden(lambda: core.list_namespaced_secret(JOBS_NS))
    assert_forbidden(lambda: core.read_namespaced_secret(GIT_SECRET, JOBS_NS))
    assert_forbidden(lambda: core.create_namespaced_pod(JOBS_NS, pod))
    assert_forbidden(
        lambda: core.create_namespaced_service_account_token(TARGET_SA, JOBS_NS, token)
    )
    assert_forbidden(lambda: batch.create_namespaced_job("default", copy.deepcopy(job)))
    assert_forbidden(lambda: batch.create_namespaced_job(TARGET_NS, copy.deepcopy(job)))
    assert_forbidden(lambda: batch.list_job_for_all_namespaces())
    assert_forbidden(lambda: core.list_namespaced_config_map(TARGET_NS))
    assert_forbidden(lambda: core.list_namespaced_config_map(JOBS_NS))
    assert_forbidden(lambda: coordination.list_namespaced_lease(TARGET_NS))
    assert_forbidden(lambda: coordination.delete_namespaced_lease(names.LEADER_LEASE_NAME, JOBS_NS))
    assert_forbidden(lambda: core.list_namespace())
    assert_forbidden(
        lambda: client.RbacAuthorizationV1Api(receiver.api).create_namespaced_role(
            JOBS_NS, {"metadata": {"name": "more"}, "rules": []}
        )
    )


def test_target_identity_converges_its_namespace(target: Identity) -> None:
    job_api = connect(str(target.kubeconfig))  # the Job's own client, as the Job uses it
    cluster = Cluster(job_api)
    # It reads its own Namespace's Pod Security label, which the example sets to restricted.
    assert cluster.namespace_labels(TARGET_NS)[ENFORCE_LABEL] == "restricted"
    created = cluster.apply(configmap("web", TARGET_NS))
    cluster.apply(deployment("web", TARGET_NS))
    listed = cluster.list("apps/v1", "Deployment", TARGET_NS)
    assert [obj["metadata"]["name"] for obj in listed] == ["web"]
    assert cluster.delete(ObjectRef.from_object(created))

    lease = TargetLease(job_api, "shop", TARGET_NS, "job-test")
    lease.acquire()
    lease.release()
    held = client.CoordinationV1Api(target.api).read_namespaced_lease(lease.name, TARGET_NS)
    assert not held.spec.holder_identity

    # It may ship RBAC for its app, but only with permissions it holds itself in `shop`.
    rbac = client.RbacAuthorizationV1Api(target.api)
    rbac.create_namespaced_role(
        TARGET_NS,
        {
            "metadata": {"name": "app-reader"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
        },
    )
    assert_forbidden(
        lambda: rbac.create_namespaced_role(
            TARGET_NS,
            {
                "metadata": {"name": "app-exec"},
                "rules": [{"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]}],
            },
        )
    )


def test_target_identity_is_forbidden_outside_its_namespace(
    target: Identity, example_config: Config
) -> None:
    core = client.CoreV1Api(target.api)
    (shop,) = example_config.targets
    assert_forbidden(lambda: core.create_namespaced_config_map(JOBS_NS, configmap("x", JOBS_NS)))
    assert_forbidden(
        lambda: core.create_namespaced_config_map("default", configmap("x", "default"))
    )
    assert_forbidden(lambda: core.read_namespaced_secret(GIT_SECRET, JOBS_NS))
    assert_forbidden(lambda: core.list_namespace())
    assert_forbidden(lambda: core.read_namespace(JOBS_NS))
    assert_forbidden(lambda: core.list_config_map_for_all_namespaces())
    assert_forbidden(
        lambda: client.BatchV1Api(target.api).create_namespaced_job(
            JOBS_NS, build_job(example_config, shop, "apply", SHA, "refs/heads/main", None)
        )
    )
    assert_forbidden(
        lambda: client.RbacAuthorizationV1Api(target.api).create_cluster_role(
            {"metadata": {"name": "hooksync-shop-more"}, "rules": []}
        )
    )
    # Through the converge's own door the refusal is a permanent error naming the Role.
    with pytest.raises(PermanentError, match=r"(?i)forbidden"):
        Cluster(connect(str(target.kubeconfig))).apply(configmap("x", "default"))
    assert set(target.rules(JOBS_NS)) <= SELF_REVIEWS
    assert set(target.rules("default")) <= SELF_REVIEWS


def test_receiver_and_job_pods_pass_the_restricted_pod_security_profile(
    installed: None, kube: client.ApiClient, base: list[dict[str, Any]], example_config: Config
) -> None:
    core = client.CoreV1Api(kube)
    labels = core.read_namespace(JOBS_NS).metadata.labels
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"

    def admitted(name: str, template: dict[str, Any]) -> None:
        pod = {"metadata": {"name": name, **template.get("metadata", {})}, "spec": template["spec"]}
        core.create_namespaced_pod(JOBS_NS, pod, dry_run="All")

    admitted("receiver", find(base, "Deployment")["spec"]["template"])
    (shop,) = example_config.targets
    job = build_job(example_config, shop, "apply", SHA, "refs/heads/main", None)
    admitted("converge", job["spec"]["template"])

    # The profile is enforced here, so the two above were really checked.
    powerful = copy.deepcopy(job["spec"]["template"])
    powerful["spec"]["containers"][0]["securityContext"]["capabilities"]["add"] = ["NET_ADMIN"]
    assert_forbidden(lambda: admitted("powerful", powerful))
