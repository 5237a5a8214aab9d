"""The configuration file: targets and where things are, validated into typed values.

Secrets never sit in this file; `read_secret` takes them from the environment or from files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import yaml

from hooksync.refs import is_valid_branch_name

PROVIDERS = ("github", "gitlab")
MAX_TARGET_NAME = 30
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
DEFAULT_LINK_TTL_SECONDS = 7 * 24 * 3600
DEFAULT_BURST_QUIET_SECONDS = 2
DEFAULT_BURST_MAX_WAIT_SECONDS = 30

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_GITHUB_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_GITLAB_REPO = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]*(/[A-Za-z0-9_.][A-Za-z0-9_.-]*)+$")
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,?-]+$")


class ConfigError(ValueError):
    """The configuration file is missing, unreadable or invalid; the message names the field."""


@dataclass(frozen=True)
class Target:
    """One namespace that one Git branch and path converge."""

    name: str
    provider: str
    repo: str
    clone_url: str
    branch: str
    path: str
    namespace: str
    service_account: str
    git_secret: str | None = None
    prune: bool = True
    resync: str = ""
    previews: bool = True
    previews_from_forks: bool = False
    timeout_seconds: int = 600
    # Paused: deliveries start no Job and the resync CronJob is suspended.
    suspend: bool = False

    def repo_matches(self, repo: str) -> bool:
        """Whether a payload's repository names this target's (GitHub ignores case)."""
        if self.provider == "github":
            return repo.lower() == self.repo.lower()
        return repo == self.repo


@dataclass(frozen=True)
class Config:
    """The whole configuration file."""

    job_image: str
    public_url: str
    targets: tuple[Target, ...]
    namespace: str | None = None
    github_api_url: str = "https://api.github.com"
    gitlab_api_url: str = "https://gitlab.com"
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    link_ttl_seconds: int = DEFAULT_LINK_TTL_SECONDS
    delivery_window_seconds: int = 24 * 3600
    job_ttl_seconds: int = 3600
    burst_quiet_seconds: int = DEFAULT_BURST_QUIET_SECONDS
    burst_max_wait_seconds: int = DEFAULT_BURST_MAX_WAIT_SECONDS
    extra: Mapping[str, Any] = field(default_factory=dict)

    def target(self, name: str) -> Target:
        for target in self.targets:
            if target.name == name:
                return target
        raise ConfigError(f"no target named {name!r}; known: {', '.join(self.target_names())}")

    def target_names(self) -> list[str]:
        return [t.name for t in self.targets]


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate the configuration file at `path`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file: {exc.strerror}") from None
    return parse_config(text, source=str(path))


def parse_config(text: str, source: str = "config") -> Config:
    """Validate configuration YAML; every problem is reported with the field that has it."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    errors: list[str] = []
    config = _build_config(document, errors)
    if errors or config is None:
        raise ConfigError(f"{source}: " + "; ".join(errors))
    return config


