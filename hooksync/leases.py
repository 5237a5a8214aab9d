"""coordination.k8s.io Leases: who may hold one, timed by each participant's own clock.

The Job's target Lease and the receiver's leader Lease follow one rule, the one client-go's
leader election follows. An observer takes over a Lease that another holder names only after
it has itself watched that Lease stay unchanged for the Lease's whole duration, measured on
its own monotonic clock; a holder counts itself the holder only until its renew deadline,
measured from before its last successful write, which ends before any observer's wait can.
The wall-clock times written into the Lease (acquireTime, renewTime) are for people reading
it and are never compared, so a clock that runs ahead or behind cannot take a live Lease.
"""

from __future__ import annotations

import datetime
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

Clock = Callable[[], float]
WallClock = Callable[[], datetime.datetime]


def holder_identity() -> str:
    """Who this process is on a Lease: the pod's name (POD_NAME, from the downward API), else
    the host name with a random suffix, so two processes on one host never share a name."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


# --- the decisions (pure) ---------------------------------------------------------------------


@dataclass(frozen=True)
class LeaseRecord:
    """What an observer compares between two reads of a Lease.

    `version` is the resourceVersion, which every write changes, renewals included; the
    holder and renewTime ride along so that a record read without one still changes with them.
    """

    holder: str | None
    duration_seconds: int
    version: str | None
    renew_time: datetime.datetime | None

    @classmethod
    def from_lease(cls, lease: Any, default_seconds: int) -> LeaseRecord:
        spec = lease.spec
        metadata = lease.metadata
        return cls(
            holder=(spec.holder_identity or None) if spec else None,
            duration_seconds=(spec.lease_duration_seconds if spec else None) or default_seconds,
            version=metadata.resource_version if metadata else None,
            renew_time=spec.renew_time if spec else None,
        )


@dataclass(frozen=True)
class Observation:
    """A record, and when (on the observer's monotonic clock) the observer first saw it."""

    record: LeaseRecord
    since: float


def observe(previous: Observation | None, record: LeaseRecord, now: float) -> Observation:
    """Pure: the observation after reading `record` at `now`; an unchanged record keeps the
    time it was first seen, a changed one starts the wait again."""
    if previous is not None and previous.record == record:
        return previous
    return Observation(record, now)


def may_take(observation: Observation, identity: str, now: float) -> bool:
    """Pure: whether `identity` may write itself into the Lease as holder at `now`.

    Yes when nobody holds it or `identity` already does; otherwise only once the observer has
    seen the record unchanged for the record's whole duration. Wall clocks play no part.
    """
    holder = observation.record.holder
    if holder is None or holder == identity:
        return True
    return now - observation.since >= observation.record.duration_seconds


def still_held(renewed_at: float | None, now: float, renew_deadline_seconds: float) -> bool:
    """Pure: whether a holder whose last successful write was sent at `renewed_at` (its own
    monotonic clock) may still act as the holder at `now`."""
    return renewed_at is not None and now - renewed_at < renew_deadline_seconds


# --- one participant (I/O) --------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """The outcome of one try to take or renew: whether this participant holds the Lease now,
    and who held it when it was read (None: nobody)."""

    held: bool
    holder: str | None


class Lease:
    """One participant's view of one Lease: take or renew it by compare-and-swap, release it.

    `clock` (monotonic seconds) decides everything; `wall_clock` only fills in the times the
    Lease shows. Both are injectable so tests can skew them.
    """

    def __init__(
        self,
        coordination: client.CoordinationV1Api,
        name: str,
        namespace: str,
        identity: str,
        *,
        duration_seconds: int,
        renew_deadline_seconds: float,
        labels: Mapping[str, str] | None = None,
        request_timeout: tuple[float, float] = (2, 5),
        clock: Clock = time.monotonic,
        wall_clock: WallClock = utc_now,
    ) -> None:
        if not 0 < renew_deadline_seconds < duration_seconds:
            raise ValueError(
                f"Lease {name}: the renew deadline ({renew_deadline_seconds}s) must be positive "
                f"and shorter than the Lease duration ({duration_seconds}s)"
            )
        self.coordination = coordination
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.duration_seconds = duration_seconds
        self.renew_deadline_seconds = renew_deadline_seconds
        self.labels = dict(labels or {})
        self.request_timeout = request_timeout
        self.clock = clock
        self.wall_clock = wall_clock
        self.observation: Observation | None = None
        # Monotonic time at which the last successful write was *sent*: the holder's deadline
        # runs from there, never from when the answer came, so it ends before any observer's.
        self.renewed_at: float | None = None

    def held(self) -> bool:
        """Whether this participant may still act as the holder (see `still_held`)."""
        return still_held(self.renewed_at, self.clock(), self.renew_deadline_seconds)

    def try_hold(self, *, take: bool = True) -> Attempt:
        """Take the Lease if `may_take` allows (only when `take`), or renew it if it is ours.

        The write carries the resourceVersion that was read, so two participants racing for
        one Lease cannot both succeed: the loser gets 409 and an Attempt that does not hold.
        API errors other than 404 and 409 propagate.
        """
        sent = self.clock()
        try:
            lease = self.coordination.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=self.request_timeout
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
            return self._create(sent) if take else Attempt(held=False, holder=None)
        record = LeaseRecord.from_lease(lease, self.duration_seconds)
        self.observation = observe(self.observation, record, self.clock())
        ours = record.holder == self.identity
        if not ours and not (take and may_take(self.observation, self.identity, self.clock())):
            return Attempt(held=False, holder=record.holder)
        spec = lease.spec or client.V1LeaseSpec()
        now = self.wall_clock()
        if not ours:
            spec.acquire_time = now
            spec.lease_transitions = (spec.lease_transitions or 0) + 1
        spec.holder_identity = self.identity
        spec.lease_duration_seconds = self.duration_seconds
        spec.renew_time = now
        lease.spec = spec
        try:
            written = self.coordination.replace_namespaced_lease(
                self.name, self.namespace, lease, _request_timeout=self.request_timeout
            )
        except ApiException as exc:
            if exc.status == 409:
                return Attempt(held=False, holder=record.holder)
            raise
        return self._wrote(written, sent, record.holder)

    def _create(self, sent: float) -> Attempt:
        now = self.wall_clock()
        body = client.V1Lease(
            metadata=client.V1ObjectMeta(name=self.name, labels=self.labels or None),
            spec=client.V1LeaseSpec(
                holder_identity=self.identity,
                lease_duration_seconds=self.duration_seconds,
                acquire_time=now,
                renew_time=now,
                lease_transitions=0,
            ),
        )
        try:
            written = self.coordination.create_namespaced_lease(
                self.namespace, body, _request_timeout=self.request_timeout
            )
        except ApiException as exc:
            if exc.status == 409:
                return Attempt(held=False, holder=None)
            raise
        return self._wrote(written, sent, None)

    def _wrote(self, written: Any, sent: float, previous: str | None) -> Attempt:
        self.renewed_at = sent
        record = LeaseRecord.from_lease(written, self.duration_seconds)
        self.observation = Observation(record, self.clock())
        return Attempt(held=self.held(), holder=previous)

    def release(self) -> None:
        """Hand the Lease back if it is still ours, so the next holder need not wait it out.
        Best effort: a Lease that is not released is taken over after its duration."""
        self.renewed_at = None
        try:
            lease = self.coordination.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=self.request_timeout
            )
            if lease.spec is not None and lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = None
                lease.spec.renew_time = None
                self.coordination.replace_namespaced_lease(
                    self.name, self.namespace, lease, _request_timeout=self.request_timeout
                )
        except Exception:  # noqa: S110 - an unreleased Lease expires by itself
            pass
