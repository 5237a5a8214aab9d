"""Gitea and Forgejo targets in the configuration file: the API URL they need, the clone URL
it gives, and repository names that ignore case."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from hooksync.config import ConfigError, parse_config
from receiver.pages.status import commit_url
from receiver.secrets import ReceiverSecrets

SHA = "c" * 40


def document(**top: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "jobImage": "ghcr.io/acme/hooksync-job:0.1.0",
        "publicURL": "https://hooksync.example.com",
        "gitea": {"apiURL": "https://codeberg.org/api/v1/"},
        "targets": [
            {
                "name": "shop",
                "provider": "gitea",
                "repo": "Acme/shop",
                "namespace": "shop",
                "serviceAccount": "hooksync-shop",
            }
        ],
    }
    doc.update(top)
    return doc


def test_a_gitea_target_clones_from_the_server_of_its_api() -> None:
    config = parse_config(yaml.safe_dump(document()))
    target = config.targets[0]
    assert config.gitea_api_url == "https://codeberg.org/api/v1"
    assert target.clone_url == "https://codeberg.org/Acme/shop.git"
    assert commit_url(config, target, SHA) == f"https://codeberg.org/Acme/shop/commit/{SHA}"


def test_gitea_repository_names_ignore_case() -> None:
    target = parse_config(yaml.safe_dump(document())).targets[0]
    assert target.repo_matches("acme/SHOP")
    assert not target.repo_matches("acme/shop2")


@pytest.mark.parametrize("gitea", [None, {}])
def test_a_gitea_target_without_the_api_url_is_refused(gitea: Any) -> None:
    doc = document(gitea=gitea)
    doc["targets"][0]["cloneURL"] = "https://git.example.com/Acme/shop.git"
    with pytest.raises(
        ConfigError, match=r"targets\[0\] \(shop\)\.provider: gitea needs gitea\.apiURL"
    ):
        parse_config(yaml.safe_dump(doc))


def test_a_bad_gitea_api_url_is_named() -> None:
    with pytest.raises(ConfigError, match=r"gitea\.apiURL: 'codeberg\.org' is not an http"):
        parse_config(yaml.safe_dump(document(gitea={"apiURL": "codeberg.org"})))


def test_gitea_secrets_come_from_their_own_variables() -> None:
    secrets = ReceiverSecrets.from_environment(
        {"HOOKSYNC_GITEA_WEBHOOK_SECRET": "hook", "HOOKSYNC_GITEA_TOKEN": "token"}
    )
    assert secrets.gitea_webhook == ("hook",)
    assert secrets.gitea_token == "token"
    assert secrets.github_webhook == ()
