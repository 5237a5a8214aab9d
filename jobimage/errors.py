"""Failures of a converge, typed by what the Job should do about them (its exit code).

Permanent errors (bad manifests, forbidden kinds) fail the Job without retries; transient ones
(API server unreachable, timeouts) let Kubernetes retry it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

from hooksync.jobspec import EXIT_PERMANENT, EXIT_TRANSIENT


class ConvergeError(Exception):
    """Base of every error a converge step raises on purpose; carries the Job's exit code."""

    exit_code: ClassVar[int] = EXIT_TRANSIENT

    def __init__(self, message: str) -> None:
        super().__init__(message)
        # The pipeline step that failed (hooksync.summary.STEPS), filled in as it unwinds.
        self.step: str | None = None

    def scrub(self, clean: Callable[[str], str]) -> None:
        """Pass the message through `clean` (which takes secret values out), in place."""
        self.args = tuple(clean(arg) if isinstance(arg, str) else arg for arg in self.args)


class PermanentError(ConvergeError):
    """Retrying the same commit cannot help: the fix is a change in Git or in the config."""

    exit_code: ClassVar[int] = EXIT_PERMANENT


class TransientError(ConvergeError):
    """The same commit may converge on a later try (API server, network, timeouts)."""

    exit_code: ClassVar[int] = EXIT_TRANSIENT


class RenderError(PermanentError):
    """The target's path cannot be turned into manifests; the message names the file."""


class ValidationError(PermanentError):
    """Rendered objects break the target's rules; `problems` lists each one (file and object)."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            message = f"{len(self.problems)} problems: " + "; ".join(self.problems)
        super().__init__(message)

    def scrub(self, clean: Callable[[str], str]) -> None:
        super().scrub(clean)
        self.problems = tuple(clean(problem) for problem in self.problems)
