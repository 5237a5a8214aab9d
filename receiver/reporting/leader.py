"""Leader election on a coordination.k8s.io Lease: one replica at a time watches Jobs and
reports statuses; another takes over within about LEASE_SECONDS of the leader dying."""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Callable

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from hooksync import names
from hooksync.leases import lease_expired
from receiver.jobapi import API_TIMEOUT

log = logging.getLogger("hooksync.receiver")

LEASE_NAME = "hooksync-receiver-leader"
LEASE_SECONDS = 15
RENEW_SECONDS = 5


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class LeaderElector:
    """Keeps trying to hold the leader Lease; `is_leader` is set while this replica holds it."""

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        identity: str,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.coordination = client.CoordinationV1Api(api)
        self.namespace = namespace
        self.identity = identity
        self.is_leader = threading.Event()
        self.stop = threading.Event()
        self.on_change = on_change

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                leading = self._try_hold()
            except Exception as exc:  # the API server may be away; keep trying
                log.debug("leader election attempt failed", extra={"reason": str(exc)})
                leading = False
            self._set(leading)
            self.stop.wait(RENEW_SECONDS if leading else RENEW_SECONDS / 2)
        if self.is_leader.is_set():
            self._release()
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

    def _try_hold(self) -> bool:
        now = _now()
        try:
            lease = self.coordination.read_namespaced_lease(
                LEASE_NAME, self.namespace, _request_timeout=API_TIMEOUT
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = client.V1Lease(
                metadata=client.V1ObjectMeta(
                    name=LEASE_NAME, labels={names.MANAGED_BY: names.MANAGED_BY_VALUE}
                ),
                spec=client.V1LeaseSpec(
                    holder_identity=self.identity,
                    lease_duration_seconds=LEASE_SECONDS,
                    acquire_time=now,
                    renew_time=now,
                    lease_transitions=0,
                ),
            )
            try:
                self.coordination.create_namespaced_lease(
                    self.namespace, body, _request_timeout=API_TIMEOUT
                )
            except ApiException as create_exc:
                if create_exc.status == 409:
                    return False
                raise
            return True
        spec = lease.spec or client.V1LeaseSpec()
        mine = spec.holder_identity == self.identity
        if not mine and not lease_expired(spec, now, LEASE_SECONDS):
            return False
        if not mine:
            spec.acquire_time = now
            spec.lease_transitions = (spec.lease_transitions or 0) + 1
        spec.holder_identity = self.identity
        spec.lease_duration_seconds = LEASE_SECONDS
        spec.renew_time = now
        lease.spec = spec
        try:
            # The resourceVersion in `lease` makes this a compare-and-swap between replicas.
            self.coordination.replace_namespaced_lease(
                LEASE_NAME, self.namespace, lease, _request_timeout=API_TIMEOUT
            )
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def _release(self) -> None:
        try:
            lease = self.coordination.read_namespaced_lease(LEASE_NAME, self.namespace)
            if lease.spec is not None and lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = None
                lease.spec.renew_time = None
                self.coordination.replace_namespaced_lease(LEASE_NAME, self.namespace, lease)
        except Exception:  # noqa: S110 - an unreleased Lease expires by itself
            pass
