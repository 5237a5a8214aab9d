"""The configuration file: targets and where things are, validated into typed values.

Secrets never sit in this file; `read_secret` takes them from the environment or from files.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from hooksync.providers import PROVIDERS, Provider
from hooksync.refs import is_valid_branch_name, is_valid_repo_path
from hooksync.runsettings import (
    DEFAULT_TIMEOUT_SECONDS,
    MAX_TIMEOUT_SECONDS,
    MIN_TIMEOUT_SECONDS,
    HelmSettings,
)
from hooksync.schedule import CronError
from hooksync.schedule import resolve as resolve_schedule

MAX_TARGET_NAME = 30
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
DEFAULT_LINK_TTL_SECONDS = 7 * 24 * 3600
DEFAULT_BURST_QUIET_SECONDS = 2
DEFAULT_BURST_MAX_WAIT_SECONDS = 30
DEFAULT_JOB_TTL_SECONDS = 3600

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# Namespaces no target may converge: the cluster's own. The Jobs' namespace is refused too: a
# target there could change the receiver, other targets' Jobs and their Git Secrets.
RESERVED_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease")
# The Job's disk: its /tmp volume (the checkout) is this size; a quantity in Mi or Gi.
DEFAULT_JOB_DISK_LIMIT = "1Gi"
_DISK_QUANTITY = re.compile(r"^[1-9][0-9]{0,5}(Mi|Gi)$")


class ConfigError(ValueError):
    """The configuration file is missing, unreadable or invalid; the message names the field."""


# --- helm ----------------------------------------------------------------------------------------
# A Helm release name: a DNS label of at most 53 characters (Helm's own limit).
MAX_HELM_RELEASE = 53


def _helm_settings(
    raw: Any, label: str, target_path: str, errors: list[str]
) -> HelmSettings | None:
    """The `helm:` block of a target, or None without one (errors appended, naming fields)."""
    if raw is None:
        return None
    where = f"{label}.helm"
    if not isinstance(raw, dict):
        errors.append(f"{where}: must be a mapping (chart, valuesFiles, releaseName, values)")
        return None
    known = {"chart", "valuesFiles", "releaseName", "values", "skipHooks"}
    for key in raw:
        if key not in known:
            errors.append(f"{where}.{key}: unknown field (known: {', '.join(sorted(known))})")
    chart = raw.get("chart", target_path)
    if not isinstance(chart, str) or not _is_relative_path(chart):
        errors.append(f"{where}.chart: {chart!r} must be a relative path inside the repository")
        chart = target_path
    files = raw.get("valuesFiles", [])
    if not isinstance(files, list) or not all(
        isinstance(file, str) and _is_relative_path(file) for file in files
    ):
        errors.append(
            f"{where}.valuesFiles: {files!r} must be a list of relative paths inside the repository"
        )
        files = []
    release = raw.get("releaseName")
    if release is not None and (not _is_dns_label(release) or len(release) > MAX_HELM_RELEASE):
        errors.append(
            f"{where}.releaseName: {release!r} is not a DNS label of at most "
            f"{MAX_HELM_RELEASE} characters"
        )
        release = None
    values = raw.get("values", {})
    if not isinstance(values, dict):
        errors.append(f"{where}.values: must be a mapping of chart values")
        values = {}
    skip_hooks = _bool(raw, "skipHooks", f"{where}.skipHooks", errors, False)
    return HelmSettings(
        chart=str(PurePosixPath(chart)),
        values_files=tuple(str(PurePosixPath(file)) for file in files),
        release=release,
        values_json=json.dumps(values, separators=(",", ":"), sort_keys=True) if values else "",
        skip_hooks=skip_hooks,
    )


# --- end helm ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deployments:
    """A target's deployments on the Git host (opt-in): the environment they are recorded in
    (the target's name unless configured) and the URL where it can be seen, if any."""

    environment: str
    environment_url: str | None = None


@dataclass(frozen=True)
class Target:
    """One namespace that one Git branch and path converge."""

    name: str
    provider: Provider
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
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
    # Converge even if the namespace enforces no Pod Security level (the status page shows it).
    allow_unenforced_pod_security: bool = False
    # Namespaces whose ServiceAccounts the target's RoleBindings may name, beside its own.
    allowed_subject_namespaces: tuple[str, ...] = ()
    # Paused: deliveries start no Job and the resync CronJob is suspended.
    suspend: bool = False
    # SOPS: the Secret (beside the Jobs) whose `*.agekey` keys hold the target's age identities.
    decryption_secret: str | None = None
    # One comment per PR/MR with the preview's per-object diff, kept up to date.
    preview_comments: bool = True
    # Deployments on the Git host for each apply; None: none are recorded.
    deployments: Deployments | None = None
    # Render a Helm chart with these settings (a path holding Chart.yaml needs none).
    helm: HelmSettings | None = None

    @property
    def resync_schedule(self) -> str:
        """The standard cron expression the resync CronJob gets: `resync` with any spread form
        (`~15m`, `H`) resolved for this target's name; empty for no CronJob."""
        return resolve_schedule(self.resync, self.name) if self.resync else ""

    def repo_matches(self, repo: str) -> bool:
        """Whether a payload's repository names this target's (GitHub and Gitea ignore case)."""
        if self.provider in ("github", "gitea"):
            return repo.lower() == self.repo.lower()
        return repo == self.repo


@dataclass(frozen=True)
class HttpLimits:
    """How much the receiver's HTTP intake gives any client before it has proven anything.

    Sized for the receiver's 512Mi memory limit: bodies still arriving are bounded by
    `unverified_body_bytes` plus a small allowance per connection, and every connection by
    its deadlines. Read at start; a change needs a restart.
    """

    max_connections: int = 512
    unverified_body_bytes: int = 64 * 1024 * 1024
    header_timeout_seconds: int = 10
    body_timeout_seconds: int = 30
    idle_timeout_seconds: int = 10
    keep_alive_timeout_seconds: int = 5
    max_header_bytes: int = 16 * 1024
    max_headers: int = 100


@dataclass(frozen=True)
class Config:
    """The whole configuration file."""

    job_image: str
    public_url: str
    targets: tuple[Target, ...]
    namespace: str | None = None
    github_api_url: str = "https://api.github.com"
    gitlab_api_url: str = "https://gitlab.com"
    gitea_api_url: str = ""  # no default host: gitea.apiURL names the server
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    link_ttl_seconds: int = DEFAULT_LINK_TTL_SECONDS
    job_ttl_seconds: int = DEFAULT_JOB_TTL_SECONDS
    burst_quiet_seconds: int = DEFAULT_BURST_QUIET_SECONDS
    burst_max_wait_seconds: int = DEFAULT_BURST_MAX_WAIT_SECONDS
    job_disk_limit: str = DEFAULT_JOB_DISK_LIMIT
    http: HttpLimits = field(default_factory=HttpLimits)

    def target(self, name: str) -> Target:
        for target in self.targets:
            if target.name == name:
                return target
        raise ConfigError(f"no target named {name!r}; known: {', '.join(self.target_names())}")

    def api_url(self, provider: Provider) -> str:
        """The API URL the configuration names for `provider`."""
        urls = {
            "github": self.github_api_url,
            "gitlab": self.gitlab_api_url,
            "gitea": self.gitea_api_url,
        }
        return urls[provider]

    def target_names(self) -> list[str]:
        return [t.name for t in self.targets]


def load_config(path: str | os.PathLike[str], jobs_namespace: str | None = None) -> Config:
    """Read and validate the configuration file at `path` (see `parse_config`)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file: {exc.strerror}") from None
    return parse_config(text, source=str(path), jobs_namespace=jobs_namespace)


def parse_config(text: str, source: str = "config", jobs_namespace: str | None = None) -> Config:
    """Validate configuration YAML; every problem is reported with the field that has it.

    `jobs_namespace` is where Jobs run when the file names no `namespace` (the receiver's own);
    no target may converge it.
    """
    import yaml  # here, not at the top: the converge Job imports this module on its way to
    # its first API call, and reads no configuration file

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    errors: list[str] = []
    config = _build_config(document, errors)
    if config is not None:
        errors.extend(target_namespace_problems(config, jobs_namespace))
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
        "gitea",
        "targets",
        "maxBodyBytes",
        "linkTTLSeconds",
        "jobTTLSeconds",
        "burstQuietSeconds",
        "burstMaxWaitSeconds",
        "jobDiskLimit",
        "http",
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
    gitea_api = _url(_section(doc, "gitea", errors).get("apiURL"), "gitea.apiURL", errors) or ""
    github_api = github_api or "https://api.github.com"
    gitlab_api = gitlab_api or "https://gitlab.com"
    max_body = _int(doc, "maxBodyBytes", "maxBodyBytes", errors, DEFAULT_MAX_BODY_BYTES, 1024)
    link_ttl = _int(doc, "linkTTLSeconds", "linkTTLSeconds", errors, DEFAULT_LINK_TTL_SECONDS, 60)
    job_ttl = _int(doc, "jobTTLSeconds", "jobTTLSeconds", errors, DEFAULT_JOB_TTL_SECONDS, 0)
    quiet = _int(
        doc, "burstQuietSeconds", "burstQuietSeconds", errors, DEFAULT_BURST_QUIET_SECONDS, 0
    )
    max_wait = _int(
        doc, "burstMaxWaitSeconds", "burstMaxWaitSeconds", errors, DEFAULT_BURST_MAX_WAIT_SECONDS, 0
    )
    if max_wait < quiet:
        errors.append(f"burstMaxWaitSeconds: {max_wait} is less than burstQuietSeconds {quiet}")
    disk_limit = doc.get("jobDiskLimit", DEFAULT_JOB_DISK_LIMIT)
    if not isinstance(disk_limit, str) or not _DISK_QUANTITY.match(disk_limit):
        errors.append(f"jobDiskLimit: {disk_limit!r} must be a size such as 512Mi or 2Gi")
    http = _http_limits(_section(doc, "http", errors), max_body, errors)

    raw_targets = doc.get("targets")
    targets: list[Target] = []
    if not isinstance(raw_targets, list) or not raw_targets:
        errors.append("targets: must be a non-empty list")
    else:
        seen: set[str] = set()
        for index, raw in enumerate(raw_targets):
            target = _build_target(
                raw, f"targets[{index}]", github_api, gitlab_api, errors, gitea_api
            )
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
        gitea_api_url=gitea_api.rstrip("/"),
        max_body_bytes=max_body,
        link_ttl_seconds=link_ttl,
        job_ttl_seconds=job_ttl,
        burst_quiet_seconds=quiet,
        burst_max_wait_seconds=max_wait,
        job_disk_limit=str(disk_limit),
        http=http,
    )


def _http_limits(raw: dict[str, Any], max_body: int, errors: list[str]) -> HttpLimits:
    # One body at the limit must always fit the budget, so a larger maxBodyBytes raises it.
    default = HttpLimits(unverified_body_bytes=max(HttpLimits.unverified_body_bytes, max_body))
    names = {
        "maxConnections": ("max_connections", 1),
        "unverifiedBodyBytes": ("unverified_body_bytes", 1024),
        "headerTimeoutSeconds": ("header_timeout_seconds", 1),
        "bodyTimeoutSeconds": ("body_timeout_seconds", 1),
        "idleTimeoutSeconds": ("idle_timeout_seconds", 1),
        "keepAliveTimeoutSeconds": ("keep_alive_timeout_seconds", 1),
        "maxHeaderBytes": ("max_header_bytes", 1024),
        "maxHeaders": ("max_headers", 10),
    }
    for key in raw:
        if key not in names:
            errors.append(f"http.{key}: unknown field (known: {', '.join(sorted(names))})")
    values = {
        attribute: _int(raw, key, f"http.{key}", errors, getattr(default, attribute), minimum)
        for key, (attribute, minimum) in names.items()
    }
    limits = HttpLimits(**values)
    if limits.unverified_body_bytes < max_body:
        errors.append(
            f"http.unverifiedBodyBytes: {limits.unverified_body_bytes} is less than "
            f"maxBodyBytes {max_body}; a body at the limit could never be received"
        )
    return limits


def _build_target(
    raw: Any, where: str, github_api: str, gitlab_api: str, errors: list[str], gitea_api: str = ""
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
        "allowUnenforcedPodSecurity",
        "allowedSubjectNamespaces",
        "suspend",
        "decryption",
        "previewComments",
        "deployments",
        "helm",
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
    # Checked above; until the target is refused, read an unknown provider as GitHub.
    host: Provider = next((known for known in PROVIDERS if known == provider), "github")
    repo = raw.get("repo")
    if not isinstance(repo, str) or not is_valid_repo_path(host, repo):
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
    decryption_secret = _decryption_secret(raw.get("decryption"), f"{label}.decryption", errors)
    comments = _bool(raw, "previewComments", f"{label}.previewComments", errors, True)
    deployments = _deployments(raw.get("deployments"), name, f"{label}.deployments", errors)
    if deployments is not None and host == "gitea":
        errors.append(f"{label}.deployments: Gitea has no deployments API; leave it out")
    resync = raw.get("resync", "")
    if not isinstance(resync, str):
        errors.append(f"{label}.resync: {resync!r} is not a five-field cron schedule or ''")
    elif resync:
        try:
            resolve_schedule(resync, str(name))
        except CronError as exc:
            errors.append(
                f"{label}.resync: {resync!r} is not a five-field cron schedule or a spread "
                f"form like ~15m: {exc}"
            )
    timeout = _int(
        raw,
        "timeoutSeconds",
        f"{label}.timeoutSeconds",
        errors,
        DEFAULT_TIMEOUT_SECONDS,
        MIN_TIMEOUT_SECONDS,
        MAX_TIMEOUT_SECONDS,
    )
    unenforced = _bool(
        raw, "allowUnenforcedPodSecurity", f"{label}.allowUnenforcedPodSecurity", errors, False
    )
    subject_namespaces = raw.get("allowedSubjectNamespaces", [])
    if not isinstance(subject_namespaces, list) or not all(
        _is_dns_label(entry) for entry in subject_namespaces
    ):
        errors.append(
            f"{label}.allowedSubjectNamespaces: {subject_namespaces!r} must be a list of "
            "namespace names"
        )
        subject_namespaces = []
    helm = _helm_settings(
        raw.get("helm"), label, str(PurePosixPath(path)) if isinstance(path, str) else ".", errors
    )
    clone_url = raw.get("cloneURL")
    if host == "gitea" and not gitea_api:
        # Statuses go to the API, and Gitea has no one default server.
        errors.append(f"{label}.provider: gitea needs gitea.apiURL (https://HOST/api/v1)")
    elif clone_url is None and isinstance(repo, str):
        clone_url = default_clone_url(host, repo, github_api, gitlab_api, gitea_api)
    elif _url(clone_url, f"{label}.cloneURL", errors) is None:
        clone_url = None
    if len(errors) > before:
        return None
    return Target(
        name=str(name),
        provider=host,
        repo=str(repo),
        clone_url=str(clone_url),
        branch=branch,
        path=str(PurePosixPath(path)),
        namespace=str(namespace),
        service_account=str(service_account),
        git_secret=git_secret,
        prune=prune,
        resync=resync,
        previews=previews,
        previews_from_forks=forks,
        timeout_seconds=timeout,
        allow_unenforced_pod_security=unenforced,
        allowed_subject_namespaces=tuple(subject_namespaces),
        suspend=suspend,
        decryption_secret=decryption_secret,
        preview_comments=comments,
        deployments=deployments,
        helm=helm,
    )


# --- SOPS decryption ---------------------------------------------------------------------------


def _decryption_secret(raw: Any, where: str, errors: list[str]) -> str | None:
    """The Secret a target's `decryption: {secretRef: NAME}` names, or None without one."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        errors.append(f"{where}: must be a mapping like {{secretRef: NAME}}")
        return None
    for key in raw:
        if key != "secretRef":
            errors.append(f"{where}.{key}: unknown field (only secretRef)")
    secret = raw.get("secretRef")
    if not isinstance(secret, str) or not _DNS_SUBDOMAIN.match(secret):
        errors.append(f"{where}.secretRef: {secret!r} is not a Secret name")
        return None
    return secret


# Printable, no control characters; GitHub and GitLab both take environment names this long.
_ENVIRONMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _./:-]{0,62}$")


def _deployments(raw: Any, name: Any, where: str, errors: list[str]) -> Deployments | None:
    """`deployments: {environment: NAME, environmentUrl: URL}` (both optional), `true` for
    the defaults, `false` or absent for none."""
    if raw is None or raw is False:
        return None
    if raw is True:
        raw = {}
    if not isinstance(raw, dict):
        errors.append(f"{where}: must be true, false or a mapping (environment, environmentUrl)")
        return None
    for key in raw:
        if key not in ("environment", "environmentUrl"):
            errors.append(f"{where}.{key}: unknown field (known: environment, environmentUrl)")
    environment = raw.get("environment", name if isinstance(name, str) else "")
    if not isinstance(environment, str) or not _ENVIRONMENT.match(environment):
        errors.append(
            f"{where}.environment: {environment!r} must be 1 to 63 letters, digits, spaces "
            "or _./:- starting with a letter or digit"
        )
        return None
    url = raw.get("environmentUrl")
    if url is not None:
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            errors.append(f"{where}.environmentUrl: {url!r} is not an http(s) URL")
            return None
    return Deployments(environment, url)


def target_namespace_problems(config: Config, jobs_namespace: str | None = None) -> list[str]:
    """Pure: targets whose namespace reaches too far: the Jobs' namespace (`config.namespace`,
    else `jobs_namespace`), one of the cluster's own, or one another target converges too."""
    jobs = config.namespace or jobs_namespace
    problems: list[str] = []
    first: dict[str, str] = {}
    for index, target in enumerate(config.targets):
        field = f"targets[{index}] ({target.name}).namespace"
        if target.namespace in RESERVED_NAMESPACES:
            problems.append(
                f"{field}: {target.namespace!r} is the cluster's own namespace; targets may not "
                "converge it"
            )
        elif target.namespace == jobs:
            problems.append(
                f"{field}: {target.namespace!r} is where hooksync's Jobs run (namespace); a "
                "target there could change the receiver and other targets' Secrets — give it "
                "a namespace of its own"
            )
        elif target.namespace in first:
            problems.append(
                f"{field}: {target.namespace!r} is already converged by target "
                f"{first[target.namespace]!r}; two targets would prune each other's objects — "
                "give each target its own namespace"
            )
        first.setdefault(target.namespace, target.name)
    return problems


def default_clone_url(
    provider: Provider, repo: str, github_api: str, gitlab_api: str, gitea_api: str = ""
) -> str:
    """The HTTPS clone URL a provider gives a repository when none is configured."""
    api = {"github": github_api, "gitlab": gitlab_api, "gitea": gitea_api}[provider]
    return f"{web_base(provider, api)}/{repo}.git"


def web_base(provider: Provider, api_url: str) -> str:
    """The Git host's web address for the API URL the configuration names.

    api.github.com is served by github.com; GitHub Enterprise serves its API at
    https://HOST/api/v3, GitLab at https://HOST/api/v4 and Gitea (Forgejo too) at
    https://HOST/api/v1, and their pages at https://HOST.
    """
    api = api_url.rstrip("/")
    if provider == "gitea":
        return api.removesuffix("/api/v1")
    if provider == "github":
        if urlsplit(api).netloc == "api.github.com":
            return "https://github.com"
        return api.removesuffix("/api/v3")
    return api.removesuffix("/api/v4")


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
    raw: dict[str, Any],
    key: str,
    where: str,
    errors: list[str],
    default: int,
    minimum: int,
    maximum: int = 2**31 - 1,
) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        errors.append(f"{where}: {value!r} must be a whole number from {minimum} to {maximum}")
        return default
    return value
