"""Converge one target namespace to what Git says, as a straight pipeline:

fetch -> read inventory -> render -> validate -> observe -> (skip when nothing to do)
      -> apply -> prune -> wait for health -> record inventory -> summary

A preview stops after a server-side dry run and a prune plan, changing nothing.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hooksync import logs
from hooksync.inventory import (
    InventoryError,
    InventoryRecord,
    ObjectRef,
    applyset_id,
    decode_inventory,
    parent_configmap,
    parent_name,
)
from hooksync.jobspec import JobSpec
from hooksync.names import APPLYSET_PART_OF, INVENTORY_TARGET
from hooksync.summary import RunSummary
from jobimage.errors import PermanentError, TransientError
from jobimage.fetch import Checkout, GitCredentials, fetch
from jobimage.kube import Cluster
from jobimage.plan import (
    ObjectKey,
    apply_order,
    classify_apply,
    drifted,
    health_of,
    object_key,
    prune_candidates,
)
from jobimage.render import render
from jobimage.validate import validate

log = logging.getLogger("hooksync.job")

APPLY_CONCURRENCY = 8
HEALTH_POLL_SECONDS = 1.0
HEALTH_FIRST_POLL_SECONDS = 0.1
NAMES_IN_MESSAGE = 5


@dataclass
class Observed:
    """Live state for the desired objects and for everything this target labelled before."""

    live: dict[ObjectKey, dict[str, Any]] = field(default_factory=dict)
    labelled: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Applied:
    created: list[str] = field(default_factory=list)
    configured: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    refs: list[ObjectRef] = field(default_factory=list)
    # What the API server answered to each apply: where the health wait starts.
    live: list[dict[str, Any]] = field(default_factory=list)


def converge(
    spec: JobSpec,
    cluster: Cluster,
    workdir: Path,
    credentials: GitCredentials,
    kustomize: str | None = None,
) -> RunSummary:
    """Run the whole pipeline for `spec`; raises ConvergeError subclasses on failure."""
    started = time.monotonic()
    checkout = fetch_step(spec, workdir, credentials)
    inventory = read_inventory(cluster, spec)
    objects = render_and_validate(spec, checkout, cluster, kustomize)
    observed = observe(cluster, spec, objects, inventory)
    drift = [name_of(obj) for obj in objects if is_drifted(obj, observed)]

    if spec.mode == "preview":
        return preview(spec, cluster, checkout.sha, objects, observed, inventory)

    if inventory.sha == checkout.sha and not drift:
        _step("skip", spec, sha=checkout.sha, reason="head already applied, nothing drifted")
        return RunSummary(
            result="no-op",
            sha=checkout.sha,
            mode=spec.mode,
            counts=_counts(unchanged=len(objects)),
            message=f"{checkout.sha[:7]} already applied; nothing drifted",
        )

    applied = apply_objects(cluster, spec, objects, observed)
    pruned = prune(cluster, spec, objects, observed, inventory)
    # A render with zero objects prunes nothing (rule 5): what was applied before is still live
    # and still ours, so it stays recorded, or a later render could never prune it.
    refs = applied.refs if objects else list(inventory.objects)
    if not all(health_of(live).ready for live in applied.live):
        # What is in the cluster is recorded before the wait, still at the old SHA: a run that
        # fails, or is killed, while it waits leaves an inventory naming exactly what it
        # applied and pruned (nothing it created goes unrecorded), and the next run retries.
        record_inventory(cluster, spec, inventory.sha, refs)
    wait_for_health(cluster, spec, applied.live, deadline=started + spec.timeout_seconds)
    record_inventory(cluster, spec, checkout.sha, refs)
    # Drift only means "changed by someone else" when Git did not move.
    drift_count = len(drift) if inventory.sha == checkout.sha else 0
    summary = RunSummary(
        result="success",
        sha=checkout.sha,
        mode=spec.mode,
        counts=_counts(
            created=len(applied.created),
            configured=len(applied.configured),
            unchanged=len(applied.unchanged),
            pruned=len(pruned),
            drifted=drift_count,
        ),
        drifted=drift[:NAMES_IN_MESSAGE] if drift_count else [],
        objects=applied.created + applied.configured + [f"-{name}" for name in pruned],
        message=_applied_message(len(objects), len(pruned), drift_count, drift),
    )
    _step("done", spec, sha=checkout.sha, seconds=round(time.monotonic() - started, 3))
    return summary


# --- the steps --------------------------------------------------------------------------------


def fetch_step(spec: JobSpec, workdir: Path, credentials: GitCredentials) -> Checkout:
    # Only a preview checks an exact commit; apply and resync take the branch head as it is now,
    # so a stale --sha can never roll the namespace back (design rule 1).
    sha = spec.sha if spec.mode == "preview" else None
    checkout = fetch(spec.clone_url, spec.branch, sha, workdir / "repo", credentials)
    _step("fetch", spec, sha=checkout.sha, ref=sha or spec.branch)
    return checkout


def read_inventory(cluster: Cluster, spec: JobSpec) -> InventoryRecord:
    parent = ObjectRef("", "v1", "ConfigMap", spec.namespace, parent_name(spec.target))
    live = cluster.get(parent)
    try:
        record = decode_inventory((live or {}).get("data"))
    except InventoryError as exc:
        raise PermanentError(f"inventory ConfigMap {parent.name}: {exc}") from None
    _step("inventory", spec, sha=record.sha, objects=len(record.objects))
    return record


def render_and_validate(
    spec: JobSpec, checkout: Checkout, cluster: Cluster, kustomize: str | None
) -> list[dict[str, Any]]:
    rendered = render(checkout.directory, spec.path, kustomize=kustomize, sha=checkout.sha)
    _step("render", spec, objects=len(rendered.manifests), kustomization=rendered.kustomization)
    objects = validate(rendered.manifests, spec.namespace, cluster.is_namespaced, spec.target)
    _step("validate", spec, objects=len(objects))
    return objects


def observe(
    cluster: Cluster, spec: JobSpec, objects: Sequence[dict[str, Any]], inventory: InventoryRecord
) -> Observed:
    """List the live objects of every kind involved: desired kinds in full (to classify and to
    spot another owner), previously applied kinds by this target's label (prune candidates)."""
    observed = Observed()
    applyset = applyset_id(spec.target, spec.namespace)
    desired_kinds = {(obj["apiVersion"], obj["kind"]) for obj in objects}
    for api_version, kind in sorted(desired_kinds):
        for live in cluster.list(api_version, kind, spec.namespace):
            observed.live[object_key(live)] = live
            if _labels(live).get(APPLYSET_PART_OF) == applyset:
                observed.labelled.append(live)
    selector = f"{APPLYSET_PART_OF}={applyset}"
    earlier_kinds = {(ref.api_version, ref.kind) for ref in inventory.objects} - desired_kinds
    for api_version, kind in sorted(earlier_kinds):
        observed.labelled.extend(cluster.list(api_version, kind, spec.namespace, selector))
    _check_ownership(spec, objects, observed)
    _step("observe", spec, live=len(observed.live), labelled=len(observed.labelled))
    return observed


