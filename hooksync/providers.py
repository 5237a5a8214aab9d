"""The Git hosts hooksync speaks to, as a closed set of names."""

from __future__ import annotations

from typing import Literal, get_args

# gitea serves Forgejo too (Codeberg included): the same webhooks and API.
Provider = Literal["github", "gitlab", "gitea"]
PROVIDERS: tuple[Provider, ...] = get_args(Provider)
