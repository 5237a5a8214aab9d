"""What a target's configuration hands to each of its Jobs beyond names and paths: the timeout
and the Helm settings.

Both the configuration (`hooksync.config`, which validates them) and the Job's command line
(`hooksync.jobspec`, which carries them) use these. They sit apart so that the Job, which never
reads the configuration file, parses its arguments without loading the configuration's schema:
that is time before its first API call.
"""

from __future__ import annotations

from dataclasses import dataclass

# A target's health wait; the Job's own deadline adds a margin for fetch and cleanup.
DEFAULT_TIMEOUT_SECONDS = 600
MIN_TIMEOUT_SECONDS = 10
MAX_TIMEOUT_SECONDS = 24 * 3600


@dataclass(frozen=True)
class HelmSettings:
    """How a target's chart is rendered (`helm:`); paths are relative to the repository root."""

    chart: str
    values_files: tuple[str, ...] = ()
    release: str | None = None  # the target's name when unset
    values_json: str = ""  # inline values as compact JSON, applied after the values files
    skip_hooks: bool = False  # drop every chart hook instead of refusing the render
