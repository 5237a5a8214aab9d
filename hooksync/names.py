"""Names both the receiver and the Job use, defined here once: the label and annotation keys
that Jobs, CronJobs, Leases and applied objects carry, and the names of the objects hooksync
creates (Jobs, CronJobs, Leases, the inventory ConfigMap).

Pure: an object's name depends only on its inputs, which is what makes dispatch idempotent
(two replicas or a redelivery that race create one object).
"""

from __future__ import annotations

import hashlib
import re
from typing import Final, Literal, get_args

from hooksync.refs import is_valid_sha

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
# On a finished preview Job: its PR/MR comment's fate (done, or tries so far), and on an apply
# Job: the id of its deployment on the Git host and whether its final state is out.
COMMENT: Final = "hooksync.dev/comment"
DEPLOYMENT: Final = "hooksync.dev/deployment"
DEPLOYMENT_FINAL: Final = "hooksync.dev/deployment-final"
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


# --- object names -----------------------------------------------------------------------------

MAX_JOB_NAME: Final = 63
# The CronJob controller appends "-<minutes since epoch>" (11 characters) to name its Jobs.
MAX_CRONJOB_NAME: Final = 52
NAME_DIGEST_LENGTH: Final = 8
# The receivers' leader election Lease, in the Jobs' namespace.
LEADER_LEASE_NAME: Final = "hooksync-receiver-leader"
RECORD_PREFIX: Final = "hooksync-record-"
# The Lease on which the leader keeps the fleet's newest runs (receiver.reporting.history).
RECENT_RUNS_LEASE_NAME: Final = "hooksync-recent-runs"

_NOT_IN_LABEL = re.compile(r"[^a-z0-9-]+")


def lease_name(target: str) -> str:
    """The coordination.k8s.io Lease that serialises converges of one target."""
    return f"hooksync-target-{target}"


def parent_name(target: str) -> str:
    """The name of the inventory ConfigMap (the ApplySet parent) of one target."""
    return f"hooksync-inventory-{target}"


def record_name(target: str) -> str:
    """The Lease in the Jobs' namespace on which the leader keeps a target's last result."""
    return f"{RECORD_PREFIX}{target}"


def job_name(target: str, mode: Mode, sha: str) -> str:
    """``hooksync-{target}-{mode}-{sha[:7]}``: one Job per target, mode and commit.

    A redelivered event or a second replica computes the same name, so the API server's
    409 AlreadyExists tells it the work is already dispatched.
    """
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    if not is_valid_sha(sha):
        raise ValueError(f"{sha!r} is not a full commit SHA")
    return dns_label(f"hooksync-{target}-{mode}-{sha[:7]}")


def waiting_job_name(target: str, active_job: str) -> str:
    """The one apply Job allowed to wait behind the running apply Job `active_job`.

    ``hooksync-{target}-apply-next-{hash of active_job's name}``. Coalescing works like this:
    while apply Job A runs for a target, a push for that target creates this Job, suspended,
    annotated with `hooksync.dev/waits-for: A`. Every replica that sees A running computes
    the same name, so racing replicas create one object; a 409 means "already waiting", and
    the loser adds its SHA to the waiting Job's coalesced-shas annotation instead. When A
    ends, the leader un-suspends the Job that waits for A; it converges the branch head as
    it is then, which includes every SHA folded into it. A push arriving while that Job runs
    waits behind it under a name hashed from its own name, so a chain never repeats a name,
    and a burst of pushes costs at most one running and one waiting Job (one more for every
    `receiver.dispatch.coalescing.MAX_RECORDED` pushes that arrive while one converge runs).
    """
    return dns_label(f"hooksync-{target}-apply-next-{_digest(active_job)}")


def resync_cronjob_name(target: str) -> str:
    """``hooksync-resync-{target}``, at most 52 characters so the Jobs it names stay labels."""
    return dns_label(f"hooksync-resync-{target}", MAX_CRONJOB_NAME)


def sync_job_name(target: str, now: float) -> str:
    """``hooksync-{target}-sync-{minutes since the epoch}``: the Job a "sync now" starts.

    One name a minute, as the CronJob controller names its Jobs, so a repeated request (a
    retry, a double click) within the minute meets 409 and starts nothing more.
    """
    return dns_label(f"hooksync-{target}-sync-{int(now // 60)}")


def dns_label(name: str, limit: int = MAX_JOB_NAME) -> str:
    """`name` as a DNS-1123 label of at most `limit` characters.

    A name that is too long keeps its head and ends in a hash of the whole name, so two long
    names that differ only past the cut still differ.
    """
    label = _NOT_IN_LABEL.sub("-", name.lower()).strip("-")
    if not label:
        raise ValueError(f"{name!r} has no characters a DNS label can hold")
    if len(label) <= limit:
        return label
    head = label[: limit - NAME_DIGEST_LENGTH - 1].rstrip("-")
    return f"{head}-{_digest(label)}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:NAME_DIGEST_LENGTH]
