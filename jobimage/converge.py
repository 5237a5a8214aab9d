"""Converge one target namespace to what Git says, as a straight pipeline:

check namespace -> fetch -> read inventory -> decrypt -> render -> validate -> observe
      -> (skip when nothing to do) -> apply -> prune -> wait for health -> record inventory
      -> summary

A resync first tries the cheap way to find it has nothing to do: `git ls-remote` for the
branch head, and when that is the SHA the inventory records, one list per recorded kind to
compare every live object with the fingerprint the converge that applied it recorded
(`hooksync.inventory.fingerprint`: everything but status and the server's bookkeeping). Only
when the head moved, an object changed, went missing or appeared with the target's label, or
nothing was recorded, does it fetch, render and apply. Sound for server-side apply: drift is
another writer changing what the apply set, which changes the object outside its status and so
its fingerprint; the fingerprints come from the apply answers of the converge that recorded the
SHA (any later edit, even one racing that converge, differs from them), and a full run that finds
nothing to apply records what it saw, so a controller's own later edit (a Deployment's revision
annotation) costs one full run, not every one.

Every step is marked with `pipeline_step`, so a failure names the step it happened in.

A preview stops after a server-side dry run and a prune plan, changing nothing; it logs one
`object-diff` line per object (`hooksync.diffs`). An apply logs one `object-outcome` line per
object: what it did, and the diff of what it changed.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from hooksync import logs
from hooksync.config import RESERVED_NAMESPACES
from hooksync.diffs import ObjectDiff, ObjectOutcome
from hooksync.inventory import (
    InventoryError,
    InventoryRecord,
    ObjectRef,
    applyset_id,
    decode_inventory,
    fingerprint,
    parent_configmap,
    parent_name,
)
from hooksync.jobspec import JobSpec
from hooksync.names import APPLYSET_PART_OF, INVENTORY_TARGET
from hooksync.summary import STEPS, RunSummary
from jobimage.changes import APPLIED, CHANGING, Action, Change, ChangeSet
from jobimage.decrypt import Plaintext, decrypt
from jobimage.errors import ConvergeError, PermanentError, TransientError
from jobimage.fetch import (
    DISK_LIMIT_FIELD,
    Checkout,
    GitCredentials,
    PendingFetch,
    fetch,
    fetch_sha,
    remote_head,
)
from jobimage.helm import Release, chart_to_render, find_helm, render_chart
from jobimage.kube import Cluster
from jobimage.lease import TargetLease, ensure_held
from jobimage.objectdiff import object_diff
from jobimage.plan import (
    ObjectKey,
    apply_order,
    classify_apply,
    drifted,
    health_of,
    object_key,
    prune_candidates,
    wave_of,
)
from jobimage.podsecurity import OPT_OUT_FIELD, check_pod_security
from jobimage.render import Rendered, render
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


def converge(
    spec: JobSpec,
    cluster: Cluster,
    workdir: Path,
    credentials: GitCredentials,
    kustomize: str | None = None,
    lease: TargetLease | None = None,
    pending: PendingFetch | None = None,
) -> RunSummary:
    """Run the whole pipeline for `spec`; raises ConvergeError subclasses on failure, each
    carrying the step that failed.

    With the target's `lease`, nothing is applied or pruned once it is lost (LeaseLost). A
    `pending` fetch, started earlier for this spec, is the fetch step's checkout (an apply or a
    preview; a resync decides first whether it needs one).
    """
    started = time.monotonic()
    check_namespace(cluster, spec)
    if spec.mode == "resync":
        inventory = read_inventory(cluster, spec)
        quick = unchanged_since_applied(cluster, spec, workdir, credentials, inventory)
        if quick is not None:
            return quick
        checkout = fetch_step(spec, workdir, credentials)
    else:
        checkout = fetch_step(spec, workdir, credentials, pending)
        inventory = read_inventory(cluster, spec)
    plaintext = decrypt_step(spec, checkout)
    try:
        return _converge_checkout(spec, cluster, checkout, inventory, kustomize, lease, started)
    except ConvergeError as exc:
        # kustomize and the API server may quote what they read: no decrypted value leaves.
        exc.scrub(plaintext.scrub)
        raise
    except Exception as exc:
        if not plaintext.values:
            raise
        # Unexpected, so transient as the command line treats it, but said without secrets.
        raise TransientError(plaintext.scrub(f"{type(exc).__name__}: {exc}")) from None


def _converge_checkout(
    spec: JobSpec,
    cluster: Cluster,
    checkout: Checkout,
    inventory: InventoryRecord,
    kustomize: str | None,
    lease: TargetLease | None,
    started: float,
) -> RunSummary:
    """The pipeline from render on, over a fetched (and decrypted) checkout."""
    rendered = render_step(spec, checkout, kustomize)
    objects = validate_step(spec, rendered, cluster)
    observed = observe(cluster, spec, objects, inventory)
    drift = [name_of(obj) for obj in objects if is_drifted(obj, observed)]
    # Applied before and gone now: deleted by someone else, drift a resync must repair.
    recorded = {ref.key for ref in inventory.objects}
    drift += [
        name_of(obj)
        for obj in objects
        if object_key(obj) in recorded and object_key(obj) not in observed.live
    ]

    if spec.mode == "preview":
        return preview(spec, cluster, checkout.sha, objects, observed, inventory)

    if inventory.sha == checkout.sha and not drift:
        _step("skip", spec, sha=checkout.sha, reason="head already applied, nothing drifted")
        seen = _fingerprints(observed.live.get(object_key(obj)) for obj in objects)
        if seen != dict(inventory.fingerprints) and set(seen) == {r.uid for r in inventory.objects}:
            # Nothing to apply, and the live objects match Git: what they are now is what the
            # next resync compares with (a controller's own edit since the apply included).
            ensure_held(lease, before="recording the inventory")
            record_inventory(cluster, spec, checkout.sha, inventory.objects, seen)
        unchanged = ChangeSet([Change(name_of(obj), "unchanged") for obj in objects])
        return RunSummary(
            result="no-op",
            sha=checkout.sha,
            mode=spec.mode,
            counts=unchanged.counts(),
            message=f"{checkout.sha[:7]} already applied; nothing drifted",
        )

    changes = ChangeSet()
    ensure_held(lease, before="apply")
    applied = apply_objects(cluster, spec, objects, observed, changes)
    ensure_held(lease, before="prune")
    prune(cluster, spec, objects, observed, inventory, changes)
    # Drift only means "changed by someone else" when Git did not move.
    drift_count = len(drift) if inventory.sha == checkout.sha else 0
    log_outcomes(spec, objects, changes, set(drift) if drift_count else set())
    # A render with zero objects prunes nothing (rule 5): what was applied before is still live
    # and still ours, so it stays recorded, or a later render could never prune it.
    refs = changes.refs(*APPLIED) if objects else list(inventory.objects)
    if not all(health_of(live).ready for live in applied):
        # What is in the cluster is recorded before the wait, still at the old SHA: a run that
        # fails, or is killed, while it waits leaves an inventory naming exactly what it
        # applied and pruned (nothing it created goes unrecorded), and the next run retries.
        record_inventory(cluster, spec, inventory.sha, refs)
    wait_for_health(cluster, spec, applied, deadline=started + spec.timeout_seconds)
    ensure_held(lease, before="recording the inventory")
    record_inventory(cluster, spec, checkout.sha, refs, _fingerprints(applied) if objects else {})
    summary = RunSummary(
        result="success",
        sha=checkout.sha,
        mode=spec.mode,
        counts=changes.counts(drifted=drift_count),
        drifted=drift[:NAMES_IN_MESSAGE] if drift_count else [],
        objects=changes.names(*CHANGING),
        message=_applied_message(len(objects), changes.count("pruned"), drift_count, drift),
    )
    _step("done", spec, sha=checkout.sha, seconds=round(time.monotonic() - started, 3))
    return summary


# --- the steps --------------------------------------------------------------------------------

P = ParamSpec("P")
R = TypeVar("R")


def pipeline_step(name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Mark a function as the pipeline step `name` (one of STEPS): a failure inside it leaves
    with the step recorded, so the summary can say where the run stopped.

    Nesting too deep for Python (RecursionError) is the input's fault, so it is permanent; any
    other unexpected error is transient, as the command line treats it.
    """
    assert name in STEPS, name

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(function)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return function(*args, **kwargs)
            except ConvergeError as exc:
                exc.step = exc.step or name
                raise
            except RecursionError:
                error: ConvergeError = PermanentError(
                    "an object is nested too deeply to handle; flatten it"
                )
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    error = TransientError(f"{type(exc).__name__}: {exc}")
                else:
                    error = PermanentError(
                        f"no space left on device writing {exc.filename or 'a file'}; "
                        f"the Job's disk is full: raise {DISK_LIMIT_FIELD} in the configuration"
                    )
            except Exception as exc:
                error = TransientError(f"{type(exc).__name__}: {exc}")
            error.step = name
            raise error

        return run

    return decorate


