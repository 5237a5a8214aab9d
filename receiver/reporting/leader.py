"""Leader election on a coordination.k8s.io Lease: one replica at a time watches Jobs and
reports statuses; another takes over once it has watched the Lease go unrenewed for
LEASE_SECONDS on its own clock (hooksync.leases), whatever the replicas' wall clocks say."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from kubernetes import client

from hooksync import names
from hooksync.leases import Clock, CoordinationLeases, Lease, WallClock, utc_now

log = logging.getLogger("hooksync.receiver")

LEASE_SECONDS = 15
RENEW_SECONDS = 5
# The leader stops leading this long after it last sent a successful renewal, 5 s before
# another replica, watching the Lease go unrenewed on its own clock, may take over.
RENEW_DEADLINE_SECONDS = 10


class LeaderElector:
    """Keeps trying to hold the leader Lease; `leading()` says whether this replica holds it."""

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        identity: str,
        on_change: Callable[[bool], None] | None = None,
        *,
        lease_seconds: int = LEASE_SECONDS,
        renew_seconds: float = RENEW_SECONDS,
        renew_deadline_seconds: float = RENEW_DEADLINE_SECONDS,
        clock: Clock = time.monotonic,
        wall_clock: WallClock = utc_now,
    ) -> None:
        self.lease = Lease(
            CoordinationLeases(api),
            names.LEADER_LEASE_NAME,
            namespace,
            identity,
            duration_seconds=lease_seconds,
            renew_deadline_seconds=renew_deadline_seconds,
            labels={names.MANAGED_BY: names.MANAGED_BY_VALUE},
            clock=clock,
            wall_clock=wall_clock,
        )
        self.namespace = namespace
        self.identity = identity
        self.renew_seconds = renew_seconds
        self.is_leader = threading.Event()
        self.stop = threading.Event()
        self.on_change = on_change

    def leading(self) -> bool:
        """Whether this replica may act as the leader now: it won the Lease and renewed it
        within the deadline, even if the election thread is stuck in a slow API call."""
        return self.is_leader.is_set() and self.lease.held()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                leading = self.lease.try_hold().held
            except Exception as exc:  # the API server may be away; keep trying
                log.debug("leader election attempt failed", extra={"reason": str(exc)})
                leading = False
            self._set(leading)
            self.stop.wait(self.renew_seconds if leading else self.renew_seconds / 2)
        if self.is_leader.is_set():
            self.lease.release()
        self._set(False)

    def _set(self, leading: bool) -> None:
        if leading != self.is_leader.is_set():
            log.info("leadership changed", extra={"leader": leading, "identity": self.identity})
            if leading:
                self.is_leader.set()
            else:
                self.is_leader.clear()
            if self.on_change is not None:
                self.on_change(leading)
