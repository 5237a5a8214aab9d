"""RFC 3339 times as the API server writes them, to and from seconds since the epoch."""

from __future__ import annotations

import datetime


def parse_rfc3339(value: object) -> float | None:
    """Seconds since the epoch for an RFC 3339 time (a naive one is taken as UTC), else None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def rfc3339(seconds: float, *, milliseconds: bool = False) -> str:
    """`seconds` since the epoch as an RFC 3339 UTC time ("2026-11-26T09:40:01Z")."""
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    spec = "milliseconds" if milliseconds else "seconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")
