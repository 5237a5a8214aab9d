"""The Job's command line: what the receiver writes into a Job and what `hooksync-job` reads.

A Job object records exactly what ran, so every setting travels in argv, never a secret.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hooksync.names import MODES, Mode
from hooksync.refs import is_valid_branch_name, is_valid_sha
from hooksync.runsettings import DEFAULT_TIMEOUT_SECONDS, HelmSettings

if TYPE_CHECKING:  # the Job itself never loads the configuration's schema
    from hooksync.config import Config, Target

# Where the Job mounts the target's gitSecret (keys: token, or ssh-privatekey + known_hosts).
GIT_CREDENTIALS_DIR = "/etc/hooksync/git"
# Where the Job mounts the target's decryption Secret (keys ending in .agekey: age identities).
DECRYPTION_KEYS_DIR = "/etc/hooksync/decryption"

EXIT_OK = 0
EXIT_PERMANENT = 2
EXIT_LEASE_HELD = 3
EXIT_TRANSIENT = 1


class JobSpecError(ValueError):
    """The Job's arguments are missing or invalid."""


@dataclass(frozen=True)
class JobSpec:
    """Everything one run of `hooksync-job` needs to converge one target."""

    mode: Mode
    target: str
    clone_url: str
    branch: str
    path: str
    namespace: str
    prune: bool = True
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
    sha: str | None = None
    git_credentials: str | None = None
    # The target's opt-outs (see hooksync.config.Target).
    allow_unenforced_pod_security: bool = False
    allowed_subject_namespaces: tuple[str, ...] = ()
    # The folder of the mounted decryption Secret: SOPS-encrypted files are decrypted with it.
    decryption_keys: str | None = None
    # The target's `helm:` block, if it has one.
    helm: HelmSettings | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise JobSpecError(f"mode {self.mode!r} is not one of {', '.join(MODES)}")
        if not is_valid_branch_name(self.branch):
            raise JobSpecError(f"branch {self.branch!r} is not a valid Git branch name")
        if self.sha is not None and not is_valid_sha(self.sha):
            raise JobSpecError(f"sha {self.sha!r} is not a full commit SHA")
        if self.mode == "preview" and self.sha is None:
            raise JobSpecError("preview needs --sha: a preview checks one exact commit")

    def to_args(self) -> list[str]:
        """The container args (after `hooksync-job`) that reproduce this spec."""
        args: list[str] = [self.mode]
        args += ["--target", self.target, "--clone-url", self.clone_url]
        args += ["--branch", self.branch, "--path", self.path, "--namespace", self.namespace]
        args += ["--prune" if self.prune else "--no-prune"]
        args += ["--timeout", str(self.timeout_seconds)]
        if self.sha:
            args += ["--sha", self.sha]
        if self.git_credentials:
            args += ["--git-credentials", self.git_credentials]
        if self.allow_unenforced_pod_security:
            args.append("--allow-unenforced-pod-security")
        for namespace in self.allowed_subject_namespaces:
            args += ["--allow-subjects-from", namespace]
        if self.decryption_keys:
            args += ["--decryption-keys", self.decryption_keys]
        args += helm_args(self.helm)
        return args

    @classmethod
    def for_target(
        cls,
        target: Target,
        mode: Mode,
        sha: str | None = None,
        git_credentials: str | None = None,
        decryption_keys: str | None = None,
    ) -> JobSpec:
        return cls(
            mode=mode,
            target=target.name,
            clone_url=target.clone_url,
            branch=target.branch,
            path=target.path,
            namespace=target.namespace,
            prune=target.prune,
            timeout_seconds=target.timeout_seconds,
            sha=sha,
            git_credentials=git_credentials,
            allow_unenforced_pod_security=target.allow_unenforced_pod_security,
            allowed_subject_namespaces=target.allowed_subject_namespaces,
            decryption_keys=decryption_keys,
            helm=target.helm,
        )


# --- helm ----------------------------------------------------------------------------------------


def helm_args(helm: HelmSettings | None) -> list[str]:
    """Pure: the container args that carry a target's `helm:` block (none without one)."""
    if helm is None:
        return []
    args = ["--helm-chart", helm.chart]
    for file in helm.values_files:
        args += ["--helm-values-file", file]
    if helm.release:
        args += ["--helm-release", helm.release]
    if helm.values_json:
        args += ["--helm-values", helm.values_json]
    if helm.skip_hooks:
        args.append("--helm-skip-hooks")
    return args


def _add_helm_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--helm-chart", help="render this chart (a folder in the repository)")
    parser.add_argument(
        "--helm-values-file", action="append", default=[], metavar="FILE", help="values file"
    )
    parser.add_argument("--helm-release", help="release name (default: the target's name)")
    parser.add_argument("--helm-values", help="inline values as a JSON object, applied last")
    parser.add_argument(
        "--helm-skip-hooks", action="store_true", help="drop chart hooks instead of refusing"
    )