def _build_config(doc: dict[str, Any], errors: list[str]) -> Config | None:
    known = {
        "namespace",
        "jobImage",
        "publicURL",
        "github",
        "gitlab",
        "targets",
        "maxBodyBytes",
        "linkTTLSeconds",
        "deliveryWindowSeconds",
        "jobTTLSeconds",
        "burstQuietSeconds",
        "burstMaxWaitSeconds",
    }
    for key in doc:
        if key not in known:
            errors.append(f"{key}: unknown field (known: {', '.join(sorted(known))})")
    namespace = doc.get("namespace")
    if namespace is not None and not _is_dns_label(namespace):
        errors.append(f"namespace: {namespace!r} is not a DNS label")
    job_image = _string(doc, "jobImage", "jobImage", errors, required=True)
    public_url = _url(doc.get("publicURL"), "publicURL", errors, required=True)
    github_api = _url(_section(doc, "github", errors).get("apiURL"), "github.apiURL", errors)
    gitlab_api = _url(_section(doc, "gitlab", errors).get("apiURL"), "gitlab.apiURL", errors)
    github_api = github_api or "https://api.github.com"
    gitlab_api = gitlab_api or "https://gitlab.com"
    max_body = _int(doc, "maxBodyBytes", "maxBodyBytes", errors, DEFAULT_MAX_BODY_BYTES, 1024)
    link_ttl = _int(doc, "linkTTLSeconds", "linkTTLSeconds", errors, DEFAULT_LINK_TTL_SECONDS, 60)
    window = _int(doc, "deliveryWindowSeconds", "deliveryWindowSeconds", errors, 24 * 3600, 60)
    job_ttl = _int(doc, "jobTTLSeconds", "jobTTLSeconds", errors, 3600, 0)
    quiet = _int(doc, "burstQuietSeconds", "burstQuietSeconds", errors,
                 DEFAULT_BURST_QUIET_SECONDS, 0)  # fmt: skip
    max_wait = _int(doc, "burstMaxWaitSeconds", "burstMaxWaitSeconds", errors,
                    DEFAULT_BURST_MAX_WAIT_SECONDS, 0)  # fmt: skip
    if max_wait < quiet:
        errors.append(f"burstMaxWaitSeconds: {max_wait} is less than burstQuietSeconds {quiet}")

    raw_targets = doc.get("targets")
    targets: list[Target] = []
    if not isinstance(raw_targets, list) or not raw_targets:
        errors.append("targets: must be a non-empty list")
    else:
        seen: set[str] = set()
        for index, raw in enumerate(raw_targets):
            target = _build_target(raw, f"targets[{index}]", github_api, gitlab_api, errors)
            if target is None:
                continue
            if target.name in seen:
                errors.append(f"targets[{index}].name: {target.name!r} is used twice")
            seen.add(target.name)
            targets.append(target)
    if errors:
        return None
    return Config(
        job_image=job_image or "",
        public_url=(public_url or "").rstrip("/"),
        targets=tuple(targets),
        namespace=namespace,
        github_api_url=github_api.rstrip("/"),
        gitlab_api_url=gitlab_api.rstrip("/"),
        max_body_bytes=max_body,
        link_ttl_seconds=link_ttl,
        delivery_window_seconds=window,
        job_ttl_seconds=job_ttl,
        burst_quiet_seconds=quiet,
        burst_max_wait_seconds=max_wait,
    )


def _build_target(
    raw: Any, where: str, github_api: str, gitlab_api: str, errors: list[str]
) -> Target | None:
    if not isinstance(raw, dict):
        errors.append(f"{where}: must be a mapping")
        return None
    before = len(errors)
    known = {
        "name",
        "provider",
        "repo",
        "cloneURL",
        "branch",
        "path",
        "namespace",
        "serviceAccount",
        "gitSecret",
        "prune",
        "resync",
        "previews",
        "previewsFromForks",
        "timeoutSeconds",
        "suspend",
    }
    name = raw.get("name")
    label = f"{where}" if not isinstance(name, str) else f"{where} ({name})"
    for key in raw:
        if key not in known:
            errors.append(f"{label}.{key}: unknown field")
    if not isinstance(name, str) or not _is_dns_label(name) or len(name) > MAX_TARGET_NAME:
        errors.append(
            f"{where}.name: {name!r} is not a DNS label of at most {MAX_TARGET_NAME} characters"
        )
    provider = raw.get("provider")
    if provider not in PROVIDERS:
        errors.append(f"{label}.provider: {provider!r} is not one of {', '.join(PROVIDERS)}")
    repo = raw.get("repo")
    pattern = _GITLAB_REPO if provider == "gitlab" else _GITHUB_REPO
    if not isinstance(repo, str) or not pattern.match(repo) or ".." in repo:
        errors.append(f"{label}.repo: {repo!r} is not an owner/name repository path")
    branch = raw.get("branch", "main")
    if not isinstance(branch, str) or not is_valid_branch_name(branch):
        errors.append(f"{label}.branch: {branch!r} is not a valid Git branch name")
    path = raw.get("path", ".")
    if not isinstance(path, str) or not _is_relative_path(path):
        errors.append(f"{label}.path: {path!r} must be a relative path inside the repository")
    namespace = raw.get("namespace")
    if not isinstance(namespace, str) or not _is_dns_label(namespace):
        errors.append(f"{label}.namespace: {namespace!r} is not a DNS label")
    service_account = raw.get("serviceAccount")
    if not isinstance(service_account, str) or not _DNS_SUBDOMAIN.match(service_account):
        errors.append(f"{label}.serviceAccount: {service_account!r} is not a ServiceAccount name")
    git_secret = raw.get("gitSecret")
    if git_secret is not None and (
        not isinstance(git_secret, str) or not _DNS_SUBDOMAIN.match(git_secret)
    ):
        errors.append(f"{label}.gitSecret: {git_secret!r} is not a Secret name")
    prune = _bool(raw, "prune", f"{label}.prune", errors, True)
    previews = _bool(raw, "previews", f"{label}.previews", errors, True)
    forks = _bool(raw, "previewsFromForks", f"{label}.previewsFromForks", errors, False)
    suspend = _bool(raw, "suspend", f"{label}.suspend", errors, False)
    resync = raw.get("resync", "")
    if not isinstance(resync, str) or (resync and not _is_cron(resync)):
        errors.append(f"{label}.resync: {resync!r} is not a five-field cron schedule or ''")
    timeout = _int(raw, "timeoutSeconds", f"{label}.timeoutSeconds", errors, 600, 10, 86400)
    clone_url = raw.get("cloneURL")
    if clone_url is None and isinstance(repo, str):
        clone_url = default_clone_url(str(provider), repo, github_api, gitlab_api)
    elif _url(clone_url, f"{label}.cloneURL", errors) is None:
        clone_url = None
    if len(errors) > before:
        return None
    return Target(
        name=str(name), provider=str(provider), repo=str(repo), clone_url=str(clone_url),
        branch=branch, path=str(PurePosixPath(path)), namespace=str(namespace),
        service_account=str(service_account),
        git_secret=git_secret, prune=prune, resync=resync, previews=previews,
        previews_from_forks=forks, timeout_seconds=timeout, suspend=suspend,
    )  # fmt: skip


