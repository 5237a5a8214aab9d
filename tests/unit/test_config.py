"""The configuration file: defaults, and an error that names the field for every mistake."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from hooksync.config import (
    DEFAULT_BURST_MAX_WAIT_SECONDS,
    DEFAULT_BURST_QUIET_SECONDS,
    Config,
    ConfigError,
    Deployments,
    HttpLimits,
    Target,
    default_clone_url,
    load_config,
    parse_config,
    read_secret,
    web_base,
)
from hooksync.providers import Provider
from hooksync.schedule import MACROS, CronError
from hooksync.schedule import parse as parse_schedule
from receiver.pages.status import commit_url


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
    assert (shop.preview_comments, shop.deployments) == (True, None)


def test_github_enterprise_and_gitlab_clone_urls_follow_the_api_url() -> None:
    config = parse(document(github={"apiURL": "https://git.acme.test/api/v3"}))
    assert config.targets[0].clone_url == "https://git.acme.test/acme/shop.git"
    gitlab = target(provider="gitlab", repo="acme/platform/shop")
    gitlab["gitlab"] = {"apiURL": "https://gitlab.acme.test"}
    assert parse(gitlab).targets[0].clone_url == "https://gitlab.acme.test/acme/platform/shop.git"


@pytest.mark.parametrize(
    ("provider", "api", "web"),
    [
        ("github", "https://api.github.com/", "https://github.com"),
        ("github", "https://git.acme.test/api/v3", "https://git.acme.test"),
        ("gitlab", "https://gitlab.acme.test", "https://gitlab.acme.test"),
        ("gitlab", "https://gitlab.acme.test/api/v4/", "https://gitlab.acme.test"),
    ],
)
def test_clone_urls_and_commit_pages_share_one_web_address(
    provider: Provider, api: str, web: str
) -> None:
    assert web_base(provider, api) == web
    assert default_clone_url(provider, "acme/shop", api, api) == f"{web}/acme/shop.git"
    config = Config("x", "https://h", targets=(), github_api_url=api, gitlab_api_url=api)
    shop = Target("shop", provider, "acme/shop", "https://x/y.git", "main", ".", "shop", "sa")
    assert (commit_url(config, shop, "a" * 40) or "").startswith(f"{web}/acme/shop/")


def test_comments_can_be_turned_off_and_deployments_on() -> None:
    (shop,) = parse(target(previewComments=False, deployments=True)).targets
    assert shop.preview_comments is False
    assert shop.deployments == Deployments("shop", None)
    settings = {"environment": "production", "environmentUrl": "https://shop.example"}
    (shop,) = parse(target(deployments=settings)).targets
    assert shop.deployments == Deployments("production", "https://shop.example")
    (shop,) = parse(target(deployments=False)).targets
    assert shop.deployments is None


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
        (target(resync="~7m"), "spread form like ~15m: schedule '~7m': the interval must divide"),
        (target(resync="H(0-99) * * * *"), "targets[0] (shop).resync: 'H(0-99) * * * *' is not"),
        (target(timeoutSeconds=5), "targets[0] (shop).timeoutSeconds: 5 must be a whole"),
        (target(prune="yes"), "targets[0] (shop).prune"),
        (target(sync=True), "targets[0] (shop).sync: unknown field"),
        (target(decryption="age-key"), "targets[0] (shop).decryption: must be a mapping"),
        (target(decryption={"secretRef": "Bad_Name"}),
         "targets[0] (shop).decryption.secretRef: 'Bad_Name' is not a Secret name"),
        (target(decryption={"secretRef": "k", "provider": "kms"}),
         "targets[0] (shop).decryption.provider: unknown field"),
        (target(previewComments="no"), "targets[0] (shop).previewComments: 'no' must be true"),
        (target(deployments="prod"), "targets[0] (shop).deployments: must be true, false or"),
        (target(deployments={"env": "x"}), "targets[0] (shop).deployments.env: unknown field"),
        (target(deployments={"environment": "a\nb"}), "deployments.environment: 'a\\nb' must"),
        (target(deployments={"environmentUrl": "ftp://x"}), "environmentUrl: 'ftp://x' is not"),
    ],
)  # fmt: skip
def test_each_mistake_is_named_by_its_field(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(doc)
    assert message in str(caught.value)


def test_decryption_names_the_secret_holding_the_age_key() -> None:
    assert parse(document()).targets[0].decryption_secret is None
    config = parse(target(decryption={"secretRef": "shop-age"}))
    assert config.targets[0].decryption_secret == "shop-age"


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


# --- one cron grammar: the configuration accepts exactly what the schedule parser reads --------


def _config_accepts(schedule: str) -> bool:
    try:
        parse(target(resync=schedule))
    except ConfigError:
        return False
    return True


def _parser_reads(schedule: str) -> bool:
    try:
        parse_schedule(schedule)
    except CronError:
        return False
    return True


@pytest.mark.parametrize(
    ("schedule", "valid"),
    [
        ("@midnight", True),
        ("@daily", True),
        ("*/15 * * * *", True),
        ("0 3 * JAN-MAR mon-fri", True),
        ("99 * * * *", False),
        ("* 24 * * *", False),
        ("5-1 * * * *", False),
        ("@Daily", False),
        ("@every 5m", False),
        ("@reboot", False),
        ("* * * *", False),
    ],
)
def test_the_configuration_and_the_schedule_parser_agree(schedule: str, valid: bool) -> None:
    assert _config_accepts(schedule) is valid
    assert _parser_reads(schedule) is valid


_CRON_TEXT = st.one_of(
    st.sampled_from([*sorted(MACROS), "@every 1h", "@reboot", "@Hourly"]),
    st.lists(
        st.text(alphabet="0123456789*/,?-JANMOSUTHEW ", min_size=1, max_size=8),
        min_size=4,
        max_size=6,
    ).map(" ".join),
)


@settings(max_examples=300)
@given(schedule=_CRON_TEXT)
def test_every_schedule_the_configuration_accepts_the_schedule_parser_reads(schedule: str) -> None:
    assert _config_accepts(schedule) == _parser_reads(schedule), schedule


def test_the_http_limits_have_safe_defaults_for_the_pod() -> None:
    limits = parse(document()).http
    assert limits == HttpLimits()
    assert limits.unverified_body_bytes == 64 * 1024 * 1024
    assert limits.max_connections == 512
    assert (limits.max_header_bytes, limits.max_headers) == (16384, 100)
    assert limits.header_timeout_seconds == 10
    assert limits.body_timeout_seconds == 30
    assert limits.idle_timeout_seconds == 10
    assert limits.keep_alive_timeout_seconds == 5


def test_the_http_limits_can_be_set() -> None:
    http = {
        "maxConnections": 64,
        "unverifiedBodyBytes": 32 * 1024 * 1024,
        "headerTimeoutSeconds": 3,
        "bodyTimeoutSeconds": 7,
        "idleTimeoutSeconds": 2,
        "keepAliveTimeoutSeconds": 1,
        "maxHeaderBytes": 4096,
        "maxHeaders": 20,
    }
    limits = parse(document(http=http)).http
    assert limits == HttpLimits(64, 32 * 1024 * 1024, 3, 7, 2, 1, 4096, 20)


def test_a_larger_body_limit_raises_the_default_budget_with_it() -> None:
    config = parse(document(maxBodyBytes=100 * 1024 * 1024))
    assert config.http.unverified_body_bytes == 100 * 1024 * 1024


@pytest.mark.parametrize(
    ("http", "message"),
    [
        (
            {"unverifiedBodyBytes": 1024 * 1024},
            "http.unverifiedBodyBytes: 1048576 is less than maxBodyBytes 10485760",
        ),
        ({"maxConnections": 0}, "http.maxConnections: 0 must be a whole number from 1"),
        ({"headerTimeoutSeconds": "10s"}, "http.headerTimeoutSeconds: '10s' must be a whole"),
        ({"maxHeaders": 2}, "http.maxHeaders: 2 must be a whole number from 10"),
        ({"readTimeout": 5}, "http.readTimeout: unknown field"),
        (["maxConnections"], "http: must be a mapping"),
    ],
)
def test_each_http_mistake_is_named_by_its_field(http: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(document(http=http))
    assert message in str(caught.value)


def test_suspend_is_off_unless_set_and_must_be_a_boolean() -> None:
    assert parse(document()).targets[0].suspend is False
    assert parse(target(suspend=True)).targets[0].suspend is True
    with pytest.raises(ConfigError, match=r"targets\[0\] \(shop\)\.suspend: 'yes' must be true"):
        parse(target(suspend="yes"))


def test_deployments_are_refused_for_gitea_which_has_no_such_api() -> None:
    doc = target(provider="gitea", deployments=True)
    doc["gitea"] = {"apiURL": "https://git.example/api/v1"}
    with pytest.raises(ConfigError, match="Gitea has no deployments API"):
        parse(doc)
