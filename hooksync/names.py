"""Label and annotation names that Jobs, CronJobs, Leases and applied objects carry.

Both the receiver and the Job read and write these, so they are defined here once.
"""

from typing import Final, Literal, get_args

MANAGED_BY: Final = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE: Final = "hooksync"

TARGET: Final = "hooksync.dev/target"
MODE: Final = "hooksync.dev/mode"

# Annotations on Jobs.
SHA: Final = "hooksync.dev/sha"
COALESCED_SHAS: Final = "hooksync.dev/coalesced-shas"
REF: Final = "hooksync.dev/ref"
DELIVERY: Final = "hooksync.dev/delivery"
PULL_REQUEST: Final = "hooksync.dev/pull-request"
REPORTED: Final = "hooksync.dev/reported"
# Label and annotation value once a Job's final statuses are all out; the leader lists only
# Jobs without the label, so its work follows the Jobs in flight, not those kept for their TTL.
REPORTED_COMPLETE: Final = "complete"
REPORTED_PENDING: Final = "hooksync.dev/reported-pending"
REPORTED_FINAL: Final = "hooksync.dev/reported-final"
SUMMARY: Final = "hooksync.dev/summary"
STATUS_FINALIZER: Final = "hooksync.dev/commit-status"
# On a waiting (suspended) apply Job: the name of the apply Job it waits behind.
WAITS_FOR: Final = "hooksync.dev/waits-for"
# On a waiting apply Job: when the last push was recorded on it (RFC 3339, UTC).
LAST_PUSH: Final = "hooksync.dev/last-push-at"

# On applied objects: which target's inventory they belong to (ApplySet-style).
APPLYSET_PART_OF: Final = "applyset.kubernetes.io/part-of"
INVENTORY_TARGET: Final = "hooksync.dev/inventory"
PRUNE: Final = "hooksync.dev/prune"
PRUNE_DISABLED: Final = "disabled"

FIELD_MANAGER: Final = "hooksync"

# What a Job does: apply the branch head, dry-run a PR/MR head, or resync on a schedule.
Mode = Literal["apply", "preview", "resync"]
MODES: Final[tuple[Mode, ...]] = get_args(Mode)


def lease_name(target: str) -> str:
    """The coordination.k8s.io Lease that serialises converges of one target."""
    return f"hooksync-target-{target}"
