"""How the Git hosts' answers to a status post become waits and refusals, through the real
PyGithub and python-gitlab clients against the local stand-ins."""

from __future__ import annotations

from hooksync.config import Config, parse_config
from receiver.reporting.githosts import (
    GitHubStatuses,
    GitLabStatuses,
    HostRejected,
    HostUnavailable,
)
from receiver.reporting.statuses import StatusReport
from world.githosts import STANDIN_TOKEN, GitHubStandIn, GitLabStandIn

TOKEN = STANDIN_TOKEN
PROJECT = "acme/platform/shop"
SHA = "c" * 40
REPORT = StatusReport(sha=SHA, state="pending", context="hooksync/deploy: shop",
                      description="deploying the branch head")  # fmt: skip


def config_for(
    github_url: str = "https://api.github.com", gitlab_url: str = "https://gitlab.com"
) -> Config:
    return parse_config(
        f"jobImage: img\npublicURL: http://127.0.0.1\ngithub: {{apiURL: '{github_url}'}}\n"
        f"gitlab: {{apiURL: '{gitlab_url}'}}\n"
        "targets:\n- {name: shop, provider: github, repo: acme/shop, branch: main,"
        " namespace: shop, serviceAccount: sa}\n"
    )


def posting_error(statuses: GitHubStatuses | GitLabStatuses, repo: str) -> Exception | None:
    try:
        statuses.post(repo, REPORT, None)
    except (HostUnavailable, HostRejected) as exc:
        return exc
    return None


def test_gitlab_429_waits_as_long_as_retry_after_says(gitlab_host: GitLabStandIn) -> None:
    statuses = GitLabStatuses(config_for(gitlab_url=gitlab_host.url), TOKEN)
    gitlab_host.fail_next(1, status=429, retry_after=37)
    error = posting_error(statuses, PROJECT)
    assert isinstance(error, HostUnavailable)
    assert error.retry_after == 37
    # The next post goes through and carries no wait from the one before.
    assert posting_error(statuses, PROJECT) is None
    assert [s["status"] for s in gitlab_host.statuses(PROJECT, SHA)] == ["pending"]


def test_gitlab_5xx_leaves_the_wait_to_backoff(gitlab_host: GitLabStandIn) -> None:
    statuses = GitLabStatuses(config_for(gitlab_url=gitlab_host.url), TOKEN)
    gitlab_host.fail_next(1, status=429, retry_after=37)
    assert isinstance(posting_error(statuses, PROJECT), HostUnavailable)
    gitlab_host.fail_next(1, status=503)
    error = posting_error(statuses, PROJECT)
    assert isinstance(error, HostUnavailable)
    assert error.retry_after == 0  # not the 37 s asked for by the earlier 429


def test_gitlab_unknown_project_is_refused_for_good(gitlab_host: GitLabStandIn) -> None:
    statuses = GitLabStatuses(config_for(gitlab_url=gitlab_host.url), TOKEN)
    assert isinstance(posting_error(statuses, "acme/elsewhere"), HostRejected)


def test_github_429_waits_as_long_as_retry_after_says(github_host: GitHubStandIn) -> None:
    statuses = GitHubStatuses(config_for(github_url=github_host.api_url), TOKEN)
    github_host.fail_next(1, status=429, retry_after=41)
    error = posting_error(statuses, "acme/shop")
    assert isinstance(error, HostUnavailable)
    assert error.retry_after == 41
    assert posting_error(statuses, "acme/shop") is None
    assert [s["state"] for s in github_host.statuses("acme/shop", SHA)] == ["pending"]
