"""The delivery stack with a real Gitea as both the Git server and the Git host.

Gitea sends the webhooks itself when a commit is pushed or a pull request opened, to
`/hooks/gitea` of the first receiver, signed with the stack's webhook secret; Jobs clone from
Gitea with a read-only token and the receiver posts statuses to Gitea's API with another.
`push_event` and `pull_request_event` wait for Gitea's own delivery and return the receiver's
answer to it, so code written for the stand-ins (the demo) reads the same here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from world.cluster import LocalCluster
from world.gitea import ADMIN, Delivery, GiteaRepo, GiteaServer
from world.stack import WEBHOOK_SECRET, DeliveryStack

ORG = "acme"


class GiteaDeliveryStack(DeliveryStack):
    """One target (`target`) following `acme/<target>` on a real Gitea."""

    def __init__(
        self,
        cluster: LocalCluster,
        directory: Path,
        target: str = "shop",
        receivers: int = 1,
        timeout_seconds: int = 60,
        settings: dict[str, Any] | None = None,
        content_type: str = "json",
    ) -> None:
        # The base's Git server and stand-in are made but never started.
        super().__init__(
            cluster,
            directory,
            target=target,
            provider="gitea",
            receivers=receivers,
            timeout_seconds=timeout_seconds,
            settings=settings,
        )
        self.gitea = GiteaServer(directory / "gitea")
        self.content_type = content_type
        self.gitea_repo: GiteaRepo | None = None
        self.hook_id = 0

    def start(self) -> GiteaDeliveryStack:
        try:
            super().start()
            hook = f"{self.receivers[0].url}/hooks/gitea"
            self.hook_id = self.gitea.add_webhook(
                self.repo_name, hook, WEBHOOK_SECRET, content_type=self.content_type
            )
        except BaseException:
            self.stop()
            raise
        return self

    def __enter__(self) -> GiteaDeliveryStack:
        return self.start()

    def _start_git_and_host(self) -> None:
        self.gitea.start()
        self.gitea.create_org(ORG)
        self.gitea_repo = self.gitea.create_repo(self.repo_name)
        # The scopes the README asks for: read to clone; write to post statuses, write on
        # issues and read of its own user to keep the preview comment.
        self.git_token = self.gitea.create_token(ADMIN, "clone", ["read:repository"])
        self.host_token = self.gitea.create_token(
            ADMIN, "statuses", ["write:repository", "write:issue", "read:user"]
        )

    def stop(self) -> None:
        super().stop()
        self.gitea.stop()

    def host_api_url(self) -> str:
        return self.gitea.api_url

    def clone_url(self) -> str:
        return self.gitea.clone_url(self.repo_name)

    def receiver_env(self, index: int) -> dict[str, str]:
        return {
            "HOOKSYNC_LINK_KEY": self.link_key,
            "POD_NAME": f"receiver-{index}",
            "HOOKSYNC_GITEA_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "HOOKSYNC_GITEA_TOKEN": self.host_token,
        }

    def comments(self, number: int) -> list[dict[str, Any]]:
        return self.gitea.comments(self.repo_name, number)

    # -- acting on Gitea -------------------------------------------------------------------

    def commit(
        self, files: Mapping[str, str | bytes | None], message: str, branch: str = "main"
    ) -> str:
        assert self.gitea_repo is not None
        return self.gitea_repo.commit(files, message, branch=branch)

    def push_event(self, sha: str, before: str | None = None, receiver: int = 0) -> httpx.Response:
        """The receiver's answer to Gitea's push delivery of `sha` (Gitea sent it already)."""
        delivery = self.gitea.wait_delivery(
            lambda d: d.event_type == "push" and d.payload.get("after") == sha,
            f"push of {sha[:7]}",
        )
        return _as_response(delivery)

    def pull_request_event(
        self, head_sha: str, number: int = 1, head_branch: str = "feature", receiver: int = 0
    ) -> httpx.Response:
        """Open a pull request from `head_branch` unless one is open, and return the receiver's
        answer to Gitea's delivery for `head_sha` (opened, or synchronized by the push)."""
        open_pulls = self.gitea.pull_requests(self.repo_name)
        if not any(pull["head"]["ref"] == head_branch for pull in open_pulls):
            self.gitea.open_pull_request(self.repo_name, head_branch)
        delivery = self.gitea.wait_delivery(
            lambda d: (
                d.event_type.startswith("pull_request")
                and (d.payload.get("pull_request") or {}).get("head", {}).get("sha") == head_sha
            ),
            f"pull request delivery for {head_sha[:7]}",
        )
        return _as_response(delivery)

    # -- observing -----------------------------------------------------------------------

    def statuses(self, sha: str) -> list[dict[str, Any]]:
        return self.gitea.statuses(self.repo_name, sha)


def _as_response(delivery: Delivery) -> httpx.Response:
    return httpx.Response(delivery.status, content=delivery.response_body.encode())
