"""The world's signatures against the published examples, so a delivery it signs is one a Git
host could have sent."""

from __future__ import annotations

import json

from world.webhooks import (
    github_delivery,
    github_push,
    github_signature,
    gitlab_signed_delivery,
    receiver_config,
    standard_webhook_signature,
    target_config,
)


def test_github_signature_matches_githubs_documented_example() -> None:
    # "Validating webhook deliveries" in GitHub's documentation.
    assert github_signature(b"Hello, World!", "It's a Secret to Everybody") == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )


def test_standard_webhook_signature_matches_the_specifications_test_vector() -> None:
    signature = standard_webhook_signature(
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_a_replayed_delivery_is_the_same_bytes_and_a_new_one_is_not() -> None:
    push = github_push("acme/shop", "a" * 40, secret="s")
    assert push.sha == "a" * 40 and push.path == "/hooks/github"
    assert json.loads(push.body)["after"] == "a" * 40
    assert push.headers["X-Hub-Signature-256"] == github_signature(push.body, "s")
    again = github_push("acme/shop", "a" * 40, secret="s")
    assert again.body == push.body and again.delivery_id != push.delivery_id


def test_signed_body_lets_a_delivery_carry_a_signature_of_other_bytes() -> None:
    github = github_delivery("push", b"{}", secret="s", signed_body=b"[]")
    assert github.headers["X-Hub-Signature-256"] == github_signature(b"[]", "s")
    gitlab = gitlab_signed_delivery("Push Hook", b"{}", signed_body=b"[]", timestamp=1)
    assert gitlab.headers["webhook-signature"] == standard_webhook_signature(
        gitlab.delivery_id, 1, b"[]"
    )


def test_receiver_config_points_every_outside_address_nowhere() -> None:
    config = receiver_config("jobs", [target_config("shop", "github", "acme/shop")], x=1)
    assert config["namespace"] == "jobs" and config["x"] == 1
    assert config["github"]["apiURL"].startswith("http://127.0.0.1:9")
    [target] = config["targets"]
    assert target["cloneURL"].startswith("http://127.0.0.1:9/")
    assert target["namespace"] == "app-shop"
