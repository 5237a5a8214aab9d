"""Health of any kind by what its status says, the way kstatus reads it: the generation the
controller has observed, then the Ready, Stalled and Reconciling conditions.

Pure: each function takes a live object dict and returns a Health. The built-in workloads keep
their own rollout rules (`jobimage.plan`); everything else (custom resources above all) is
read here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final


@dataclass(frozen=True)
class Health:
    """Whether an applied object has become what it should be; `failed` means it never will."""

    ready: bool
    reason: str
    failed: bool = False


READY: Final = Health(True, "ready")

# Ready=False with one of these reasons means the controller has given up on this generation:
# waiting cannot help, only a change in Git can. Any other reason is work in progress.
TERMINAL_REASONS: Final = frozenset(
    {"Failed", "Error", "InvalidSpec", "InvalidConfiguration", "ValidationFailed"}
)


def current(obj: Mapping[str, Any]) -> Health:
    """Whether `obj` is current, in this order:

    - being deleted: not yet (it is going away under the converge);
    - `status.observedGeneration` below `metadata.generation`: not yet, the controller has
      not seen this spec (an object whose status has no observedGeneration skips this);
    - a condition stamped with an older generation than the object's: not yet, it is stale;
    - `Stalled=True`: failed, with the condition's message;
    - a `Ready` condition: `True` is current, `False` with a reason in TERMINAL_REASONS is
      failed with its message, anything else (`Unknown`, another reason) is not yet;
    - no Ready condition and `Reconciling=True`: not yet;
    - otherwise (no status at all, or nothing that means work in progress): current.
    """
    metadata = obj.get("metadata") or {}
    if metadata.get("deletionTimestamp"):
        return Health(False, "being deleted")
    status = obj.get("status") or {}
    if not isinstance(status, Mapping):
        return READY
    generation = _integer(metadata.get("generation"))
    observed = _integer(status.get("observedGeneration"))
    if generation is not None and observed is not None and observed < generation:
        return Health(
            False,
            f"waiting for the controller to observe generation {generation} (it has seen "
            f"{observed})",
        )
    conditions = _conditions(status)
    for kind, condition in conditions.items():
        stamped = _integer(condition.get("observedGeneration"))
        if generation is not None and stamped is not None and stamped < generation:
            return Health(False, f"condition {kind} is from generation {stamped}, not {generation}")
    stalled = conditions.get("Stalled")
    if stalled is not None and stalled.get("status") == "True":
        return Health(False, f"stalled: {_words(stalled)}", failed=True)
    ready = conditions.get("Ready")
    if ready is not None:
        if ready.get("status") == "True":
            return READY
        if ready.get("status") == "False" and ready.get("reason") in TERMINAL_REASONS:
            return Health(False, f"not ready: {_words(ready)}", failed=True)
        return Health(False, f"Ready={ready.get('status') or 'Unknown'}: {_words(ready)}")
    reconciling = conditions.get("Reconciling")
    if reconciling is not None and reconciling.get("status") == "True":
        return Health(False, f"reconciling: {_words(reconciling)}")
    return READY


def pod_health(obj: Mapping[str, Any]) -> Health:
    """A bare Pod: current once it has succeeded or is Ready; failed once it has failed.

    Read by phase first, because a Pod that ran to completion says Ready=False for good.
    """
    status = obj.get("status") or {}
    phase = status.get("phase") if isinstance(status, Mapping) else None
    if phase == "Succeeded":
        return READY
    if phase == "Failed":
        why = status.get("message") or status.get("reason") or "its containers failed"
        return Health(False, f"pod failed: {why}", failed=True)
    ready = _conditions(status if isinstance(status, Mapping) else {}).get("Ready")
    if ready is not None and ready.get("status") == "True":
        return READY
    return Health(False, f"pod {phase or 'Pending'}, not ready")


def _conditions(status: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The conditions by type; a malformed entry is left out, the last of a repeated type wins."""
    found: dict[str, Mapping[str, Any]] = {}
    for condition in status.get("conditions") or []:
        if isinstance(condition, Mapping) and isinstance(condition.get("type"), str):
            found[condition["type"]] = condition
    return found


def _words(condition: Mapping[str, Any]) -> str:
    """The condition's message, after its reason when it has one."""
    reason = condition.get("reason")
    message = condition.get("message")
    if reason and message:
        return f"{reason}: {message}"
    return str(message or reason or "no reason given")


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
