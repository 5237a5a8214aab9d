"""Posting commit statuses to GitHub and Gitea/Forgejo (PyGithub) and GitLab (python-gitlab).

A post either succeeds, counts as already done (GitLab's "Cannot transition status"), or
raises HostUnavailable with how long to wait: Retry-After or the rate-limit reset when the host
says, exponential backoff for 5xx and network errors.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import github
import gitlab
import requests

from hooksync.config import Config
from receiver.reporting.statuses import (
    FAILURE,
    GITHUB_DESCRIPTION_LIMIT,
    GITLAB_DESCRIPTION_LIMIT,
    StatusReport,
    shorten,
)

log = logging.getLogger("hooksync.receiver")

TIMEOUT_SECONDS = 10
MAX_WAIT_SECONDS = 900.0


class HostUnavailable(Exception):
    """The Git host refused or failed for now; try again after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class HostRejected(Exception):
    """The Git host refused this status for good (unknown repository, bad token)."""


class GitHubStatuses:
    def __init__(self, config: Config, token: str | None, api_url: str | None = None) -> None:
        self.client = github.Github(
            base_url=api_url or config.github_api_url,
            auth=github.Auth.Token(token) if token else None,
            retry=None,
            timeout=TIMEOUT_SECONDS,
        )

    def post(self, repo: str, report: StatusReport, target_url: str | None) -> None:
        state = "failure" if report.state == FAILURE else report.state
        fields: dict[str, Any] = {
            "state": state,
            "description": shorten(report.description, GITHUB_DESCRIPTION_LIMIT),
            "context": report.context,
        }
        if target_url:
            fields["target_url"] = target_url
        try:
            # One POST per status, through PyGithub's requester (which keeps GitHub's documented
            # pacing of content-creating requests): reading the commit first would double the
            # calls. `repo` and the SHA were validated when the config and event were parsed.
            self.client.requester.requestJsonAndCheck(
                "POST", f"/repos/{repo}/statuses/{report.sha}", input=fields
            )
        except github.GithubException as exc:
            raise github_error(exc) from None
        except (requests.RequestException, OSError) as exc:
            raise HostUnavailable(f"GitHub unreachable: {type(exc).__name__}", 0) from None


class GiteaStatuses(GitHubStatuses):
    """Gitea and Forgejo take GitHub's status call at /api/v1 (same path, fields and states),
    so PyGithub posts there: one well-kept client for both, no Gitea SDK for a single call."""

    def __init__(self, config: Config, token: str | None) -> None:
        super().__init__(config, token, api_url=config.gitea_api_url)


class GitLabStatuses:
    def __init__(self, config: Config, token: str | None) -> None:
        self.client = gitlab.Gitlab(
            url=config.gitlab_api_url,
            private_token=token,
            timeout=TIMEOUT_SECONDS,
            retry_transient_errors=False,
        )
        # python-gitlab's errors carry no headers; the wait a 429 asks for is noted here.
        self._throttled_for = 0.0
        self.client.session.hooks["response"].append(self._note_throttle)

    def _note_throttle(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if response.status_code == 429:
            headers = {k.lower(): v for k, v in response.headers.items()}
            known = "retry-after" in headers or "ratelimit-reset" in headers
            self._throttled_for = rate_limit_wait(headers) if known else 0.0

    def post(self, repo: str, report: StatusReport, target_url: str | None) -> None:
        state = {"failure": "failed"}.get(report.state, report.state)
        fields: dict[str, Any] = {
            "state": state,
            "name": report.context,
            "description": shorten(report.description, GITLAB_DESCRIPTION_LIMIT),
        }
        if target_url:
            fields["target_url"] = target_url
        self._throttled_for = 0.0
        try:
            project = self.client.projects.get(repo, lazy=True)
            # obey_rate_limit is a per-request option (the constructor does not take it):
            # a 429 must come back to the reporter, not sleep in this thread.
            project.commits.get(report.sha, lazy=True).statuses.create(
                fields, obey_rate_limit=False
            )
        except gitlab.exceptions.GitlabError as exc:
            code = exc.response_code or 0
            if code == 400 and "Cannot transition status" in str(exc.error_message):
                return  # this state is already on the commit: as good as posted
            raise gitlab_error(exc, self._throttled_for) from None
        except (requests.RequestException, OSError) as exc:
            raise HostUnavailable(f"GitLab unreachable: {type(exc).__name__}", 0) from None


def gitlab_error(exc: gitlab.exceptions.GitlabError, throttled_for: float) -> Exception:
    """HostUnavailable for a 429 (waiting `throttled_for`, as the answer asked) or a 5xx;
    HostRejected for the rest (401, 403, 404, other 4xx), which trying again will not change."""
    code = exc.response_code or 0
    if code == 429:
        return HostUnavailable(f"GitLab answered {code}", throttled_for)
    if code >= 500:
        return HostUnavailable(f"GitLab answered {code}", 0)
    return HostRejected(f"GitLab answered {code}: {str(exc.error_message)[:200]}")


def github_error(exc: github.GithubException) -> Exception:
    status = exc.status or 0
    headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
    if status in (403, 429) and (
        "retry-after" in headers
        or headers.get("x-ratelimit-remaining") == "0"
        or isinstance(exc, github.RateLimitExceededException)
    ):
        return HostUnavailable(f"GitHub rate limit ({status})", rate_limit_wait(headers))
    if status >= 500 or status == 429:
        return HostUnavailable(f"GitHub answered {status}", 0)
    message = exc.data.get("message") if isinstance(exc.data, dict) else str(exc.data)
    return HostRejected(f"GitHub answered {status}: {str(message)[:200]}")


def rate_limit_wait(headers: dict[str, str]) -> float:
    """Seconds to wait, from Retry-After, else the limit's reset time (Unix seconds: GitHub's
    X-RateLimit-Reset, GitLab's RateLimit-Reset), else a minute; never over MAX_WAIT_SECONDS."""
    if "retry-after" in headers:
        try:
            return min(MAX_WAIT_SECONDS, max(0.0, float(headers["retry-after"])))
        except ValueError:
            pass
    for name in ("x-ratelimit-reset", "ratelimit-reset"):
        if name in headers:
            try:
                return min(MAX_WAIT_SECONDS, max(0.0, float(headers[name]) - time.time()))
            except ValueError:
                pass
    return 60.0
