"""What a converge did (or, in a preview, would do) to each object: one change set for every step.

Apply, preview and prune all record into a `ChangeSet`; the run's counts and the object names
in its summary are read from it, so they cannot disagree with what happened.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final, Literal, get_args

from hooksync.inventory import ObjectRef

Action = Literal["created", "configured", "unchanged", "pruned"]
ACTIONS: Final[tuple[Action, ...]] = get_args(Action)
# Actions that change the namespace; a summary names these objects ("-" marks a prune).
CHANGING: Final[tuple[Action, ...]] = ("created", "configured", "pruned")
# What the inventory records after an apply: every object applied, whatever the outcome.
APPLIED: Final[tuple[Action, ...]] = ("created", "configured", "unchanged")


@dataclass(frozen=True)
class Change:
    """One object and what happened to it. `ref` is the live object (for the inventory);
    `diff` what an apply changed in it, as a unified diff (`jobimage.objectdiff`)."""

    name: str  # Kind/name
    action: Action
    ref: ObjectRef | None = None
    diff: str = ""

    @property
    def shown(self) -> str:
        """The name as a summary lists it: pruned objects are prefixed with "-"."""
        return f"-{self.name}" if self.action == "pruned" else self.name


@dataclass
class ChangeSet:
    """The changes of one run, in the order they were recorded. Safe to add to from threads."""

    changes: list[Change] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, name: str, action: Action, ref: ObjectRef | None = None, diff: str = "") -> None:
        with self._lock:
            self.changes.append(Change(name, action, ref, diff))

    def __iter__(self) -> Iterator[Change]:
        return iter(list(self.changes))

    def names(self, *actions: Action) -> list[str]:
        """Pure: the objects with any of `actions`, as a summary lists them, grouped by action."""
        return [change.shown for action in actions for change in self if change.action == action]

    def count(self, action: Action) -> int:
        return sum(1 for change in self if change.action == action)

    def counts(self, drifted: int = 0) -> dict[str, int]:
        """Pure: the summary's counts: one per action, plus `drifted` (which is not an action)."""
        return {action: self.count(action) for action in ACTIONS} | {"drifted": drifted}

    def refs(self, *actions: Action) -> list[ObjectRef]:
        """The live objects with any of `actions` (those applied, for the inventory)."""
        return [c.ref for c in self if c.action in actions and c.ref is not None]