@pipeline_step("namespace")
def check_namespace(cluster: Cluster, spec: JobSpec) -> None:
    """Refuse a namespace whose Pod Security admission would let a push escape it, unless the
    target opted out (then the namespace is not even read). The configuration refuses the
    cluster's own namespaces and the Jobs' one; the Job checks again, as a command run by hand
    reads no configuration."""
    if spec.namespace in RESERVED_NAMESPACES or spec.namespace == os.environ.get("POD_NAMESPACE"):
        raise PermanentError(
            f"namespace {spec.namespace!r} is the cluster's own or where hooksync's Jobs run; "
            "targets may not converge it — give the target a namespace of its own"
        )
    if spec.allow_unenforced_pod_security:
        _step("namespace", spec, pod_security=f"not checked: {OPT_OUT_FIELD} is set")
        return
    level = check_pod_security(spec.namespace, cluster.namespace_labels(spec.namespace))
    _step("namespace", spec, pod_security=level)


@pipeline_step("fetch")
def fetch_step(
    spec: JobSpec, workdir: Path, credentials: GitCredentials, pending: PendingFetch | None = None
) -> Checkout:
    if pending is not None:
        checkout = pending.result()
    else:
        sha = fetch_sha(spec)
        checkout = fetch(spec.clone_url, spec.branch, sha, workdir / "repo", credentials)
    _step("fetch", spec, sha=checkout.sha, ref=fetch_sha(spec) or spec.branch)
    return checkout


