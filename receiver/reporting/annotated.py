"""A Lease used as a small writable record: its annotations, rewritten by compare-and-swap.

The receiver may write only Leases, Jobs and CronJobs in its namespace, and a Lease that is
never held is the one of those that is nothing but metadata. The leader keeps what must
outlive the Jobs on such Leases (each target's last result, the fleet's recent runs).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from receiver.jobapi import API_TIMEOUT, Object

CONFLICT_RETRIES = 5

# Pure: the annotations to write, made from the Lease's current ones (empty when there is no
# Lease yet); None leaves the Lease as it is.
Change = Callable[[Mapping[str, str]], dict[str, str] | None]


def rewrite(
    api: client.ApiClient,
    namespace: str,
    name: str,
    labels: Mapping[str, str],
    change: Change,
    known: Mapping[str, Any] | None = None,
) -> Object | None:
    """Apply `change` to the annotations of Lease `name`, creating it (with `labels`) when
    absent. Returns the Lease as written, or None when `change` left it as it was.

    The read-modify-write carries the resourceVersion, so two writers (an old leader finishing
    its pass) cannot interleave: on a conflict the Lease is read again and `change` made anew.
    `known` is the Lease as last seen (`receiver.kept`), which saves the first read; when it
    is out of date, the write conflicts and the Lease is read.
    """
    leases = client.CoordinationV1Api(api)
    for _ in range(CONFLICT_RETRIES):
        if known is not None:
            metadata, known = dict(known.get("metadata") or {}), None
        else:
            try:
                answer = leases.read_namespaced_lease(
                    name, namespace, _preload_content=False, _request_timeout=API_TIMEOUT
                )
            except ApiException as exc:
                if exc.status != 404:
                    raise
                annotations = change({})
                if annotations is None:
                    return None
                body = _lease(name, labels, annotations)
                try:
                    created = leases.create_namespaced_lease(
                        namespace, body, _preload_content=False, _request_timeout=API_TIMEOUT
                    )
                except ApiException as create_exc:
                    if create_exc.status == 409:
                        continue  # written meanwhile: read it and change that
                    raise
                written: Object = json.loads(created.data)  # type: ignore[attr-defined]
                return written
            metadata = json.loads(answer.data).get("metadata") or {}  # type: ignore[attr-defined]
        annotations = change(metadata.get("annotations") or {})
        if annotations is None:
            return None
        patch = {
            "metadata": {
                "resourceVersion": metadata.get("resourceVersion"),
                "annotations": annotations,
            }
        }
        try:
            patched = leases.patch_namespaced_lease(
                name, namespace, patch, _preload_content=False, _request_timeout=API_TIMEOUT
            )
        except ApiException as exc:
            if exc.status in (404, 409):
                continue
            raise
        result: Object = json.loads(patched.data)  # type: ignore[attr-defined]
        return result
    raise ApiException(status=409, reason=f"Lease {name} kept changing")


def _lease(name: str, labels: Mapping[str, str], annotations: Mapping[str, str]) -> Any:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "labels": dict(labels), "annotations": dict(annotations)},
        "spec": {},
    }
