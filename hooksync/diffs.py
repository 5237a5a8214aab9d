"""What a preview would change, and what an apply did, object by object: the Job logs it, the
receiver reads it back.

A Job's termination message holds at most 4096 bytes, too little for a diff. So the preview
writes one log line per object with `event: object-diff`; the run page and the pull request's
comment read them back from the Job's log. An apply or resync writes one line per object with
`event: object-outcome` instead: what happened to it, and the diff for an object it changed.
Secret values never reach a diff (the Job redacts them before it writes one), so a reader may
show `text` as it is.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

EVENT: Final = "object-diff"
OUTCOME_EVENT: Final = "object-outcome"
# What a preview would do to one object. "unchanged" objects are logged without text.
Would = Literal["create", "change", "prune", "unchanged"]
WOULDS: Final[tuple[Would, ...]] = get_args(Would)
# One object's diff is cut at this many characters, so one huge ConfigMap cannot crowd out
# the rest of the log or the comment.
TEXT_LIMIT: Final = 32_000
# What an apply did to one object (the actions of a converge's change set).
Outcome = Literal["created", "configured", "unchanged", "pruned"]
OUTCOMES: Final[tuple[Outcome, ...]] = get_args(Outcome)
CUT_MARK: Final = "\n… (diff cut: too long to show)\n"


@dataclass(frozen=True)
class ObjectDiff:
    """One object's change in a preview: `text` is a unified diff (empty for a prune)."""

    object: str  # Kind/name, as summaries name objects
    would: Would
    text: str = ""

    def log_fields(self) -> dict[str, Any]:
        """Pure: the fields of the log line that carries this diff (text cut to TEXT_LIMIT)."""
        return {"event": EVENT, "object": self.object, "would": self.would, "diff": cut(self.text)}


@dataclass(frozen=True)
class ObjectOutcome:
    """What an apply or resync did to one object; `drifted` when it reverted a change made
    outside Git; `text` is the unified diff of a configured object (else empty)."""

    object: str  # Kind/name
    outcome: Outcome
    drifted: bool = False
    text: str = ""

    def log_fields(self) -> dict[str, Any]:
        """Pure: the fields of the log line that carries this outcome (text cut to TEXT_LIMIT)."""
        return {
            "event": OUTCOME_EVENT,
            "object": self.object,
            "outcome": self.outcome,
            "drifted": self.drifted,
            "diff": cut(self.text),
        }


def cut(text: str, limit: int = TEXT_LIMIT) -> str:
    """Pure: `text` within `limit` characters, marked when it was cut."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(CUT_MARK))] + CUT_MARK


def from_log(lines: Iterable[str]) -> list[ObjectDiff]:
    """Pure: the diffs in a Job's JSON log lines, in their order; other lines are skipped, and
    a later line for the same object replaces an earlier one."""
    found: dict[str, ObjectDiff] = {}
    for entry in _entries(lines, EVENT):
        name, would, text = entry.get("object"), entry.get("would"), entry.get("diff", "")
        if isinstance(name, str) and would in WOULDS and isinstance(text, str):
            found.pop(name, None)
            found[name] = ObjectDiff(name, would, cut(text))
    return list(found.values())


def outcomes_from_log(lines: Iterable[str]) -> list[ObjectOutcome]:
    """Pure: the outcomes in a Job's JSON log lines, in their order; other lines are skipped,
    and a later line for the same object replaces an earlier one."""
    found: dict[str, ObjectOutcome] = {}
    for entry in _entries(lines, OUTCOME_EVENT):
        name, outcome, text = entry.get("object"), entry.get("outcome"), entry.get("diff", "")
        drifted = entry.get("drifted", False)
        if (
            isinstance(name, str)
            and outcome in OUTCOMES
            and isinstance(text, str)
            and isinstance(drifted, bool)
        ):
            found.pop(name, None)
            found[name] = ObjectOutcome(name, outcome, drifted, cut(text))
    return list(found.values())


def _entries(lines: Iterable[str], event: str) -> Iterable[dict[str, Any]]:
    """The JSON objects among `lines` whose `event` is `event`."""
    for line in lines:
        if event not in line:
            continue
        try:
            entry: Any = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("event") == event:
            yield entry
