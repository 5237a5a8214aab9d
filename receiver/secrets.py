"""The receiver's secrets, read from the environment or from files (README.md, "Security model").

Several values per name are allowed so webhook secrets can be rotated without downtime.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hooksync.config import ConfigError, read_secret
from receiver.intake.verification import signing_key_bytes


@dataclass(frozen=True)
class ReceiverSecrets:
    github_webhook: tuple[str, ...] = ()
    gitlab_webhook_tokens: tuple[str, ...] = ()
    gitlab_signing_keys: tuple[str, ...] = ()
    github_token: str | None = None
    gitlab_token: str | None = None
    gitea_webhook: tuple[str, ...] = ()
    gitea_token: str | None = None
    link_keys: tuple[str, ...] = ()

    def __repr__(self) -> str:  # never print a secret, even by accident
        return "ReceiverSecrets(***)"

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ReceiverSecrets:
        keys = tuple(read_secret("HOOKSYNC_GITLAB_SIGNING_TOKEN", environ))
        for key in keys:
            try:
                signing_key_bytes(key)
            except ValueError as exc:
                raise ConfigError(f"HOOKSYNC_GITLAB_SIGNING_TOKEN: {exc}") from None
        github_tokens = read_secret("HOOKSYNC_GITHUB_TOKEN", environ)
        gitlab_tokens = read_secret("HOOKSYNC_GITLAB_TOKEN", environ)
        gitea_tokens = read_secret("HOOKSYNC_GITEA_TOKEN", environ)
        return cls(
            github_webhook=tuple(read_secret("HOOKSYNC_GITHUB_WEBHOOK_SECRET", environ)),
            gitlab_webhook_tokens=tuple(read_secret("HOOKSYNC_GITLAB_WEBHOOK_TOKEN", environ)),
            gitlab_signing_keys=keys,
            github_token=github_tokens[0] if github_tokens else None,
            gitlab_token=gitlab_tokens[0] if gitlab_tokens else None,
            gitea_webhook=tuple(read_secret("HOOKSYNC_GITEA_WEBHOOK_SECRET", environ)),
            gitea_token=gitea_tokens[0] if gitea_tokens else None,
            link_keys=tuple(read_secret("HOOKSYNC_LINK_KEY", environ)),
        )