def preview(
    spec: JobSpec,
    cluster: Cluster,
    sha: str,
    objects: Sequence[dict[str, Any]],
    observed: Observed,
    inventory: InventoryRecord,
) -> RunSummary:
    """Dry-run every apply on the server and plan the prune; nothing is written."""
    created: list[str] = []
    changed: list[str] = []
    unchanged: list[str] = []

    def plan_one(obj: dict[str, Any]) -> None:
        before = observed.live.get(object_key(obj))
        after = cluster.apply(obj, dry_run=True)
        if before is None:
            created.append(name_of(obj))
        elif _content(before) != _content(after):
            changed.append(name_of(obj))
        else:
            unchanged.append(name_of(obj))

    _run_waves(objects, plan_one)
    to_prune = _prune_plan(spec, objects, observed, inventory) if spec.prune else []
    pruned = [str(ref) for ref in to_prune]
    _step("preview", spec, sha=sha, created=len(created), changed=len(changed), pruned=len(pruned))
    parts = [f"would create {len(created)}", f"change {len(changed)}", f"prune {len(pruned)}"]
    named = (created + changed + [f"-{p}" for p in pruned])[:NAMES_IN_MESSAGE]
    message = ", ".join(parts) + (f": {', '.join(named)}" if named else "")
    return RunSummary(
        result="success",
        sha=sha,
        mode="preview",
        counts=_counts(
            created=len(created),
            configured=len(changed),
            unchanged=len(unchanged),
            pruned=len(pruned),
        ),
        objects=created + changed + [f"-{p}" for p in pruned],
        message=message,
    )


def apply_objects(
    cluster: Cluster, spec: JobSpec, objects: Sequence[dict[str, Any]], observed: Observed
) -> Applied:
    """Server-side apply in waves (prerequisites, Services, workloads), concurrently within one."""
    applied = Applied()

    def apply_one(obj: dict[str, Any]) -> None:
        before = observed.live.get(object_key(obj))
        after = cluster.apply(obj)
        getattr(applied, classify_apply(before, after)).append(name_of(obj))
        applied.refs.append(ObjectRef.from_object(after))
        applied.live.append(after)

    _run_waves(objects, apply_one)
    _step(
        "apply",
        spec,
        created=len(applied.created),
        configured=len(applied.configured),
        unchanged=len(applied.unchanged),
    )
    return applied


def prune(
    cluster: Cluster,
    spec: JobSpec,
    objects: Sequence[dict[str, Any]],
    observed: Observed,
    inventory: InventoryRecord,
) -> list[str]:
    """Delete what this target applied before and Git no longer has (design rule 5)."""
    if not spec.prune:
        return []
    deleted = [
        str(ref) for ref in _prune_plan(spec, objects, observed, inventory) if cluster.delete(ref)
    ]
    _step("prune", spec, pruned=len(deleted), names=deleted[:NAMES_IN_MESSAGE])
    return deleted


