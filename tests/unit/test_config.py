"""The configuration file: defaults, and an error that names the field for every mistake."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from hooksync.config import (
    DEFAULT_BURST_MAX_WAIT_SECONDS,
    DEFAULT_BURST_QUIET_SECONDS,
    ConfigError,
    load_config,
    parse_config,
    read_secret,
)


def document(**top: Any) -> dict[str, Any]:
    """A valid configuration with one GitHub target; `top` overrides top-level fields."""
    doc: dict[str, Any] = {
        "jobImage": "ghcr.io/acme/hooksync-job:0.1.0",
        "publicURL": "https://hooksync.example.com/",
        "targets": [
            {
                "name": "shop",
                "provider": "github",
                "repo": "acme/shop",
                "branch": "main",
                "path": "deploy/prod",
                "namespace": "shop",
                "serviceAccount": "hooksync-shop",
            }
        ],
    }
    doc.update(top)
    return doc


def target(**fields: Any) -> dict[str, Any]:
    doc = document()
    doc["targets"][0].update(fields)
    return doc


def parse(doc: dict[str, Any]) -> Any:
    return parse_config(yaml.safe_dump(doc))


def test_a_minimal_file_gets_the_documented_defaults() -> None:
    config = parse(document())
    assert config.public_url == "https://hooksync.example.com"
    assert config.github_api_url == "https://api.github.com"
    assert config.max_body_bytes == 10 * 1024 * 1024
    assert config.job_ttl_seconds == 3600
    assert config.burst_quiet_seconds == DEFAULT_BURST_QUIET_SECONDS == 2
    assert config.burst_max_wait_seconds == DEFAULT_BURST_MAX_WAIT_SECONDS == 30
    (shop,) = config.targets
    assert shop.clone_url == "https://github.com/acme/shop.git"
    assert (shop.prune, shop.previews, shop.previews_from_forks) == (True, True, False)
    assert shop.timeout_seconds == 600


def test_github_enterprise_and_gitlab_clone_urls_follow_the_api_url() -> None:
    config = parse(document(github={"apiURL": "https://git.acme.test/api/v3"}))
    assert config.targets[0].clone_url == "https://git.acme.test/acme/shop.git"
    gitlab = target(provider="gitlab", repo="acme/platform/shop")
    gitlab["gitlab"] = {"apiURL": "https://gitlab.acme.test"}
    assert parse(gitlab).targets[0].clone_url == "https://gitlab.acme.test/acme/platform/shop.git"


def test_the_burst_window_can_be_set() -> None:
    config = parse(document(burstQuietSeconds=0, burstMaxWaitSeconds=0))
    assert (config.burst_quiet_seconds, config.burst_max_wait_seconds) == (0, 0)
    config = parse(document(burstQuietSeconds=5, burstMaxWaitSeconds=120))
    assert (config.burst_quiet_seconds, config.burst_max_wait_seconds) == (5, 120)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (document(burstQuietSeconds=10, burstMaxWaitSeconds=5),
         "burstMaxWaitSeconds: 5 is less than burstQuietSeconds 10"),
        (document(burstQuietSeconds=-1), "burstQuietSeconds: -1 must be a whole number"),
        (document(burstMaxWaitSeconds="30"), "burstMaxWaitSeconds: '30' must be a whole number"),
        (document(jobTTLSeconds=True), "jobTTLSeconds: True must be a whole number"),
        (document(maxBodyBytes=10), "maxBodyBytes: 10 must be a whole number from 1024"),
        (document(colour="blue"), "colour: unknown field"),
        (document(namespace="Hooksync"), "namespace: 'Hooksync' is not a DNS label"),
        (document(publicURL=None), "publicURL"),
        (document(targets=[]), "targets: must be a non-empty list"),
        (target(namespace="Shop"), "targets[0] (shop).namespace: 'Shop' is not a DNS label"),
        (target(name="a" * 31), "targets[0].name: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' is not a DNS"),
        (target(provider="bitbucket"), "targets[0] (shop).provider: 'bitbucket' is not one of"),
        (target(repo="acme/../shop"), "targets[0] (shop).repo: 'acme/../shop' is not an"),
        (target(branch="main..x"), "targets[0] (shop).branch: 'main..x' is not a valid Git"),
        (target(path="/etc"), "targets[0] (shop).path: '/etc' must be a relative path"),
        (target(path="../up"), "targets[0] (shop).path: '../up' must be a relative path"),
        (target(resync="every hour"), "targets[0] (shop).resync: 'every hour' is not a five"),
        (target(timeoutSeconds=5), "targets[0] (shop).timeoutSeconds: 5 must be a whole"),
        (target(prune="yes"), "targets[0] (shop).prune"),
        (target(sync=True), "targets[0] (shop).sync: unknown field"),
    ],
)  # fmt: skip
def test_each_mistake_is_named_by_its_field(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(doc)
    assert message in str(caught.value)


def test_two_targets_with_one_name_are_refused() -> None:
    doc = document()
    doc["targets"].append(dict(doc["targets"][0]))
    with pytest.raises(ConfigError, match=r"targets\[1\]\.name: 'shop' is used twice"):
        parse(doc)


def test_all_mistakes_are_reported_at_once() -> None:
    doc = target(namespace="Shop", branch="a b")
    doc["burstQuietSeconds"] = -5
    with pytest.raises(ConfigError) as caught:
        parse(doc)
    text = str(caught.value)
    assert "namespace" in text and "branch" in text and "burstQuietSeconds" in text


def test_files_that_are_not_a_mapping_or_not_yaml() -> None:
    with pytest.raises(ConfigError, match="the top level must be a mapping"):
        parse_config("- a\n- b\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_config("targets: [\n")


def test_a_missing_file_names_itself(tmp_path: Any) -> None:
    missing = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError, match=r"absent\.yaml: cannot read the configuration file"):
        load_config(missing)


def test_secrets_come_from_the_variable_or_one_per_line_of_a_file(tmp_path: Any) -> None:
    assert read_secret("S", {"S": "one"}) == ["one"]
    rotated = tmp_path / "secret"
    rotated.write_text("new\n\nold\n", encoding="utf-8")
    assert read_secret("S", {"S_FILE": str(rotated)}) == ["new", "old"]
    assert read_secret("S", {}) == []
    with pytest.raises(ConfigError, match="S_FILE: cannot read"):
        read_secret("S", {"S_FILE": str(tmp_path / "nope")})


def test_suspend_is_off_unless_set_and_must_be_a_boolean() -> None:
    assert parse(document()).targets[0].suspend is False
    assert parse(target(suspend=True)).targets[0].suspend is True
    with pytest.raises(ConfigError, match=r"targets\[0\] \(shop\)\.suspend: 'yes' must be true"):
        parse(target(suspend="yes"))
