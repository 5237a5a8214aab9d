"""The target's Lease: at most one converge of a target runs at a time.

The Lease lives in the target namespace (the only place the Job's identity may write). A holder
renews it while working; a Lease not renewed within its duration may be taken over.
"""

from __future__ import annotations

import datetime
import threading

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from hooksync.jobspec import EXIT_LEASE_HELD
from hooksync.leases import lease_expired
from hooksync.names import MANAGED_BY, MANAGED_BY_VALUE, TARGET, lease_name
from jobimage.errors import ConvergeError, TransientError

LEASE_DURATION_SECONDS = 30
RENEW_EVERY_SECONDS = 10


class LeaseHeld(ConvergeError):
    """Another converge of this target holds the Lease; the Job exits 3 and retries later."""

    exit_code = EXIT_LEASE_HELD


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class TargetLease:
    """Take, renew in the background, and release the Lease of one target."""

    def __init__(self, api: client.ApiClient, target: str, namespace: str, holder: str) -> None:
        self.coordination = client.CoordinationV1Api(api)
        self.name = lease_name(target)
        self.target = target
        self.namespace = namespace
        self.holder = holder
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.lost = threading.Event()

    def acquire(self) -> None:
        """Take the Lease, or raise LeaseHeld when a live holder has it."""
        now = _now()
        spec = client.V1LeaseSpec(
            holder_identity=self.holder,
            lease_duration_seconds=LEASE_DURATION_SECONDS,
            acquire_time=now,
            renew_time=now,
        )
        try:
            current = self.coordination.read_namespaced_lease(self.name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise TransientError(f"reading Lease {self.name}: {exc.reason}") from None
            body = client.V1Lease(
                metadata=client.V1ObjectMeta(
                    name=self.name,
                    labels={MANAGED_BY: MANAGED_BY_VALUE, TARGET: self.target},
                ),
                spec=spec,
            )
            try:
                self.coordination.create_namespaced_lease(self.namespace, body)
            except ApiException as create_exc:
                if create_exc.status == 409:
                    raise LeaseHeld(
                        f"Lease {self.name} was just taken by another converge"
                    ) from None
                raise TransientError(f"creating Lease {self.name}: {create_exc.reason}") from None
            self._start_renewing()
            return
        holder = current.spec.holder_identity if current.spec else None
        if holder not in (None, "", self.holder) and not lease_expired(
            current.spec, now, LEASE_DURATION_SECONDS
        ):
            raise LeaseHeld(f"Lease {self.name} is held by {holder}; retry later")
        transitions = (current.spec.lease_transitions or 0) + 1 if current.spec else 1
        spec.lease_transitions = transitions
        current.spec = spec
        try:
            # resourceVersion in the body makes this a compare-and-swap: two takers, one wins.
            self.coordination.replace_namespaced_lease(self.name, self.namespace, current)
        except ApiException as exc:
            if exc.status == 409:
                raise LeaseHeld(f"Lease {self.name} was just taken by another converge") from None
            raise TransientError(f"taking Lease {self.name}: {exc.reason}") from None
        self._start_renewing()

    def _start_renewing(self) -> None:
        self._renewer = threading.Thread(target=self._renew_loop, name="lease-renew", daemon=True)
        self._renewer.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(RENEW_EVERY_SECONDS):
            try:
                current = self.coordination.read_namespaced_lease(self.name, self.namespace)
                if current.spec is None or current.spec.holder_identity != self.holder:
                    self.lost.set()
                    return
                current.spec.renew_time = _now()
                self.coordination.replace_namespaced_lease(self.name, self.namespace, current)
            except Exception:  # noqa: S112 - a missed renewal is retried on the next tick
                continue

    def release(self) -> None:
        """Stop renewing and hand the Lease back, if it is still ours."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
        try:
            current = self.coordination.read_namespaced_lease(self.name, self.namespace)
            if current.spec is not None and current.spec.holder_identity == self.holder:
                current.spec.holder_identity = None
                current.spec.renew_time = None
                self.coordination.replace_namespaced_lease(self.name, self.namespace, current)
        except Exception:  # noqa: S110 - an unreleased Lease simply expires
            pass
