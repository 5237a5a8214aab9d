"""What a preview would change, object by object: the Job logs it, the receiver reads it back.

A Job's termination message holds at most 4096 bytes, too little for a diff. So the preview
writes one log line per object with `event: object-diff`; the run page and the pull request's
comment read them back from the Job's log. Secret values never reach a diff (the Job redacts
them before it writes one), so a reader may show `text` as it is.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

EVENT: Final = "object-diff"
# What a preview would do to one object. "unchanged" objects are logged without text.
Would = Literal["create", "change", "prune", "unchanged"]
WOULDS: Final[tuple[Would, ...]] = get_args(Would)
# One object's diff is cut at this many characters, so one huge ConfigMap cannot crowd out
# the rest of the log or the comment.
TEXT_LIMIT: Final = 32_000
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


def cut(text: str, limit: int = TEXT_LIMIT) -> str:
    """Pure: `text` within `limit` characters, marked when it was cut."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(CUT_MARK))] + CUT_MARK


def from_log(lines: Iterable[str]) -> list[ObjectDiff]:
    """Pure: the diffs in a Job's JSON log lines, in their order; other lines are skipped, and
    a later line for the same object replaces an earlier one."""
    found: dict[str, ObjectDiff] = {}
    for line in lines:
        if EVENT not in line:
            continue
        try:
            entry: Any = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict) or entry.get("event") != EVENT:
            continue
        name, would, text = entry.get("object"), entry.get("would"), entry.get("diff", "")
        if isinstance(name, str) and would in WOULDS and isinstance(text, str):
            found.pop(name, None)
            found[name] = ObjectDiff(name, would, cut(text))
    return list(found.values())