def wait_for_health(
    cluster: Cluster, spec: JobSpec, applied: Sequence[dict[str, Any]], deadline: float
) -> None:
    """Wait until every applied object is current (`plan.health_of`); name the ones that are
    not in time, and fail at once, with its reason, on one that never will be.

    Starts from the apply responses, so the kinds that are current once written (most of
    them) cost no request. Each poll then lists this target's objects of each kind still
    waited for once, rather than reading every object on its own; polls start quick (a
    rollout often ends within the apply) and slow down to HEALTH_POLL_SECONDS.
    """
    waiting: dict[str, ObjectRef] = {}
    reasons: dict[str, str] = {}
    for obj in applied:
        _judge(name_of(obj), obj, waiting, reasons, ObjectRef.from_object(obj))
    waited = len(waiting)
    selector = f"{APPLYSET_PART_OF}={applyset_id(spec.target, spec.namespace)}"
    pause = HEALTH_FIRST_POLL_SECONDS
    while waiting:
        if time.monotonic() >= deadline:
            listed = "; ".join(f"{n}: {reasons.get(n, 'not ready')}" for n in list(waiting)[:5])
            raise PermanentError(
                f"not ready after {spec.timeout_seconds}s: {listed}"
                + (f" (and {len(waiting) - 5} more)" if len(waiting) > 5 else "")
            )
        time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(pause * 2, HEALTH_POLL_SECONDS)
        kinds = sorted({(ref.api_version, ref.kind) for ref in waiting.values()})
        live_objects = {
            object_key(live): live
            for api_version, kind in kinds
            for live in cluster.list(api_version, kind, spec.namespace, selector)
        }
        for name, ref in list(waiting.items()):
            live = live_objects.get(ref.key)
            if live is None:
                reasons[name] = "not found after apply"
                continue
            _judge(name, live, waiting, reasons, ref)
    _step("health", spec, waited=waited)


def _judge(
    name: str,
    live: dict[str, Any],
    waiting: dict[str, ObjectRef],
    reasons: dict[str, str],
    ref: ObjectRef,
) -> None:
    """Drop `name` from `waiting` once current, keep it with its reason while not yet."""
    health = health_of(live)
    if health.failed:
        raise PermanentError(f"{name} failed: {health.reason}")
    if health.ready:
        waiting.pop(name, None)
        reasons.pop(name, None)
    else:
        waiting[name] = ref
        reasons[name] = health.reason


def record_inventory(
    cluster: Cluster, spec: JobSpec, sha: str | None, refs: Iterable[ObjectRef]
) -> None:
    record = InventoryRecord(sha=sha, objects=tuple(sorted(refs)))
    cluster.apply(parent_configmap(spec.target, spec.namespace, record))
    _step("record", spec, sha=sha, objects=len(record.objects))


# --- small pure pieces ------------------------------------------------------------------------


def name_of(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"


def is_drifted(desired: dict[str, Any], observed: Observed) -> bool:
    live = observed.live.get(object_key(desired))
    return live is not None and drifted(desired, live)


def _prune_plan(
    spec: JobSpec,
    objects: Sequence[dict[str, Any]],
    observed: Observed,
    inventory: InventoryRecord,
) -> list[ObjectRef]:
    desired = {object_key(obj) for obj in objects}
    return prune_candidates(
        inventory.objects, observed.labelled, desired, spec.namespace, spec.target
    )


def _check_ownership(spec: JobSpec, objects: Sequence[dict[str, Any]], observed: Observed) -> None:
    """Refuse to take over an object that another target applied: two owners would fight."""
    for obj in objects:
        live = observed.live.get(object_key(obj))
        owner = _labels(live or {}).get(INVENTORY_TARGET)
        if owner and owner != spec.target:
            raise PermanentError(
                f"{name_of(obj)} in {spec.namespace} belongs to target {owner!r}; two targets "
                "cannot manage one object — remove it from one of them"
            )


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def _content(obj: dict[str, Any]) -> dict[str, Any]:
    metadata = {
        k: v
        for k, v in (obj.get("metadata") or {}).items()
        if k not in ("managedFields", "resourceVersion", "generation", "creationTimestamp", "uid")
    }
    return {k: v for k, v in obj.items() if k != "status"} | {"metadata": metadata}


def _run_waves(objects: Sequence[dict[str, Any]], action: Any) -> None:
    with ThreadPoolExecutor(max_workers=APPLY_CONCURRENCY) as pool:
        for wave in apply_order(list(objects)):
            # list() re-raises the first failure of the wave, in render order.
            list(pool.map(action, wave))


def _counts(**counts: int) -> dict[str, int]:
    base = dict.fromkeys(("created", "configured", "unchanged", "pruned", "drifted"), 0)
    base.update(counts)
    return base


def _applied_message(total: int, pruned: int, drift_count: int, drift: list[str]) -> str:
    message = f"applied {total}, pruned {pruned}, {drift_count} drifted"
    if drift_count:
        message += f" ({', '.join(drift[:NAMES_IN_MESSAGE])})"
    return message


def _step(step: str, spec: JobSpec, **fields: Any) -> None:
    job = os.environ.get("HOOKSYNC_JOB_NAME")
    log.info(
        step, extra=logs.extra(step=step, target=spec.target, mode=spec.mode, job=job, **fields)
    )


__all__ = ["TransientError", "converge"]
