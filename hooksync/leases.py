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
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from kubernetes import client

Clock = Callable[[], float]
WallClock = Callable[[], datetime.datetime]
Timeout = tuple[float, float]  # connect and read, in seconds


def holder_identity() -> str:
    """Who this process is on a Lease: the pod's name (POD_NAME, from the downward API), else
    the host name with a random suffix, so two processes on one host never share a name."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def micro_time(moment: datetime.datetime) -> str:
    """Pure: `moment` as the API server's MicroTime, RFC 3339 in UTC with microseconds."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_micro_time(text: Any) -> datetime.datetime | None:
    """Pure: a MicroTime (or Time) string as an aware datetime; None when absent or malformed."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


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
    def from_lease(cls, lease: Mapping[str, Any], default_seconds: int) -> LeaseRecord:
        """Pure: the record of a Lease object as the API server returns it (a dict)."""
        spec = lease.get("spec") or {}
        metadata = lease.get("metadata") or {}
        duration = spec.get("leaseDurationSeconds")
        if not isinstance(duration, int) or duration <= 0:
            duration = default_seconds
        return cls(
            holder=spec.get("holderIdentity") or None,
            duration_seconds=duration,
            version=metadata.get("resourceVersion"),
            renew_time=parse_micro_time(spec.get("renewTime")),
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


class LeaseConflict(Exception):
    """A create or replace lost a race (409): the Lease exists already, or changed since read."""


class LeaseStore(Protocol):
    """The three calls a participant makes, on Lease objects as plain dicts (as the API server
    writes them: camelCase, MicroTime strings). Errors other than the ones named propagate."""

    def read(self, name: str, namespace: str, timeout: Timeout) -> dict[str, Any] | None:
        """The Lease, or None when there is none (404)."""
        ...

    def create(self, namespace: str, body: dict[str, Any], timeout: Timeout) -> dict[str, Any]:
        """The created Lease; LeaseConflict when one exists already."""
        ...

    def replace(
        self, name: str, namespace: str, body: dict[str, Any], timeout: Timeout
    ) -> dict[str, Any]:
        """The written Lease; LeaseConflict when its resourceVersion changed since `body` was
        read."""
        ...


class CoordinationLeases:
    """A LeaseStore over the official client (the receiver's)."""

    def __init__(self, api: client.ApiClient) -> None:
        from kubernetes import client

        self.coordination = client.CoordinationV1Api(api)

    def read(self, name: str, namespace: str, timeout: Timeout) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            answer = self.coordination.read_namespaced_lease(
                name, namespace, _request_timeout=timeout, _preload_content=False
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return _decoded(answer)

    def create(self, namespace: str, body: dict[str, Any], timeout: Timeout) -> dict[str, Any]:
        # The client sends a dict body as it is; its stubs name only the model.
        return _written(
            self.coordination.create_namespaced_lease,
            namespace,
            body,
            _request_timeout=timeout,
            _preload_content=False,
        )

    def replace(
        self, name: str, namespace: str, body: dict[str, Any], timeout: Timeout
    ) -> dict[str, Any]:
        return _written(
            self.coordination.replace_namespaced_lease,
            name,
            namespace,
            body,
            _request_timeout=timeout,
            _preload_content=False,
        )


def _written(write: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """The Lease `write` wrote; LeaseConflict when the API server answers 409."""
    from kubernetes.client.exceptions import ApiException

    try:
        return _decoded(write(*args, **kwargs))
    except ApiException as exc:
        if exc.status == 409:
            raise LeaseConflict(str(exc.reason)) from None
        raise


def _decoded(answer: Any) -> dict[str, Any]:
    """The JSON body of an answer read without the client's models."""
    data = json.loads(answer.data)
    if not isinstance(data, dict):
        raise ValueError("the API server answered with something other than a Lease")
    return data


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
        store: LeaseStore,
        name: str,
        namespace: str,
        identity: str,
        *,
        duration_seconds: int,
        renew_deadline_seconds: float,
        labels: Mapping[str, str] | None = None,
        request_timeout: Timeout = (2, 5),
        clock: Clock = time.monotonic,
        wall_clock: WallClock = utc_now,
    ) -> None:
        if not 0 < renew_deadline_seconds < duration_seconds:
            raise ValueError(
                f"Lease {name}: the renew deadline ({renew_deadline_seconds}s) must be positive "
                f"and shorter than the Lease duration ({duration_seconds}s)"
            )
        self.store = store
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
        Errors other than 404 and 409 propagate.
        """
        sent = self.clock()
        lease = self.store.read(self.name, self.namespace, self.request_timeout)
        if lease is None:
            return self._create(sent) if take else Attempt(held=False, holder=None)
        record = LeaseRecord.from_lease(lease, self.duration_seconds)
        self.observation = observe(self.observation, record, self.clock())
        ours = record.holder == self.identity
        if not ours and not (take and may_take(self.observation, self.identity, self.clock())):
            return Attempt(held=False, holder=record.holder)
        spec = dict(lease.get("spec") or {})
        now = micro_time(self.wall_clock())
        if not ours:
            spec["acquireTime"] = now
            spec["leaseTransitions"] = (spec.get("leaseTransitions") or 0) + 1
        spec["holderIdentity"] = self.identity
        spec["leaseDurationSeconds"] = self.duration_seconds
        spec["renewTime"] = now
        try:
            written = self.store.replace(
                self.name, self.namespace, {**lease, "spec": spec}, self.request_timeout
            )
        except LeaseConflict:
            return Attempt(held=False, holder=record.holder)
        return self._wrote(written, sent, record.holder)

    def _create(self, sent: float) -> Attempt:
        now = micro_time(self.wall_clock())
        metadata: dict[str, Any] = {"name": self.name}
        if self.labels:
            metadata["labels"] = dict(self.labels)
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self.duration_seconds,
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        }
        try:
            written = self.store.create(self.namespace, body, self.request_timeout)
        except LeaseConflict:
            return Attempt(held=False, holder=None)
        return self._wrote(written, sent, None)

    def _wrote(self, written: Mapping[str, Any], sent: float, previous: str | None) -> Attempt:
        self.renewed_at = sent
        record = LeaseRecord.from_lease(written, self.duration_seconds)
        self.observation = Observation(record, self.clock())
        return Attempt(held=self.held(), holder=previous)

    def release(self) -> None:
        """Hand the Lease back if it is still ours, so the next holder need not wait it out.
        Best effort: a Lease that is not released is taken over after its duration."""
        self.renewed_at = None
        try:
            lease = self.store.read(self.name, self.namespace, self.request_timeout)
            spec = dict((lease or {}).get("spec") or {})
            if lease is not None and spec.get("holderIdentity") == self.identity:
                spec.pop("holderIdentity", None)
                spec.pop("renewTime", None)
                self.store.replace(
                    self.name, self.namespace, {**lease, "spec": spec}, self.request_timeout
                )
        except Exception:  # noqa: S110 - an unreleased Lease expires by itself
            pass