def _helm_from_args(ns: argparse.Namespace) -> HelmSettings | None:
    """The `helm:` settings the arguments give; None when they name no chart."""
    if not ns.helm_chart:
        if ns.helm_values_file or ns.helm_release or ns.helm_values or ns.helm_skip_hooks:
            raise JobSpecError("--helm-* arguments need --helm-chart PATH")
        return None
    if ns.helm_values:
        try:
            values = json.loads(ns.helm_values)
        except ValueError as exc:
            raise JobSpecError(f"--helm-values is not JSON: {exc}") from None
        if not isinstance(values, dict):
            raise JobSpecError("--helm-values must be a JSON object")
    return HelmSettings(
        chart=ns.helm_chart,
        values_files=tuple(ns.helm_values_file),
        release=ns.helm_release,
        values_json=ns.helm_values or "",
        skip_hooks=ns.helm_skip_hooks,
    )


# --- end helm ------------------------------------------------------------------------------------


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hooksync-job",
        description="Converge one target namespace to what its Git branch says.",
    )
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("--config", help="read the target's settings from this config file")
    parser.add_argument("--target", required=True, help="target name")
    parser.add_argument("--clone-url")
    parser.add_argument("--branch")
    parser.add_argument("--path")
    parser.add_argument("--namespace")
    parser.add_argument("--prune", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--timeout", type=int)
    parser.add_argument("--sha", help="exact commit (previews); apply and resync use the head")
    parser.add_argument(
        "--git-credentials",
        help="folder holding `token`, or `ssh-privatekey` and `known_hosts` (a mounted Secret)",
    )
    parser.add_argument(
        "--allow-unenforced-pod-security",
        action="store_true",
        help="converge into a namespace that enforces no Pod Security level",
    )
    parser.add_argument(
        "--allow-subjects-from",
        action="append",
        default=[],
        metavar="NAMESPACE",
        help="let RoleBindings name ServiceAccounts of this namespace (allowedSubjectNamespaces)",
    )
    parser.add_argument(
        "--decryption-keys",
        help="folder of age identities (files ending in .agekey, a mounted Secret): decrypt "
        "SOPS-encrypted files with them",
    )
    _add_helm_arguments(parser)
    return parser


def parse_job_args(argv: Sequence[str], config: Config | None = None) -> JobSpec:
    """Parse `hooksync-job` arguments; with --config, unset settings come from the file."""
    ns = argument_parser().parse_args(list(argv))
    helm = _helm_from_args(ns)
    if ns.config or config is not None:
        return _with_config(ns, helm, config)
    missing = [
        flag
        for flag, value in (
            ("--clone-url", ns.clone_url),
            ("--branch", ns.branch),
            ("--path", ns.path),
            ("--namespace", ns.namespace),
        )
        if not value
    ]
    if missing:
        raise JobSpecError(f"missing {', '.join(missing)} (or give --config FILE)")
    return JobSpec(
        mode=ns.mode,
        target=ns.target,
        clone_url=ns.clone_url,
        branch=ns.branch,
        path=ns.path,
        namespace=ns.namespace,
        prune=True if ns.prune is None else ns.prune,
        timeout_seconds=ns.timeout or DEFAULT_TIMEOUT_SECONDS,
        sha=ns.sha,
        git_credentials=ns.git_credentials,
        allow_unenforced_pod_security=ns.allow_unenforced_pod_security,
        allowed_subject_namespaces=tuple(ns.allow_subjects_from),
        decryption_keys=ns.decryption_keys,
        helm=helm,
    )


def _with_config(
    ns: argparse.Namespace, helm: HelmSettings | None, config: Config | None
) -> JobSpec:
    """The spec from the target's configuration (the file --config names, else `config`),
    each argument given overriding it; a configuration problem is a JobSpecError."""
    from hooksync.config import ConfigError, load_config

    try:
        if ns.config:
            config = load_config(ns.config)
        assert config is not None, "called with a configuration or --config"
        base = JobSpec.for_target(config.target(ns.target), ns.mode, sha=ns.sha)
    except ConfigError as exc:
        raise JobSpecError(str(exc)) from None
    return JobSpec(
        mode=ns.mode,
        target=ns.target,
        clone_url=ns.clone_url or base.clone_url,
        branch=ns.branch or base.branch,
        path=ns.path or base.path,
        namespace=ns.namespace or base.namespace,
        prune=base.prune if ns.prune is None else ns.prune,
        timeout_seconds=ns.timeout or base.timeout_seconds,
        sha=ns.sha,
        git_credentials=ns.git_credentials,
        allow_unenforced_pod_security=(
            ns.allow_unenforced_pod_security or base.allow_unenforced_pod_security
        ),
        allowed_subject_namespaces=tuple(ns.allow_subjects_from) or base.allowed_subject_namespaces,
        decryption_keys=ns.decryption_keys,
        helm=helm or base.helm,
    )
