"""When a coordination.k8s.io Lease may be taken over; the Job's target Lease and the
receiver's leader Lease follow the same rule."""

from __future__ import annotations

import datetime
from typing import Any


def lease_expired(spec: Any, now: datetime.datetime, default_seconds: int) -> bool:
    """Whether a Lease spec has no live holder: nobody holds it, or the holder stopped renewing
    it for longer than its duration (`default_seconds` when the spec names none)."""
    if spec is None or not spec.holder_identity:
        return True
    renewed = spec.renew_time or spec.acquire_time
    if renewed is None:
        return True
    duration = spec.lease_duration_seconds or default_seconds
    return bool(renewed + datetime.timedelta(seconds=duration) < now)