@pipeline_step("inventory")
def read_inventory(cluster: Cluster, spec: JobSpec) -> InventoryRecord:
    parent = ObjectRef("", "v1", "ConfigMap", spec.namespace, parent_name(spec.target))
    live = cluster.get(parent)
    try:
        record = decode_inventory((live or {}).get("data"))
    except InventoryError as exc:
        raise PermanentError(f"inventory ConfigMap {parent.name}: {exc}") from None
    _step("inventory", spec, sha=record.sha, objects=len(record.objects))
    return record


@pipeline_step("decrypt")
def decrypt_step(spec: JobSpec, checkout: Checkout) -> Plaintext:
    """Decrypt the SOPS-encrypted files below the target's path, in place, before anything
    reads them. A path that is missing or leaves the repository is render's to report."""
    root = checkout.directory.resolve()
    start = (root / (spec.path or ".")).resolve()
    if not start.exists() or not start.is_relative_to(root):
        return Plaintext()
    plaintext = decrypt(root, start, spec.decryption_keys)
    _step("decrypt", spec, files=len(plaintext.files), names=plaintext.files[:NAMES_IN_MESSAGE])
    return plaintext


@pipeline_step("render")
def render_step(spec: JobSpec, checkout: Checkout, kustomize: str | None) -> Rendered:
    chart = chart_to_render(checkout.directory, spec.path, spec.helm)
    if chart is not None:
        # Released under the target's name unless its `helm:` block names another.
        name = (spec.helm.release if spec.helm else None) or spec.target
        release = Release(name, spec.namespace, spec.helm)
        rendered = render_chart(checkout.directory, chart, release, sha=checkout.sha)
    else:
        rendered = render(
            checkout.directory, spec.path, kustomize=kustomize, sha=checkout.sha, helm=find_helm()
        )
    _step(
        "render",
        spec,
        objects=len(rendered.manifests),
        kustomization=rendered.kustomization,
        chart=rendered.chart,
    )
    return rendered


@pipeline_step("validate")
def validate_step(spec: JobSpec, rendered: Rendered, cluster: Cluster) -> list[dict[str, Any]]:
    objects = validate(
        rendered.manifests,
        spec.namespace,
        cluster.is_namespaced,
        spec.target,
        subject_namespaces=spec.allowed_subject_namespaces,
    )
    _step("validate", spec, objects=len(objects))
    return objects


@pipeline_step("observe")
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


