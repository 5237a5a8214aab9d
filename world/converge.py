"""`hooksync-job` run the way a Job runs it, and what it leaves in a namespace.

A `Target` is one hooksync target of the world: a Git repository on a token-protected Git
server, a namespace, and a kubeconfig for the target's own ServiceAccount. `Live` snapshots
what the namespace holds, so a test can say exactly which objects a run changed.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kubernetes import client

from hooksync.inventory import decode_inventory, parent_name
from hooksync.jobspec import EXIT_OK, JobSpec
from hooksync.names import Mode
from world.gitserver import Repo

# The token of the world's Git server for converge runs; a run gets it as the Job would.
GIT_TOKEN = f"git-{secrets.token_hex(12)}"
PATH_IN_REPO = "deploy"
# `hooksync-job` as the process kubelet starts it (the image's entry point is `hooksync-job`).
JOB_COMMAND = [sys.executable, "-m", "jobimage.cli"]
# Kinds whose objects `Live` compares before and after a run.
WATCHED_KINDS = ("ConfigMap", "Service", "Deployment")


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
    git_token: str = GIT_TOKEN
    env: dict[str, str] = field(default_factory=dict)  # more environment for the command

    def spec(self, mode: Mode, *, sha: str | None = None, branch: str | None = None) -> JobSpec:
        """The Job's command line for this target, as the receiver would write it."""
        return JobSpec(
            mode=mode,
            target=self.name,
            clone_url=self.repo.url,
            branch=branch or self.branch,
            path=self.path,
            namespace=self.namespace,
            timeout_seconds=self.timeout,
            sha=sha,
        )

    def argv(
        self,
        mode: Mode = "apply",
        *extra: str,
        sha: str | None = None,
        branch: str | None = None,
    ) -> list[str]:
        """The command line; `extra` arguments come last, so they override the spec's."""
        return [*JOB_COMMAND, *self.spec(mode, sha=sha, branch=branch).to_args(), *extra]

    def environment(self, token: str | None, kubeconfig: Path | None) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("KUBERNETES_", "HOOKSYNC_"))
        }
        # Like the Job image: git and kustomize on PATH.
        env["PATH"] = os.pathsep.join([str(self.bin_dir), env.get("PATH", "/usr/bin:/bin")])
        env["KUBECONFIG"] = str(kubeconfig or self.kubeconfig)
        env["HOOKSYNC_GIT_TOKEN"] = token or self.git_token
        return env | self.env

    def start(
        self,
        mode: Mode = "apply",
        *extra: str,
        sha: str | None = None,
        branch: str | None = None,
        token: str | None = None,
        kubeconfig: Path | None = None,
    ) -> subprocess.Popen[str]:
        """Start `hooksync-job` as the target's ServiceAccount (or with `kubeconfig`), with
        the target's Git token (or `token`)."""
        return subprocess.Popen(
            self.argv(mode, *extra, sha=sha, branch=branch),
            env=self.environment(token, kubeconfig),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(
        self,
        mode: Mode = "apply",
        *extra: str,
        sha: str | None = None,
        branch: str | None = None,
        token: str | None = None,
        kubeconfig: Path | None = None,
    ) -> Run:
        process = self.start(
            mode, *extra, sha=sha, branch=branch, token=token, kubeconfig=kubeconfig
        )
        return finished(process)

    def converge(self, mode: Mode = "apply") -> Run:
        """Run and insist on success: for the steps a test builds on, not the one it checks."""
        run = self.run(mode)
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
    if answer.status is None:
        raise RuntimeError(f"TokenRequest for {namespace}/{account} came back without a token")
    return str(answer.status.token)


# --- reading the cluster ----------------------------------------------------------------------

ObjectKey = tuple[str, str]  # (kind, name)


class _Listed(Protocol):
    metadata: client.V1ObjectMeta | None

    def to_dict(self) -> dict[str, Any]: ...


@dataclass
class Live:
    """What a namespace holds of the watched kinds: (kind, name) -> object dict."""

    objects: dict[ObjectKey, dict[str, Any]] = field(default_factory=dict)

    def versions(self) -> dict[ObjectKey, str]:
        return {key: obj["metadata"]["resource_version"] for key, obj in self.objects.items()}

    def names(self) -> set[ObjectKey]:
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
        items: list[_Listed] = listings[kind](namespace).items
        for item in items:
            name = item.metadata.name if item.metadata else None
            if not name or name == "kube-root-ca.crt":  # published by a controller, any time
                continue
            live.objects[(kind, name)] = item.to_dict()
    return live


def changed_between(before: Live, after: Live) -> set[ObjectKey]:
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


def inventory_key(target: Target) -> ObjectKey:
    return ("ConfigMap", parent_name(target.name))


def configmap_data(kube: client.ApiClient, namespace: str, name: str) -> dict[str, str]:
    return dict(client.CoreV1Api(kube).read_namespaced_config_map(name, namespace).data or {})
