"""Deployments on the Git host for a target's applies (opt-in: `deployments` in its config).

GitHub: a deployment of the SHA (PyGithub), its status `in_progress` once the apply Job runs,
then `success` or `failure`, with `log_url` the run page and `environment_url` from the
configuration. GitLab: a deployment in the target's environment (python-gitlab), `running`
then `success` or `failed`; the environment's external URL is set from the configuration.
Errors are those of githosts: HostUnavailable (try later) or HostRejected (give up).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

import github
import gitlab
import requests

from hooksync.config import Config, Deployments
from receiver.reporting.githosts import (
    GitHubStatuses,
    GitLabStatuses,
    HostUnavailable,
    github_error,
    gitlab_error,
)
from receiver.reporting.statuses import GITHUB_DESCRIPTION_LIMIT, shorten

Stage = Literal["running", "success", "failure"]
# Each host's word for each stage.
GITHUB_STATES: Final[dict[Stage, str]] = {
    "running": "in_progress",
    "success": "success",
    "failure": "failure",
}
GITLAB_STATES: Final[dict[Stage, str]] = {
    "running": "running",
    "success": "success",
    "failure": "failed",
}


@dataclass(frozen=True)
class DeploymentUpdate:
    """One step of a deployment: where it is going and what to say."""

    stage: Stage
    description: str
    log_url: str | None


class GitHubDeployments(GitHubStatuses):
    def __init__(self, config: Config, token: str | None) -> None:
        super().__init__(config, token)
        self.client = self.client.withLazy(True)  # naming the repository costs no request

    def create(self, repo: str, sha: str, ref: str, settings: Deployments) -> str:
        """A new deployment of `sha`; returns its id. Required contexts are left empty: the
        commit is already applied when it is recorded, whatever its other checks say."""
        try:
            deployment = self.client.get_repo(repo).create_deployment(
                ref=sha,
                environment=settings.environment,
                auto_merge=False,
                required_contexts=[],
                description=f"hooksync apply of {ref}",
            )
            return str(deployment.id)
        except github.GithubException as exc:
            raise github_error(exc) from None
        except (requests.RequestException, OSError) as exc:
            raise HostUnavailable(f"GitHub unreachable: {type(exc).__name__}", 0) from None

    def update(
        self, repo: str, deployment: str, settings: Deployments, update: DeploymentUpdate
    ) -> None:
        fields: dict[str, Any] = {
            "state": GITHUB_STATES[update.stage],
            "description": shorten(update.description, GITHUB_DESCRIPTION_LIMIT),
            "environment": settings.environment,
        }
        # PyGithub's create_status predates log_url; its requester posts the documented
        # fields (log_url also sets target_url on GitHub's side).
        if update.log_url:
            fields["log_url"] = update.log_url
        if settings.environment_url:
            fields["environment_url"] = settings.environment_url
        try:
            self.client.requester.requestJsonAndCheck(
                "POST", f"/repos/{repo}/deployments/{int(deployment)}/statuses", input=fields
            )
        except github.GithubException as exc:
            raise github_error(exc) from None
        except (requests.RequestException, OSError) as exc:
            raise HostUnavailable(f"GitHub unreachable: {type(exc).__name__}", 0) from None


class GitLabDeployments(GitLabStatuses):
    def create(self, repo: str, sha: str, ref: str, settings: Deployments) -> str:
        """A new deployment of `sha` on branch `ref`, in its environment (GitLab creates the
        environment on first use; its external URL is set here when configured)."""
        self._throttled_for = 0.0
        quick: dict[str, Any] = {"obey_rate_limit": False}
        try:
            project = self.client.projects.get(repo, lazy=True)
            if settings.environment_url:
                self._environment(project, settings, quick)
            fields = {
                "environment": settings.environment,
                "sha": sha,
                "ref": ref,
                "tag": False,
                "status": GITLAB_STATES["running"],
            }
            deployment = project.deployments.create(fields, **quick)
            return str(deployment.id)
        except gitlab.exceptions.GitlabError as exc:
            raise gitlab_error(exc, self._throttled_for) from None
        except (requests.RequestException, OSError) as exc:
            raise HostUnavailable(f"GitLab unreachable: {type(exc).__name__}", 0) from None

    def update(
        self, repo: str, deployment: str, settings: Deployments, update: DeploymentUpdate
    ) -> None:
        if update.stage == "running":
            return  # created running
        self._throttled_for = 0.0
        try:
            project = self.client.projects.get(repo, lazy=True)
            project.deployments.update(
                int(deployment), {"status": GITLAB_STATES[update.stage]}, obey_rate_limit=False
            )
        except gitlab.exceptions.GitlabError as exc:
            raise gitlab_error(exc, self._throttled_for) from None
        except (requests.RequestException, OSError) as exc:
            raise HostUnavailable(f"GitLab unreachable: {type(exc).__name__}", 0) from None

    def _environment(self, project: Any, settings: Deployments, quick: dict[str, Any]) -> None:
        """Create the environment with its URL, or correct the URL of the one there."""
        found = project.environments.list(name=settings.environment, get_all=False, **quick)
        wanted = {"external_url": settings.environment_url}
        if not found:
            project.environments.create({"name": settings.environment, **wanted}, **quick)
        elif found[0].attributes.get("external_url") != settings.environment_url:
            project.environments.update(found[0].id, wanted, **quick)
