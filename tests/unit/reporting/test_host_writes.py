"""Preview comments and deployments through the real PyGithub and python-gitlab clients
against the local stand-ins: one comment per target, found again and edited, never doubled."""

from __future__ import annotations

import pytest

from hooksync.config import Config, Deployments, parse_config
from receiver.reporting.comments import marker
from receiver.reporting.deployments import (
    DeploymentUpdate,
    GitHubDeployments,
    GitLabDeployments,
)
from receiver.reporting.githosts import HostRejected, HostUnavailable
from receiver.reporting.pullcomments import GitHubComments, GitLabComments
from world.githosts import STANDIN_TOKEN, GitHubStandIn, GitLabStandIn

PROJECT = "acme/platform/shop"
SHA = "d" * 40
RUN = "https://hooks.example/runs/hooksync-shop-apply-ddddddd?sig=x"


def config_for(
    github_url: str = "https://api.github.com", gitlab_url: str = "https://gitlab.com"
) -> Config:
    return parse_config(
        f"jobImage: img\npublicURL: http://127.0.0.1\ngithub: {{apiURL: '{github_url}'}}\n"
        f"gitlab: {{apiURL: '{gitlab_url}'}}\n"
        "targets:\n- {name: shop, provider: github, repo: acme/shop, branch: main,"
        " namespace: shop, serviceAccount: sa}\n"
    )


def body(target: str, text: str) -> str:
    return f"{marker(target)}\n\n{text}\n"


def test_github_comment_is_created_once_then_edited(github_host: GitHubStandIn) -> None:
    comments = GitHubComments(config_for(github_url=github_host.api_url), STANDIN_TOKEN)
    # Other people's comments fill several pages; one copies the marker to bait an edit.
    for n in range(70):
        github_host.add_comment("acme/shop", 7, f"comment {n}", login="reviewer")
    github_host.add_comment("acme/shop", 7, body("shop", "fake"), login="mallory")

    assert comments.upsert("acme/shop", 7, "shop", body("shop", "first head")) == "created"
    assert comments.upsert("acme/shop", 7, "shop", body("shop", "second head")) == "edited"
    assert comments.upsert("acme/shop", 7, "shop", body("shop", "second head")) == "unchanged"
    assert comments.upsert("acme/shop", 7, "web", body("web", "other target")) == "created"

    ours = [c for c in github_host.comments("acme/shop", 7) if c["user"]["login"] != "reviewer"]
    assert [(c["user"]["login"], c["body"]) for c in ours] == [
        ("mallory", body("shop", "fake")),
        ("hooksync-bot", body("shop", "second head")),
        ("hooksync-bot", body("web", "other target")),
    ]
    pages = {c.query.get("page", "1") for c in github_host.calls if c.path.endswith("/comments")}
    assert {"1", "2", "3"} <= pages  # every page was read
    writes = [c for c in github_host.calls if c.method != "GET"]
    assert [c.method for c in writes] == ["POST", "PATCH", "POST"]
    assert all(c.headers["user-agent"].startswith("PyGithub") for c in github_host.calls)


def test_github_refuses_a_body_over_its_limit_as_github_does(github_host: GitHubStandIn) -> None:
    comments = GitHubComments(config_for(github_url=github_host.api_url), STANDIN_TOKEN)
    with pytest.raises(HostRejected, match="422"):
        comments.upsert("acme/shop", 7, "shop", body("shop", "x" * 65_536))
    answer = github_host.calls[-1]
    assert answer.status == 422
    assert github_host.comments("acme/shop", 7) == []


def test_github_rate_limit_on_comments_asks_to_wait(github_host: GitHubStandIn) -> None:
    comments = GitHubComments(config_for(github_url=github_host.api_url), STANDIN_TOKEN)
    github_host.fail_next(1, status=403, retry_after=30, path="/comments")
    with pytest.raises(HostUnavailable) as caught:
        comments.upsert("acme/shop", 7, "shop", body("shop", "x"))
    assert caught.value.retry_after == 30


def test_gitlab_note_is_created_once_then_edited(gitlab_host: GitLabStandIn) -> None:
    comments = GitLabComments(config_for(gitlab_url=gitlab_host.url), STANDIN_TOKEN)
    for n in range(45):
        gitlab_host.add_note(PROJECT, 3, f"note {n}", username="reviewer")
    gitlab_host.add_note(PROJECT, 3, body("shop", "system"), username="hooksync-bot", system=True)
    gitlab_host.add_note(PROJECT, 3, body("shop", "fake"), username="mallory")

    assert comments.upsert(PROJECT, 3, "shop", body("shop", "first head")) == "created"
    assert comments.upsert(PROJECT, 3, "shop", body("shop", "second head")) == "edited"
    ours = [n for n in gitlab_host.notes(PROJECT, 3) if n["body"].startswith(marker("shop"))]
    assert [(n["author"]["username"], n["system"], n["body"]) for n in ours] == [
        ("hooksync-bot", True, body("shop", "system")),
        ("mallory", False, body("shop", "fake")),
        ("hooksync-bot", False, body("shop", "second head")),
    ]
    writes = [c for c in gitlab_host.calls if c.method != "GET"]
    assert [c.method for c in writes] == ["POST", "PUT"]
    assert all(c.headers["user-agent"].startswith("python-gitlab") for c in gitlab_host.calls)


def test_github_deployment_goes_in_progress_then_success(github_host: GitHubStandIn) -> None:
    host = GitHubDeployments(config_for(github_url=github_host.api_url), STANDIN_TOKEN)
    settings = Deployments("production", "https://shop.example")
    deployment = host.create("acme/shop", SHA, "main", settings)
    host.update("acme/shop", deployment, settings, DeploymentUpdate("running", "applying", RUN))
    host.update("acme/shop", deployment, settings, DeploymentUpdate("success", "applied 3", RUN))

    [found] = github_host.deployments("acme/shop")
    assert (found["sha"], found["environment"]) == (SHA, "production")
    assert [
        (s["state"], s["log_url"], s["environment_url"], s["description"])
        for s in found["statuses"]
    ] == [
        ("in_progress", RUN, "https://shop.example", "applying"),
        ("success", RUN, "https://shop.example", "applied 3"),
    ]


def test_gitlab_deployment_runs_then_fails_in_its_environment(gitlab_host: GitLabStandIn) -> None:
    host = GitLabDeployments(config_for(gitlab_url=gitlab_host.url), STANDIN_TOKEN)
    settings = Deployments("shop", "https://shop.example")
    deployment = host.create(PROJECT, SHA, "main", settings)
    host.update(PROJECT, deployment, settings, DeploymentUpdate("running", "applying", RUN))
    host.update(PROJECT, deployment, settings, DeploymentUpdate("failure", "apply failed", RUN))
    second = host.create(PROJECT, SHA, "main", Deployments("shop", "https://new.example"))
    host.update(PROJECT, second, settings, DeploymentUpdate("success", "applied", RUN))

    found = gitlab_host.deployments(PROJECT)
    assert [(d["sha"], d["ref"], d["history"]) for d in found] == [
        (SHA, "main", ["running", "failed"]),
        (SHA, "main", ["running", "success"]),
    ]
    # One environment, created once, its URL kept up to date with the configuration.
    assert {d["environment"]["id"] for d in found} == {found[0]["environment"]["id"]}
    assert found[-1]["environment"]["external_url"] == "https://new.example"