@pipeline_step("preview")
def preview(
    spec: JobSpec,
    cluster: Cluster,
    sha: str,
    objects: Sequence[dict[str, Any]],
    observed: Observed,
    inventory: InventoryRecord,
) -> RunSummary:
    """Dry-run every apply on the server and plan the prune; nothing is written. What each
    object would become is compared with the live one (`objectdiff`): the diff decides
    whether it would change, and is logged, one line per object, in a stable order."""
    changes = ChangeSet()
    found: dict[str, ObjectDiff] = {}

    def plan_one(obj: dict[str, Any]) -> None:
        before = observed.live.get(object_key(obj))
        after = cluster.apply(obj, dry_run=True)
        diff = object_diff(name_of(obj), obj, before, after)
        found[diff.object] = diff
        changes.add(diff.object, WOULD_ACTION[diff.would])

    _run_waves(objects, plan_one)
    prunes = _prune_plan(spec, objects, observed, inventory) if spec.prune else []
    for ref in prunes:
        changes.add(str(ref), "pruned", ref)
    for obj in sorted(objects, key=_shown_order):
        _log_object(spec, found[name_of(obj)].log_fields())
    for ref in prunes:
        _log_object(spec, ObjectDiff(str(ref), "prune").log_fields())
    created, changed, pruned = (changes.count(a) for a in ("created", "configured", "pruned"))
    _step("preview", spec, sha=sha, created=created, changed=changed, pruned=pruned)
    named = changes.names(*CHANGING)
    message = f"would create {created}, change {changed}, prune {pruned}"
    if named:
        message += f": {', '.join(named[:NAMES_IN_MESSAGE])}"
    return RunSummary(
        result="success",
        sha=sha,
        mode="preview",
        counts=changes.counts(),
        objects=named,
        message=message,
    )


@pipeline_step("apply")
def apply_objects(
    cluster: Cluster,
    spec: JobSpec,
    objects: Sequence[dict[str, Any]],
    observed: Observed,
    changes: ChangeSet,
) -> list[dict[str, Any]]:
    """Server-side apply in waves (prerequisites, Services, workloads), concurrently within one;
    returns what the API server answered to each apply, where the health wait starts."""
    answers: list[dict[str, Any]] = []

    def apply_one(obj: dict[str, Any]) -> None:
        before = observed.live.get(object_key(obj))
        after = cluster.apply(obj)
        action = classify_apply(before, after)
        # The diff of what changed; a created object's manifest is in Git already.
        diff = object_diff(name_of(obj), obj, before, after).text if action == "configured" else ""
        changes.add(name_of(obj), action, ObjectRef.from_object(after), diff)
        answers.append(after)

    _run_waves(objects, apply_one)
    _step(
        "apply",
        spec,
        created=changes.count("created"),
        configured=changes.count("configured"),
        unchanged=changes.count("unchanged"),
    )
    return answers


@pipeline_step("prune")
def prune(
    cluster: Cluster,
    spec: JobSpec,
    objects: Sequence[dict[str, Any]],
    observed: Observed,
    inventory: InventoryRecord,
    changes: ChangeSet,
) -> None:
    """Delete what this target applied before and Git no longer has (design rule 5)."""
    if not spec.prune:
        return
    for ref in _prune_plan(spec, objects, observed, inventory):
        if cluster.delete(ref):
            changes.add(str(ref), "pruned", ref)
    deleted = [change.name for change in changes if change.action == "pruned"]
    _step("prune", spec, pruned=len(deleted), names=deleted[:NAMES_IN_MESSAGE])


@pipeline_step("health")
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


@pipeline_step("record")
def record_inventory(
    cluster: Cluster,
    spec: JobSpec,
    sha: str | None,
    refs: Iterable[ObjectRef],
    fingerprints: Mapping[str, str] | None = None,
) -> None:
    record = InventoryRecord(
        sha=sha, objects=tuple(sorted(refs)), fingerprints=dict(fingerprints or {})
    )
    cluster.apply(parent_configmap(spec.target, spec.namespace, record))
    _step("record", spec, sha=sha, objects=len(record.objects))


def log_outcomes(
    spec: JobSpec, objects: Sequence[dict[str, Any]], changes: ChangeSet, drift: set[str]
) -> None:
    """One `object-outcome` line per object an apply touched, in a stable order: the applied
    ones as `preview` orders its diffs, then the pruned ones."""
    by_name = {change.name: change for change in changes}
    for obj in sorted(objects, key=_shown_order):
        change = by_name.get(name_of(obj))
        if change is not None:
            outcome = ObjectOutcome(change.name, change.action, change.name in drift, change.diff)
            _log_object(spec, outcome.log_fields())
    for change in changes:
        if change.action == "pruned":
            _log_object(spec, ObjectOutcome(change.name, "pruned").log_fields())


# --- the cheap resync -------------------------------------------------------------------------


