"""The target's Lease: at most one converge of a target runs at a time.

The Lease lives in the target namespace (the only place the Job's identity may write). A holder
renews it while working and stops before its next write once it cannot renew in time; another
converge takes it over only after watching it go unrenewed for its duration (hooksync.leases).
"""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import quote

from hooksync.jobspec import EXIT_LEASE_HELD
from hooksync.leases import Clock, Lease, LeaseConflict, Timeout, WallClock, utc_now
from hooksync.names import MANAGED_BY, MANAGED_BY_VALUE, TARGET, lease_name
from jobimage.errors import ConvergeError, TransientError
from jobimage.kubeclient import ApiError, KubeClient, Unreachable

LEASE_DURATION_SECONDS = 30
RENEW_EVERY_SECONDS = 10
# Two renewals may fail in a row; by the third the holder stops, 10 s before anyone may take over.
RENEW_DEADLINE_SECONDS = 20
RENEW_RETRY_SECONDS = 2


class LeaseHeld(ConvergeError):
    """Another converge of this target holds the Lease; the Job exits 3 and retries later."""

    exit_code = EXIT_LEASE_HELD


class LeaseLost(TransientError):
    """This converge could not renew the Lease in time, or another took it over: it stops
    before its next write, and the Job's retry converges again from the branch head."""


class JobLeases:
    """A LeaseStore (hooksync.leases) over the Job's own client."""

    def __init__(self, api: KubeClient) -> None:
        self.api = api

    def read(self, name: str, namespace: str, timeout: Timeout) -> dict[str, Any] | None:
        try:
            return dict(self.api.request("GET", _path(namespace, name), timeout=timeout))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def create(self, namespace: str, body: dict[str, Any], timeout: Timeout) -> dict[str, Any]:
        return self._write("POST", _path(namespace), body, timeout)

    def replace(
        self, name: str, namespace: str, body: dict[str, Any], timeout: Timeout
    ) -> dict[str, Any]:
        return self._write("PUT", _path(namespace, name), body, timeout)

    def _write(
        self, method: str, path: str, body: dict[str, Any], timeout: Timeout
    ) -> dict[str, Any]:
        try:
            return dict(self.api.request(method, path, body=body, timeout=timeout))
        except ApiError as exc:
            if exc.status == 409:
                raise LeaseConflict(exc.message) from None
            raise


def _path(namespace: str, name: str | None = None) -> str:
    where = f"/apis/coordination.k8s.io/v1/namespaces/{quote(namespace, safe='')}/leases"
    return f"{where}/{quote(name, safe='')}" if name else where


class TargetLease:
    """Take, renew in the background, check, and release the Lease of one target."""

    def __init__(
        self,
        api: KubeClient,
        target: str,
        namespace: str,
        holder: str,
        *,
        duration_seconds: int = LEASE_DURATION_SECONDS,
        renew_every_seconds: float = RENEW_EVERY_SECONDS,
        renew_deadline_seconds: float = RENEW_DEADLINE_SECONDS,
        clock: Clock = time.monotonic,
        wall_clock: WallClock = utc_now,
    ) -> None:
        self.lease = Lease(
            JobLeases(api),
            lease_name(target),
            namespace,
            holder,
            duration_seconds=duration_seconds,
            renew_deadline_seconds=renew_deadline_seconds,
            labels={MANAGED_BY: MANAGED_BY_VALUE, TARGET: target},
            clock=clock,
            wall_clock=wall_clock,
        )
        self.name = self.lease.name
        self.target = target
        self.namespace = namespace
        self.holder = holder
        self.renew_every_seconds = renew_every_seconds
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.lost = threading.Event()

    def acquire(self) -> None:
        """Take the Lease, or raise LeaseHeld while another holder keeps it alive.

        Called again and again while waiting: each call is one more look at the Lease, and a
        holder that stopped renewing is taken over once this process has seen it unchanged for
        the Lease's duration.
        """
        try:
            attempt = self.lease.try_hold()
        except ApiError as exc:
            raise TransientError(f"taking Lease {self.name}: {exc.message}") from None
        except Unreachable as exc:
            raise TransientError(f"taking Lease {self.name}: {exc}") from None
        if not attempt.held:
            if attempt.holder is None:
                raise LeaseHeld(f"Lease {self.name} was just taken by another converge")
            raise LeaseHeld(f"Lease {self.name} is held by {attempt.holder}; retry later")
        self._renewer = threading.Thread(target=self._renew_loop, name="lease-renew", daemon=True)
        self._renewer.start()

    def _renew_loop(self) -> None:
        pause = self.renew_every_seconds
        while not self._stop.wait(pause):
            try:
                attempt = self.lease.try_hold(take=False)
            except Exception:  # a failed renewal is retried until the deadline
                attempt = None
            if attempt is not None and attempt.held:
                pause = self.renew_every_seconds
                continue
            taken_over = attempt is not None and attempt.holder != self.holder
            if taken_over or not self.lease.held():
                self.lost.set()  # taken over, deleted, or not renewed in time: stop for good
                return
            pause = min(RENEW_RETRY_SECONDS, self.renew_every_seconds)

    def ensure_held(self, before: str) -> None:
        """Raise LeaseLost unless this converge still holds the Lease; call before each write
        step (`before` names it), so a holder that lost its Lease never writes again."""
        if not self.lost.is_set() and self.lease.held():
            return
        self.lost.set()
        raise LeaseLost(
            f"Lease {self.name} was lost before {before} (not renewed within "
            f"{self.lease.renew_deadline_seconds:g}s, or taken over); nothing more was written"
        )

    def release(self) -> None:
        """Stop renewing and hand the Lease back, if it is still ours."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
        self.lease.release()


def ensure_held(lease: TargetLease | None, before: str) -> None:
    """`lease.ensure_held(before)`, for converges that hold one (a preview holds none)."""
    if lease is not None:
        lease.ensure_held(before)
