"""The whole delivery path on one machine: Git over HTTP, a Git host stand-in, the receiver as a
process, and a target whose Jobs run under the process kubelet as the target's ServiceAccount.

Used by the status tests and by `make demo`, so both exercise exactly the same path.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from kubernetes import client

from world.cluster import LocalCluster
from world.githosts import GitHubStandIn, GitLabStandIn
from world.gitserver import GitServer, Repo
from world.receiver import ReceiverProcess
from world.rollouts import RolloutStandIn

WEBHOOK_SECRET = "demo-webhook-secret"


class DeliveryStack:
    """One target (`target`) following `acme/<target>` on the GitHub or GitLab stand-in."""

    def __init__(
        self,
        cluster: LocalCluster,
        directory: Path,
        target: str = "shop",
        provider: str = "github",
        receivers: int = 1,
        timeout_seconds: int = 60,
        settings: dict[str, Any] | None = None,
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
            self.receivers.append(receiver.start())
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
        for name in (self.jobs_namespace, self.target_namespace):
            core.create_namespace({"metadata": {"name": name}})
        core.create_namespaced_service_account(
            self.jobs_namespace, {"metadata": {"name": self.service_account}}
        )
        core.create_namespaced_secret(
            self.jobs_namespace,
            {
                "metadata": {"name": f"{self.service_account}-git"},
                "stringData": {"token": self.git_token},
            },
        )
        # The target's Job identity may do anything, but only in the target namespace.
        rbac.create_namespaced_role(
            self.target_namespace,
            {
                "metadata": {"name": "hooksync-converge"},
                "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
            },
        )
        rbac.create_namespaced_role_binding(
            self.target_namespace,
            {
                "metadata": {"name": "hooksync-converge"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "hooksync-converge",
                },
                "subjects": [
                    {
                        "kind": "ServiceAccount",
                        "name": self.service_account,
                        "namespace": self.jobs_namespace,
                    }
                ],
            },
        )

    # -- acting like the Git host ---------------------------------------------------------

    def commit(self, files: dict[str, str | None], message: str, branch: str = "main") -> str:
        assert self.repo is not None
        sha = self.repo.commit(files, message, branch=branch)
        if isinstance(self.host, GitHubStandIn):
            self.host.set_branch(self.repo_name, branch, sha)
        return sha

    def push_event(self, sha: str, before: str | None = None, receiver: int = 0) -> httpx.Response:
        """The signed push webhook the Git host would send for `sha` on main."""
        if self.provider == "github":
            payload = {
                "ref": "refs/heads/main",
                "before": before or "0" * 40,
                "after": sha,
                "created": before is None,
                "deleted": False,
                "repository": {"full_name": self.repo_name, "name": self.target},
                "commits": [{"id": sha, "message": "change"}],
                "head_commit": {"id": sha},
            }
            return self._send_github("push", payload, receiver)
        payload = {
            "object_kind": "push",
            "ref": "refs/heads/main",
            "before": before or "0" * 40,
            "after": sha,
            "checkout_sha": sha,
            "project": {"path_with_namespace": self.repo_name, "id": 1},
            "commits": [{"id": sha}],
        }
        return self._send_gitlab("Push Hook", payload, receiver)

    def pull_request_event(
        self, head_sha: str, number: int = 1, head_branch: str = "feature", receiver: int = 0
    ) -> httpx.Response:
        repo = {"full_name": self.repo_name, "id": 1}
        payload = {
            "action": "synchronize",
            "number": number,
            "pull_request": {
                "number": number,
                "state": "open",
                "head": {"sha": head_sha, "ref": head_branch, "repo": repo},
                "base": {"sha": "0" * 40, "ref": "main", "repo": repo},
            },
            "repository": repo,
        }
        return self._send_github("pull_request", payload, receiver)

    def _send_github(self, event: str, payload: dict[str, Any], receiver: int) -> httpx.Response:
        body = json.dumps(payload).encode()
        signature = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
        legacy = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha1).hexdigest()
        # Every header GitHub documents for a delivery, as a real sender (Gitea too) sends them.
        headers = {
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-GitHub-Hook-ID": "1",
            "X-GitHub-Hook-Installation-Target-Type": "repository",
            "X-GitHub-Hook-Installation-Target-ID": "1",
            "X-Hub-Signature": f"sha1={legacy}",
            "X-Hub-Signature-256": f"sha256={signature}",
            "User-Agent": "GitHub-Hookshot/stand-in",
            "Content-Type": "application/json",
        }
        url = f"{self.receivers[receiver].url}/hooks/github"
        return httpx.post(url, content=body, headers=headers, timeout=30)

    def _send_gitlab(self, event: str, payload: dict[str, Any], receiver: int) -> httpx.Response:
        headers = {
            "X-Gitlab-Event": event,
            "X-Gitlab-Token": WEBHOOK_SECRET,
            "Idempotency-Key": str(uuid.uuid4()),
            "Content-Type": "application/json",
        }
        url = f"{self.receivers[receiver].url}/hooks/gitlab"
        return httpx.post(url, content=json.dumps(payload).encode(), headers=headers, timeout=30)

    # -- observing -----------------------------------------------------------------------

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
                if item.metadata.name in ("kube-root-ca.crt",) or item.metadata.name.startswith(
                    "hooksync-inventory-"
                ):
                    continue
                found[f"{kind}/{item.metadata.name}"] = self.api.sanitize_for_serialization(item)
        return found


def _configuration(cluster: LocalCluster) -> client.Configuration:
    from kubernetes import config

    configuration = client.Configuration()
    config.load_kube_config(str(cluster.kubeconfig), client_configuration=configuration)
    return configuration