def unchanged_since_applied(
    cluster: Cluster,
    spec: JobSpec,
    workdir: Path,
    credentials: GitCredentials,
    inventory: InventoryRecord,
) -> RunSummary | None:
    """A no-op summary when the branch head is the recorded SHA and every recorded object is
    live exactly as recorded, found without fetching; None when the full path must run."""
    if not inventory.sha or not inventory.objects or not inventory.fingerprints:
        _step("quick check", spec, outcome="full", reason="no fingerprints recorded")
        return None
    head = head_step(spec, workdir, credentials)
    if head != inventory.sha:
        _step("quick check", spec, outcome="full", reason="head moved", sha=head)
        return None
    moved = changed_since_applied(cluster, spec, inventory)
    if moved:
        _step("quick check", spec, outcome="full", reason="objects changed", names=moved[:5])
        return None
    count = len(inventory.objects)
    _step("skip", spec, sha=head, reason="head already applied, nothing changed", fetched=False)
    unchanged = ChangeSet([Change(str(ref), "unchanged") for ref in inventory.objects])
    return RunSummary(
        result="no-op",
        sha=head,
        mode=spec.mode,
        counts=unchanged.counts(),
        message=f"{head[:7]} already applied; nothing changed since "
        f"({count} objects checked, nothing fetched)",
    )


@pipeline_step("fetch")
def head_step(spec: JobSpec, workdir: Path, credentials: GitCredentials) -> str:
    head = remote_head(spec.clone_url, spec.branch, workdir / "remote", credentials)
    _step("head", spec, sha=head, ref=spec.branch)
    return head


@pipeline_step("observe")
def changed_since_applied(cluster: Cluster, spec: JobSpec, inventory: InventoryRecord) -> list[str]:
    """What differs from the record: objects changed (fingerprint), missing, or carrying the
    target's label without being recorded. One list call per recorded kind."""
    if any(ref.namespace != spec.namespace or not ref.uid for ref in inventory.objects):
        return ["the inventory names an object outside the namespace or without a uid"]
    selector = f"{APPLYSET_PART_OF}={applyset_id(spec.target, spec.namespace)}"
    live: dict[str, dict[str, Any]] = {}
    for api_version, kind in sorted({(r.api_version, r.kind) for r in inventory.objects}):
        for listed in cluster.list(api_version, kind, spec.namespace, selector):
            live[str((listed.get("metadata") or {}).get("uid") or "")] = listed
    changed = []
    for ref in inventory.objects:
        found = live.pop(ref.uid, None)
        if found is None:
            changed.append(f"{ref} missing")
        elif fingerprint(found) != inventory.fingerprints.get(ref.uid):
            changed.append(f"{ref} changed")
    changed += [f"{name_of(extra)} not recorded" for extra in live.values()]
    return changed


def _fingerprints(objects: Iterable[Mapping[str, Any] | None]) -> dict[str, str]:
    """{uid: fingerprint} of the objects given (None and uid-less ones left out)."""
    found = {}
    for obj in objects:
        uid = (obj or {}).get("metadata", {}).get("uid") if obj else None
        if obj is not None and uid:
            found[str(uid)] = fingerprint(obj)
    return found


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


def _run_waves(objects: Sequence[dict[str, Any]], action: Any) -> None:
    with ThreadPoolExecutor(max_workers=APPLY_CONCURRENCY) as pool:
        for wave in apply_order(list(objects)):
            # list() re-raises the first failure of the wave, in render order.
            list(pool.map(action, wave))


# What a preview's diff says, as the change set's action.
WOULD_ACTION: dict[str, Action] = {
    "create": "created",
    "change": "configured",
    "unchanged": "unchanged",
    "prune": "pruned",
}


def _shown_order(obj: dict[str, Any]) -> tuple[int, str, str, str]:
    """The order objects are reported in: apply wave (prerequisites, Services, workloads),
    then kind and name, so a diff reads the same whatever order the render had."""
    group, kind, _, name = object_key(obj)
    return (wave_of(obj), kind, name, group)


def _applied_message(total: int, pruned: int, drift_count: int, drift: list[str]) -> str:
    message = f"applied {total}, pruned {pruned}, {drift_count} drifted"
    if drift_count:
        message += f" ({', '.join(drift[:NAMES_IN_MESSAGE])})"
    return message


def _log_object(spec: JobSpec, fields: dict[str, Any]) -> None:
    """One object's line: a preview's diff or an apply's outcome (`hooksync.diffs`)."""
    step = "preview" if spec.mode == "preview" else "apply"
    said = str(fields.get("would") or fields.get("outcome"))
    verb = f"would {said}" if said in ("create", "change", "prune") else said
    log.info(
        f"{verb} {fields['object']}",
        extra=logs.extra(
            step=step,
            target=spec.target,
            mode=spec.mode,
            job=os.environ.get("HOOKSYNC_JOB_NAME"),
            **fields,
        ),
    )


def _step(step: str, spec: JobSpec, **fields: Any) -> None:
    job = os.environ.get("HOOKSYNC_JOB_NAME")
    log.info(
        step, extra=logs.extra(step=step, target=spec.target, mode=spec.mode, job=job, **fields)
    )


__all__ = ["TransientError", "converge"]
