"""The whole delivery path on one machine: Git over HTTP, a Git host stand-in, the receiver as a
process, and a target whose Jobs run under the process kubelet as the target's ServiceAccount.

Used by the status tests and by `make demo`, so both exercise exactly the same path.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import httpx
from kubernetes import client

from hooksync import names
from world import webhooks
from world.githosts import GitHubStandIn, GitLabStandIn
from world.gitserver import GitServer, Repo
from world.receiver import ReceiverProcess
from world.rollouts import RolloutStandIn

WEBHOOK_SECRET = "demo-webhook-secret"
# What a target namespace needs before hooksync's Job converges it.
POD_SECURITY_BASELINE = {"pod-security.kubernetes.io/enforce": "baseline"}


class ClusterAccess(Protocol):
    """What a stack needs of a cluster: an admin kubeconfig (LocalCluster, or the real node)."""

    @property
    def kubeconfig(self) -> Path: ...


class DeliveryStack:
    """One target (`target`) following `acme/<target>` on the GitHub or GitLab stand-in."""

    def __init__(
        self,
        cluster: ClusterAccess,
        directory: Path,
        target: str = "shop",
        provider: str = "github",
        receivers: int = 1,
        timeout_seconds: int = 60,
        settings: dict[str, Any] | None = None,
        target_settings: dict[str, Any] | None = None,
        receiver_start_seconds: float = 30.0,
    ) -> None:
        self.cluster = cluster
        self.directory = directory
        self.target = target
        self.provider = provider
        self.repo_name = f"acme/{target}"
        self.jobs_namespace = f"hooksync-{target}"
        self.target_namespace = f"{target}"
        self.service_account = f"hooksync-{target}"
        self.git_token = secrets.token_hex(16)
        self.host_token = secrets.token_hex(16)
        self.link_key = secrets.token_hex(32)
        self.timeout_seconds = timeout_seconds
        self.receiver_count = receivers
        self.settings = dict(settings or {})  # top-level configuration fields to add
        self.target_settings = dict(target_settings or {})  # the target's fields to add
        # How long a receiver may take to become healthy (benchmarks on a busy machine: longer).
        self.receiver_start_seconds = receiver_start_seconds
        self.api = client.ApiClient(_configuration(cluster))
        self.git = GitServer(directory / "git", token=self.git_token)
        self.host: GitHubStandIn | GitLabStandIn = (
            GitHubStandIn(self.host_token)
            if provider == "github"
            else GitLabStandIn(self.host_token)
        )
        self.receivers: list[ReceiverProcess] = []
        self.repo: Repo | None = None
        self.rollouts: RolloutStandIn | None = None
        self.public_url: str | None = None

    # -- set-up --------------------------------------------------------------------------

    def start(self) -> DeliveryStack:
        self._start_git_and_host()
        self._namespaces_and_rbac()
        self.rollouts = RolloutStandIn(self.api, [self.target_namespace]).start()
        for index in range(self.receiver_count):
            directory = self.directory / f"receiver-{index}"
            directory.mkdir(parents=True, exist_ok=True)
            receiver = ReceiverProcess(
                directory,
                self.config(),
                self.cluster.kubeconfig,
                env=self.receiver_env(index),
                args=["--log-format", "json"],
            )
            # Status links point at the first receiver, as publicURL would at the Service.
            self.public_url = self.public_url or receiver.url
            receiver.write_config(self.config())
            self.receivers.append(receiver.start(timeout=self.receiver_start_seconds))
        return self

    def _start_git_and_host(self) -> None:
        """The Git server and the Git host, with the target's repository on both."""
        self.git.start()
        self.host.start()
        self.host.add_repo(self.repo_name)
        self.repo = self.git.create_repo(self.repo_name)

    def stop(self) -> None:
        for receiver in self.receivers:
            receiver.stop()
        if self.rollouts is not None:
            self.rollouts.stop()
        self.host.stop()
        self.git.stop()
        self.api.close()

    def __enter__(self) -> DeliveryStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def host_api_url(self) -> str:
        return self.host.api_url if isinstance(self.host, GitHubStandIn) else self.host.url

    def clone_url(self) -> str:
        return self.git.url(self.repo_name)

    def config(self) -> dict[str, Any]:
        api = self.host_api_url()
        return {
            "namespace": self.jobs_namespace,
            "jobImage": "ghcr.io/hooksync/hooksync-job:dev",
            "publicURL": self.public_url or "http://127.0.0.1:1",
            self.provider: {"apiURL": api},
            "jobTTLSeconds": 600,
            "targets": [
                {
                    "name": self.target,
                    "provider": self.provider,
                    "repo": self.repo_name,
                    "cloneURL": self.clone_url(),
                    "branch": "main",
                    "path": "deploy",
                    "namespace": self.target_namespace,
                    "serviceAccount": self.service_account,
                    "gitSecret": f"{self.service_account}-git",
                    "prune": True,
                    "resync": "",
                    "previews": True,
                    "timeoutSeconds": self.timeout_seconds,
                    **self.target_settings,
                }
            ],
            **self.settings,
        }

    def receiver_env(self, index: int) -> dict[str, str]:
        env = {"HOOKSYNC_LINK_KEY": self.link_key, "POD_NAME": f"receiver-{index}"}
        if self.provider == "github":
            env["HOOKSYNC_GITHUB_WEBHOOK_SECRET"] = WEBHOOK_SECRET
            env["HOOKSYNC_GITHUB_TOKEN"] = self.host_token
        else:
            env["HOOKSYNC_GITLAB_WEBHOOK_TOKEN"] = WEBHOOK_SECRET
            env["HOOKSYNC_GITLAB_TOKEN"] = self.host_token
        return env

    def _namespaces_and_rbac(self) -> None:
        core = client.CoreV1Api(self.api)
        rbac = client.RbacAuthorizationV1Api(self.api)
        core.create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=self.jobs_namespace))
        )
        # The Job converges only a namespace that enforces Pod Security baseline or stricter.
        core.create_namespace(
            client.V1Namespace(
                metadata=client.V1ObjectMeta(
                    name=self.target_namespace, labels=POD_SECURITY_BASELINE
                )
            )
        )
        core.create_namespaced_service_account(
            self.jobs_namespace,
            client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=self.service_account)),
        )
        core.create_namespaced_secret(
            self.jobs_namespace,
            client.V1Secret(
                metadata=client.V1ObjectMeta(name=f"{self.service_account}-git"),
                string_data={"token": self.git_token},
            ),
        )
        # The target's Job identity may do anything, but only in the target namespace.
        everything = client.V1PolicyRule(api_groups=["*"], resources=["*"], verbs=["*"])
        rbac.create_namespaced_role(
            self.target_namespace,
            client.V1Role(
                metadata=client.V1ObjectMeta(name="hooksync-converge"), rules=[everything]
            ),
        )
        rbac.create_namespaced_role_binding(
            self.target_namespace,
            client.V1RoleBinding(
                metadata=client.V1ObjectMeta(name="hooksync-converge"),
                role_ref=client.V1RoleRef(
                    api_group="rbac.authorization.k8s.io", kind="Role", name="hooksync-converge"
                ),
                subjects=[
                    client.RbacV1Subject(
                        kind="ServiceAccount",
                        name=self.service_account,
                        namespace=self.jobs_namespace,
                    )
                ],
            ),
        )

    # -- acting like the Git host ---------------------------------------------------------

    def commit(
        self, files: Mapping[str, str | bytes | None], message: str, branch: str = "main"
    ) -> str:
        assert self.repo is not None
        sha = self.repo.commit(files, message, branch=branch)
        if isinstance(self.host, GitHubStandIn):
            self.host.set_branch(self.repo_name, branch, sha)
        return sha

    def push_event(self, sha: str, before: str | None = None, receiver: int = 0) -> httpx.Response:
        """The signed push webhook the Git host would send for `sha` on main."""
        repo, secret = self.repo_name, WEBHOOK_SECRET
        if self.provider == "github":
            delivery = webhooks.github_push(repo, sha, before=before, secret=secret)
        else:
            delivery = webhooks.gitlab_push(repo, sha, before=before, token=secret)
        return self.send(delivery, receiver)

    def pull_request_event(
        self, head_sha: str, number: int = 1, head_branch: str = "feature", receiver: int = 0
    ) -> httpx.Response:
        """The signed pull_request webhook (synchronize) GitHub would send for `head_sha`, or
        GitLab's Merge Request Hook for it (`number` is the iid)."""
        if self.provider == "github":
            delivery = webhooks.github_pull_request(
                self.repo_name,
                head_sha,
                number=number,
                head_branch=head_branch,
                secret=WEBHOOK_SECRET,
            )
        else:
            delivery = webhooks.gitlab_merge_request(
                self.repo_name, head_sha, iid=number, token=WEBHOOK_SECRET
            )
        return self.send(delivery, receiver)

    def send(self, delivery: webhooks.Delivery, receiver: int = 0) -> httpx.Response:
        return webhooks.send(self.receivers[receiver].url, delivery)

    # -- observing -----------------------------------------------------------------------

    def comments(self, number: int) -> list[dict[str, Any]]:
        """The comments (GitLab: notes) on pull or merge request `number`, oldest first, each
        with its `body`."""
        if isinstance(self.host, GitHubStandIn):
            return self.host.comments(self.repo_name, number)
        return self.host.notes(self.repo_name, number)

    def statuses(self, sha: str) -> list[dict[str, Any]]:
        return list(self.host.statuses(self.repo_name, sha))

    def final_status(self, sha: str, context: str | None = None) -> dict[str, Any] | None:
        context = context or f"hooksync/deploy: {self.target}"
        for status in reversed(self.statuses(sha)):
            name = status.get("context") or status.get("name")
            state = status.get("state") or status.get("status")
            if name == context and state not in ("pending", "running"):
                return dict(status)
        return None

    def wait_final_status(
        self, sha: str, context: str | None = None, timeout: float = 90
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.final_status(sha, context)
            if status is not None:
                return status
            time.sleep(0.25)
        raise TimeoutError(
            f"no final status on {sha[:7]} after {timeout}s; statuses: {self.statuses(sha)}"
        )

    def jobs(self) -> list[dict[str, Any]]:
        """The hooksync Jobs in the Jobs namespace, as the API server's JSON."""
        # Unparsed, so fields read exactly as the API server wrote them (timestamps included).
        raw: Any = client.BatchV1Api(self.api).list_namespaced_job(
            self.jobs_namespace,
            label_selector=f"{names.MANAGED_BY}={names.MANAGED_BY_VALUE}",
            _preload_content=False,
        )
        items: list[dict[str, Any]] = json.loads(raw.data)["items"]
        return items

    def objects(self) -> dict[str, dict[str, Any]]:
        """The target namespace's ConfigMaps, Services and Deployments, by Kind/name."""
        core, apps = client.CoreV1Api(self.api), client.AppsV1Api(self.api)
        found: dict[str, dict[str, Any]] = {}
        ns = self.target_namespace
        for kind, items in (
            ("ConfigMap", core.list_namespaced_config_map(ns).items),
            ("Service", core.list_namespaced_service(ns).items),
            ("Deployment", apps.list_namespaced_deployment(ns).items),
        ):
            for item in items:
                name = item.metadata.name if item.metadata else None
                if not name or name == "kube-root-ca.crt" or name.startswith("hooksync-inventory-"):
                    continue
                found[f"{kind}/{name}"] = self.api.sanitize_for_serialization(item)
        return found


def _configuration(cluster: ClusterAccess) -> client.Configuration:
    from kubernetes import config

    configuration = client.Configuration()
    config.load_kube_config(str(cluster.kubeconfig), client_configuration=configuration)
    return configuration
