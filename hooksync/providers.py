"""The Git hosts hooksync speaks to, as a closed set of names."""

from __future__ import annotations

from typing import Literal, get_args

Provider = Literal["github", "gitlab"]
PROVIDERS: tuple[Provider, ...] = get_args(Provider)
