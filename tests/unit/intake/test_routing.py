"""Routing events to targets: which targets, which mode, and why nothing."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hooksync.config import Target
from receiver.intake.events import IgnoredEvent, PingEvent, PreviewEvent, PushEvent
from receiver.intake.routing import JobRequest, Routing, route

SHA = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
OTHER_SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"


def target(name: str, provider: str, repo: str, branch: str, **settings: object) -> Target:
    return replace(
        Target(
            name=name,
            provider=provider,
            repo=repo,
            clone_url=f"https://git.example/{repo}.git",
            branch=branch,
            path="deploy",
            namespace=name,
            service_account=f"hooksync-{name}",
        ),
        **settings,
    )


SHOP = target("shop", "github", "acme/shop", "main")
SHOP_STAGING = target("shop-staging", "github", "acme/shop", "main", namespace="staging")
SHOP_DEV = target("shop-dev", "github", "acme/shop", "dev")
API = target("api", "github", "acme/api", "main", previews=False)
WEB = target("web", "gitlab", "acme/platform/web", "main", previews_from_forks=True)
TARGETS = (SHOP, SHOP_STAGING, SHOP_DEV, API, WEB)


def push(
    repo: str = "acme/shop", branch: str = "main", provider: str = "github", **fields: object
) -> PushEvent:
    event = PushEvent(
        provider=provider,
        repo=repo,
        ref=f"refs/heads/{branch}",
        branch=branch,
        after=SHA,
        before=OTHER_SHA,
        commits=(OTHER_SHA, SHA),
        delivery_id="d-1",
    )
    return replace(event, **fields)


def preview(
    repo: str = "acme/shop", base: str = "main", provider: str = "github", **fields: object
) -> PreviewEvent:
    event = PreviewEvent(
        provider=provider,
        repo=repo,
        base_branch=base,
        head_sha=OTHER_SHA,
        head_repo=repo,
        number=7,
        is_fork=False,
        action="opened",
        delivery_id="d-2",
    )
    return replace(event, **fields)


def routed_targets(routing: Routing) -> list[str]:
    return [r.target.name for r in routing.requests]


# Pushes


def test_push_reaches_every_target_following_the_branch() -> None:
    routing = route(push(), TARGETS)
    assert routing.requests == (
        JobRequest(target=SHOP, mode="apply", sha=SHA, ref="refs/heads/main", delivery_id="d-1"),
        JobRequest(
            target=SHOP_STAGING, mode="apply", sha=SHA, ref="refs/heads/main", delivery_id="d-1"
        ),
    )
    assert routing.reason == "apply 6113728 for target shop, shop-staging"


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (push(branch="dev"), ["shop-dev"]),
        (push(repo="ACME/Shop", branch="dev"), ["shop-dev"]),  # GitHub ignores case
        (push(repo="acme/api"), ["api"]),
        (push(repo="acme/platform/web", provider="gitlab"), ["web"]),
        (push(repo="Acme/Platform/Web", provider="gitlab"), []),  # GitLab does not
        (push(repo="acme/shop", provider="gitlab"), []),  # same path, other host
        (push(repo="acme/platform/web"), []),
        (push(branch="feature/x"), []),
        (push(repo="acme/shop-fork"), []),
    ],
)
def test_push_routing_table(event: PushEvent, expected: list[str]) -> None:
    assert routed_targets(route(event, TARGETS)) == expected


def test_unrouted_push_says_which_repository_and_branch() -> None:
    routing = route(push(branch="dev"), (SHOP,))
    assert routing == Routing((), "no target follows acme/shop branch dev")


def test_tag_push_routes_to_nothing() -> None:
    event = push(ref="refs/tags/v1.0.0", branch=None, tag="v1.0.0")
    assert route(event, TARGETS) == Routing(
        (), "tag v1.0.0 of acme/shop deploys nothing: targets follow branches"
    )


def test_tag_named_like_a_followed_branch_routes_to_nothing() -> None:
    event = push(ref="refs/tags/main", branch=None, tag="main")
    assert route(event, TARGETS).requests == ()


def test_deleted_push_routes_to_nothing() -> None:
    routing = route(push(deleted=True), TARGETS)
    assert routing.requests == ()
    assert "deleted" in routing.reason


def test_no_targets_at_all() -> None:
    assert route(push(), ()).requests == ()


# Previews


def test_pull_request_previews_the_head_on_targets_of_its_base_branch() -> None:
    routing = route(preview(), TARGETS)
    assert routing.requests == (
        JobRequest(
            target=SHOP,
            mode="preview",
            sha=OTHER_SHA,
            ref="refs/pull/7/head",
            delivery_id="d-2",
            pr_number=7,
        ),
        JobRequest(
            target=SHOP_STAGING,
            mode="preview",
            sha=OTHER_SHA,
            ref="refs/pull/7/head",
            delivery_id="d-2",
            pr_number=7,
        ),
    )


def test_merge_request_uses_gitlabs_head_ref() -> None:
    routing = route(preview(repo="acme/platform/web", provider="gitlab", number=3), TARGETS)
    assert [(r.target.name, r.ref) for r in routing.requests] == [
        ("web", "refs/merge-requests/3/head")
    ]


def test_pull_request_into_an_unfollowed_branch() -> None:
    assert route(preview(base="release"), TARGETS) == Routing(
        (), "no target follows acme/shop branch release (pull request #7)"
    )


def test_pull_request_on_a_target_with_previews_off() -> None:
    assert route(preview(repo="acme/api"), TARGETS) == Routing(
        (), "previews are off for target api (pull request #7)"
    )


def test_fork_pull_request_is_not_previewed_by_default() -> None:
    event = preview(is_fork=True, head_repo="mallory/shop")
    assert route(event, TARGETS) == Routing(
        (),
        "pull request #7 comes from fork mallory/shop; target shop, shop-staging does not "
        "preview forks (previewsFromForks: false)",
    )


def test_fork_pull_request_reaches_only_targets_that_allow_forks() -> None:
    trusting = replace(SHOP_STAGING, previews_from_forks=True)
    event = preview(is_fork=True, head_repo=None)
    assert routed_targets(route(event, (SHOP, trusting))) == ["shop-staging"]


def test_fork_merge_request_on_a_target_that_allows_forks() -> None:
    event = preview(repo="acme/platform/web", provider="gitlab", is_fork=True, head_repo="eve/web")
    assert routed_targets(route(event, TARGETS)) == ["web"]


def test_pull_request_from_another_host_does_not_match() -> None:
    assert route(preview(provider="gitlab"), TARGETS).requests == ()


# Everything else


def test_ping_routes_to_nothing_and_echoes_zen() -> None:
    event = PingEvent(provider="github", zen="Keep it logically awesome.", hook_id=1)
    assert route(event, TARGETS) == Routing((), "ping from github: Keep it logically awesome.")


def test_ignored_event_keeps_its_reason() -> None:
    assert route(IgnoredEvent("pull_request action 'closed' needs no preview"), TARGETS) == (
        Routing((), "pull_request action 'closed' needs no preview")
    )


# Suspended targets


def test_a_push_to_suspended_targets_only_starts_nothing_and_names_them() -> None:
    targets = (replace(SHOP, suspend=True), replace(SHOP_STAGING, suspend=True), SHOP_DEV)
    routing = route(push(), targets)
    assert routing.requests == ()
    assert routing.suspended == ("shop", "shop-staging")
    assert routing.reason == (
        "target shop, shop-staging is suspended (suspend: true); no Job started"
    )


def test_a_push_reaches_the_targets_that_are_not_suspended() -> None:
    routing = route(push(), (SHOP, replace(SHOP_STAGING, suspend=True)))
    assert routed_targets(routing) == ["shop"]
    assert routing.suspended == ("shop-staging",)
    assert routing.reason == f"apply {SHA[:7]} for target shop; target shop-staging is suspended"


def test_a_pull_request_into_a_suspended_target_is_not_previewed() -> None:
    routing = route(preview(), (replace(SHOP, suspend=True),))
    assert routing.requests == ()
    assert routing.suspended == ("shop",)
    assert routing.reason.endswith("no Job started (pull request #7)")
    # A target with previews off says so, whether or not another one is suspended.
    off = route(preview(repo="acme/api"), (API,))
    assert off.suspended == () and "previews are off" in off.reason
