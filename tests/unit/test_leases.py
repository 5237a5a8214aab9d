"""Who may hold a Lease, decided on each participant's own monotonic clock (hooksync.leases).

The wall-clock times a Lease carries never decide: these tests give them any value, an hour
old or 45 s in the future, and only the observer's clock moves the outcome.
"""

from __future__ import annotations

import datetime
import ssl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hooksync.jobspec import EXIT_LEASE_HELD, EXIT_TRANSIENT
from hooksync.leases import (
    LeaseRecord,
    Observation,
    may_take,
    micro_time,
    observe,
    still_held,
)
from jobimage.kubeclient import KubeClient
from jobimage.lease import LeaseHeld, LeaseLost, TargetLease, ensure_held

WALL = datetime.datetime(2026, 12, 1, 18, 0, tzinfo=datetime.UTC)
DURATION = 30


def idle_client() -> KubeClient:
    """A client that is never called: nothing here talks to an API server."""
    return KubeClient("https://127.0.0.1:9", ssl.create_default_context(), lambda: None)


def record(
    holder: str | None = "holder-a", version: str = "1", renewed: datetime.datetime = WALL
) -> LeaseRecord:
    return LeaseRecord(
        holder=holder, duration_seconds=DURATION, version=version, renew_time=renewed
    )


def test_a_free_lease_or_ones_own_may_be_taken_at_once() -> None:
    assert may_take(observe(None, record(holder=None), now=100.0), "me", now=100.0)
    assert may_take(observe(None, record(holder="me"), now=100.0), "me", now=100.0)


def test_another_holder_is_taken_over_only_after_a_whole_duration_unchanged() -> None:
    seen = observe(None, record(), now=100.0)
    assert not may_take(seen, "me", now=100.0)
    assert not may_take(seen, "me", now=100.0 + DURATION - 0.001)
    assert may_take(seen, "me", now=100.0 + DURATION)


def test_an_unchanged_record_keeps_the_time_it_was_first_seen() -> None:
    first = observe(None, record(), now=100.0)
    again = observe(first, record(), now=125.0)
    assert again.since == 100.0
    assert may_take(again, "me", now=130.0)


@pytest.mark.parametrize(
    "renewed",
    [
        WALL - datetime.timedelta(hours=1),  # the holder's clock runs an hour behind ours
        WALL + datetime.timedelta(seconds=45),  # or 45 s ahead
    ],
)
def test_a_lease_renewed_every_ten_seconds_is_never_taken_whatever_its_times_say(
    renewed: datetime.datetime,
) -> None:
    seen: Observation | None = None
    for tick in range(30):  # five minutes of renewals, read every ten seconds
        now = 100.0 + 10 * tick
        seen = observe(seen, record(version=str(tick), renewed=renewed), now)
        assert not may_take(seen, "me", now), f"taken over after {10 * tick} s"


def test_a_change_of_holder_starts_the_wait_again() -> None:
    seen = observe(None, record(holder="holder-a"), now=100.0)
    seen = observe(seen, record(holder="holder-b", version="2"), now=129.0)
    assert not may_take(seen, "me", now=131.0)
    assert may_take(seen, "me", now=159.0)


def test_a_holder_acts_only_until_its_renew_deadline() -> None:
    assert not still_held(None, now=100.0, renew_deadline_seconds=20)
    assert still_held(100.0, now=119.9, renew_deadline_seconds=20)
    assert not still_held(100.0, now=120.0, renew_deadline_seconds=20)


@given(
    sent=st.floats(0, 1000),
    seen_after=st.floats(0, 100),
    later=st.floats(0, 200),
    deadline=st.floats(0.1, DURATION - 0.1),
)
def test_a_holder_stops_before_any_observer_may_take_over(
    sent: float, seen_after: float, later: float, deadline: float
) -> None:
    # The holder's write goes out at `sent`; an observer reads it no earlier (`seen_after`),
    # both on clocks running at the same rate. At no moment do both think they may act.
    seen = observe(None, record(), now=sent + seen_after)
    now = sent + later
    assert not (still_held(sent, now, deadline) and may_take(seen, "observer", now))


def test_a_lost_lease_exits_as_transient_and_a_held_one_as_lease_held() -> None:
    lease = TargetLease(idle_client(), "shop", "shop", "me")
    with pytest.raises(LeaseLost, match="Lease hooksync-target-shop was lost before apply"):
        lease.ensure_held(before="apply")  # never taken: not held
    assert lease.lost.is_set()
    assert LeaseLost.exit_code == EXIT_TRANSIENT
    assert LeaseHeld.exit_code == EXIT_LEASE_HELD
    ensure_held(None, before="apply")  # a preview holds no Lease and is never stopped


def test_the_renew_deadline_must_end_before_the_lease_does() -> None:
    with pytest.raises(ValueError, match="shorter than the Lease duration"):
        TargetLease(idle_client(), "shop", "shop", "me", renew_deadline_seconds=30)


def test_a_lease_as_the_api_server_writes_it_is_read_into_a_record() -> None:
    lease = {
        "metadata": {"name": "hooksync-target-shop", "resourceVersion": "42"},
        "spec": {
            "holderIdentity": "holder-a",
            "leaseDurationSeconds": 15,
            "renewTime": "2026-12-01T18:00:00.123456Z",
        },
    }
    assert LeaseRecord.from_lease(lease, DURATION) == LeaseRecord(
        holder="holder-a",
        duration_seconds=15,
        version="42",
        renew_time=WALL + datetime.timedelta(microseconds=123456),
    )
    # Released (no holder, no renewTime) and missing duration: the participant's default.
    released = {"metadata": {"resourceVersion": "43"}, "spec": {"holderIdentity": ""}}
    assert LeaseRecord.from_lease(released, DURATION) == LeaseRecord(
        holder=None, duration_seconds=DURATION, version="43", renew_time=None
    )


def test_wall_times_are_written_as_micro_time_in_utc() -> None:
    ahead = datetime.timezone(datetime.timedelta(hours=2))
    moment = datetime.datetime(2026, 12, 1, 20, 0, 1, 5, tzinfo=ahead)
    assert micro_time(moment) == "2026-12-01T18:00:01.000005Z"