def default_clone_url(provider: str, repo: str, github_api: str, gitlab_api: str) -> str:
    """The HTTPS clone URL a provider gives a repository when none is configured."""
    if provider == "github":
        api = github_api.rstrip("/")
        if urlsplit(api).netloc == "api.github.com":
            return f"https://github.com/{repo}.git"
        return f"{api.removesuffix('/api/v3')}/{repo}.git"
    return f"{gitlab_api.rstrip('/')}/{repo}.git"


def read_secret(name: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """The values of secret `name`: the variable itself, or one per line of the file at NAME_FILE.

    Several values are allowed so that webhook secrets can be rotated without downtime.
    """
    env = os.environ if environ is None else environ
    value = env.get(name)
    if value:
        return [value]
    path = env.get(f"{name}_FILE")
    if not path:
        return []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{name}_FILE: cannot read {path}: {exc.strerror}") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def _is_dns_label(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 63 and bool(_DNS_LABEL.match(value))


def _is_relative_path(path: str) -> bool:
    if not path or path.startswith("/") or "\x00" in path or "\\" in path:
        return False
    return ".." not in PurePosixPath(path).parts


def _is_cron(schedule: str) -> bool:
    if schedule.startswith("@"):
        return schedule in {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@hourly"}
    fields = schedule.split()
    return len(fields) == 5 and all(_CRON_FIELD.match(f) for f in fields)


def _section(doc: dict[str, Any], key: str, errors: list[str]) -> dict[str, Any]:
    value = doc.get(key) or {}
    if not isinstance(value, dict):
        errors.append(f"{key}: must be a mapping")
        return {}
    return value


def _string(
    doc: dict[str, Any], key: str, where: str, errors: list[str], required: bool = False
) -> str | None:
    value = doc.get(key)
    if value is None:
        if required:
            errors.append(f"{where}: is required")
        return None
    if not isinstance(value, str) or not value.strip():
        errors.append(f"{where}: must be a non-empty string")
        return None
    return value


def _url(value: Any, where: str, errors: list[str], required: bool = False) -> str | None:
    if value is None:
        if required:
            errors.append(f"{where}: is required")
        return None
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https", "ssh") or not parts.netloc:
        errors.append(f"{where}: {value!r} is not an http(s) URL")
        return None
    return str(value)


def _bool(raw: dict[str, Any], key: str, where: str, errors: list[str], default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        errors.append(f"{where}: {value!r} must be true or false")
        return default
    return value


def _int(
    raw: dict[str, Any], key: str, where: str, errors: list[str], default: int,
    minimum: int, maximum: int = 2**31 - 1,
) -> int:  # fmt: skip
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        errors.append(f"{where}: {value!r} must be a whole number from {minimum} to {maximum}")
        return default
    return value
