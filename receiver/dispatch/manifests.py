"""Job and CronJob manifests for one target, as plain dicts, named by hooksync.names.

Pure: the deterministic names are what make dispatch idempotent (two replicas or a
redelivery that race create one object), so they depend only on their inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from hooksync import names
from hooksync.config import Config, Target
from hooksync.jobspec import (
    DECRYPTION_KEYS_DIR,
    EXIT_LEASE_HELD,
    EXIT_PERMANENT,
    GIT_CREDENTIALS_DIR,
    JobSpec,
)
from hooksync.names import job_name, resync_cronjob_name, sync_job_name, waiting_job_name
from hooksync.refs import is_valid_sha
from hooksync.times import rfc3339

CONTAINER_NAME: Final = "converge"
JOB_COMMAND: Final = "hooksync-job"
# Time for fetch, lease and cleanup around the converge's own timeout.
ACTIVE_DEADLINE_MARGIN_SECONDS: Final = 120
BACKOFF_LIMIT: Final = 2
RESYNC_STARTING_DEADLINE_SECONDS: Final = 300

TMP_DIR: Final = "/tmp"  # noqa: S108 - an emptyDir mounted in the Job's own pod
WORKSPACE_DIR: Final = "/workspace"
# A fixed non-root uid so runAsNonRoot holds whatever USER the image names.
RUN_AS_ID: Final = 65532

RESOURCES: Final = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"cpu": "1", "memory": "512Mi"},
}
# Disk: /tmp holds the checkout and is sized by the configuration's jobDiskLimit; /workspace is
# only the working directory. The container's ephemeral-storage limit covers both and its logs,
# so the kubelet evicts a runaway Job before it fills the node.
WORKSPACE_SIZE_LIMIT_MI: Final = 64
LOGS_MARGIN_MI: Final = 64
EPHEMERAL_STORAGE_REQUEST: Final = "128Mi"
# With SOPS decryption the checkout holds plaintext, so /tmp is memory-backed (tmpfs, never on
# the node's disk) and sized by jobDiskLimit; that memory counts against the container's
# memory limit, which grows by as much, and no longer against its ephemeral storage.


def build_job(
    config: Config,
    target: Target,
    mode: names.Mode,
    sha: str,
    ref: str,
    delivery_id: str | None,
    pr_number: int | None = None,
    suspend: bool = False,
    coalesced_shas: Sequence[str] = (),
    name: str | None = None,
) -> dict[str, Any]:
    """A batch/v1 Job that runs `hooksync-job {mode}` for `target`, named by `job_name`
    unless `name` says otherwise.

    Only a preview passes `sha` to the container: apply and resync converge the branch head
    as fetched when they run, so an old event cannot roll a namespace back; `sha` then only
    goes into an annotation, for status reporting. `metadata.namespace` is left out when the
    configuration names none: the Job goes to the receiver's own namespace.
    """
    return _job(
        config,
        target,
        mode,
        sha,
        ref,
        delivery_id,
        name=name or job_name(target.name, mode, sha),
        pr_number=pr_number,
        suspend=suspend,
        coalesced_shas=coalesced_shas,
        waits_for=None,
    )


def build_waiting_job(
    config: Config,
    target: Target,
    active_job: str,
    sha: str,
    ref: str,
    delivery_id: str | None,
    coalesced_shas: Sequence[str] = (),
    pushed_at: float | None = None,
) -> dict[str, Any]:
    """The suspended apply Job that waits behind `active_job`; see `waiting_job_name`.

    `pushed_at` (seconds since the epoch) starts its burst window: it is released only once
    pushes have paused (see `coalescing.BurstWindow`).
    """
    job = _job(
        config,
        target,
        "apply",
        sha,
        ref,
        delivery_id,
        name=waiting_job_name(target.name, active_job),
        pr_number=None,
        suspend=True,
        coalesced_shas=coalesced_shas,
        waits_for=active_job,
    )
    if pushed_at is not None:
        job["metadata"]["annotations"][names.LAST_PUSH] = rfc3339(pushed_at, milliseconds=True)
    return job


def build_resync_cronjob(config: Config, target: Target) -> dict[str, Any]:
    """A batch/v1 CronJob that runs a resync Job for `target` on `target.resync`.

    It carries the managed-by and target labels, so the receiver's reconciler can find it and
    delete it when the target leaves the configuration, and is suspended while the target is.
    Raises ValueError for a target with no schedule.
    """
    if not target.resync:
        raise ValueError(f"target {target.name!r} has no resync schedule; it needs no CronJob")
    labels = _labels(target, "resync")
    metadata: dict[str, Any] = {"name": resync_cronjob_name(target.name), "labels": labels}
    if config.namespace:
        metadata["namespace"] = config.namespace
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": metadata,
        "spec": {
            # A spread form (~15m, H/15 ...) resolved to this target's own minutes.
            "schedule": target.resync_schedule,
            "timeZone": "Etc/UTC",
            "suspend": target.suspend,
            # A resync that is still running makes the next one pointless.
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": RESYNC_STARTING_DEADLINE_SECONDS,
            "successfulJobsHistoryLimit": 1,
            "failedJobsHistoryLimit": 2,
            "jobTemplate": _resync_template(config, target),
        },
    }


def build_sync_job(config: Config, target: Target, now: float) -> dict[str, Any]:
    """The resync Job a "sync now" starts at `now` (seconds since the epoch), named by
    `sync_job_name`: the same Job the resync CronJob would start, so it is reported alike."""
    template = _resync_template(config, target)
    metadata: dict[str, Any] = {"name": sync_job_name(target.name, now), **template["metadata"]}
    if config.namespace:
        metadata["namespace"] = config.namespace
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": template["spec"]}


def _resync_template(config: Config, target: Target) -> dict[str, Any]:
    """What every resync Job of `target` is, from its CronJob or from a "sync now"."""
    return {
        "metadata": {
            "labels": _labels(target, "resync"),
            "annotations": {names.REF: f"refs/heads/{target.branch}"},
        },
        "spec": _job_spec(config, target, "resync", sha=None, suspend=None),
    }


def _job(
    config: Config,
    target: Target,
    mode: names.Mode,
    sha: str,
    ref: str,
    delivery_id: str | None,
    *,
    name: str,
    pr_number: int | None,
    suspend: bool,
    coalesced_shas: Sequence[str],
    waits_for: str | None,
) -> dict[str, Any]:
    _check_mode(mode)
    _check_sha(sha)
    annotations = {names.SHA: sha, names.REF: ref}
    folded = list(dict.fromkeys(s for s in coalesced_shas if s != sha))
    for coalesced in folded:
        _check_sha(coalesced)
    if folded:
        annotations[names.COALESCED_SHAS] = ",".join(folded)
    if delivery_id:
        annotations[names.DELIVERY] = delivery_id
    if pr_number is not None:
        annotations[names.PULL_REQUEST] = str(pr_number)
    if waits_for:
        annotations[names.WAITS_FOR] = waits_for
    metadata: dict[str, Any] = {
        "name": name,
        "labels": _labels(target, mode),
        "annotations": annotations,
        # Keeps the Job (and the SHAs on it) until its final commit status has been posted,
        # even if the TTL controller deletes it while the Git host is down.
        "finalizers": [names.STATUS_FINALIZER],
    }
    if config.namespace:
        metadata["namespace"] = config.namespace
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": _job_spec(
            config, target, mode, sha=sha if mode == "preview" else None, suspend=suspend
        ),
    }


def _job_spec(
    config: Config, target: Target, mode: names.Mode, *, sha: str | None, suspend: bool | None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "backoffLimit": BACKOFF_LIMIT,
        "podFailurePolicy": {
            "rules": [
                # Exit 2 is permanent (bad manifests, forbidden kind): retrying cannot help.
                {
                    "action": "FailJob",
                    "onExitCodes": {
                        "containerName": CONTAINER_NAME,
                        "operator": "In",
                        "values": [EXIT_PERMANENT],
                    },
                },
                # Exit 3: the target's Lease stayed held (another converge runs); try again
                # without using up the retries meant for real failures.
                {
                    "action": "Ignore",
                    "onExitCodes": {
                        "containerName": CONTAINER_NAME,
                        "operator": "In",
                        "values": [EXIT_LEASE_HELD],
                    },
                },
                # An evicted or preempted pod is not the converge's fault; do not count it.
                {
                    "action": "Ignore",
                    "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                },
            ]
        },
        "activeDeadlineSeconds": target.timeout_seconds + ACTIVE_DEADLINE_MARGIN_SECONDS,
        "ttlSecondsAfterFinished": config.job_ttl_seconds,
        "template": {
            "metadata": {"labels": _labels(target, mode)},
            "spec": _pod_spec(config, target, mode, sha),
        },
    }
    if suspend is not None:
        spec["suspend"] = suspend
    return spec


def _pod_spec(config: Config, target: Target, mode: names.Mode, sha: str | None) -> dict[str, Any]:
    credentials = GIT_CREDENTIALS_DIR if target.git_secret else None
    keys = DECRYPTION_KEYS_DIR if target.decryption_secret else None
    args = JobSpec.for_target(
        target, mode, sha=sha, git_credentials=credentials, decryption_keys=keys
    ).to_args()
    mounts: list[dict[str, Any]] = [
        {"name": "tmp", "mountPath": TMP_DIR},
        {"name": "workspace", "mountPath": WORKSPACE_DIR},
    ]
    tmp: dict[str, Any] = {"sizeLimit": config.job_disk_limit}
    if target.decryption_secret:
        tmp["medium"] = "Memory"
    volumes: list[dict[str, Any]] = [
        {"name": "tmp", "emptyDir": tmp},
        {"name": "workspace", "emptyDir": {"sizeLimit": f"{WORKSPACE_SIZE_LIMIT_MI}Mi"}},
    ]
    if target.git_secret:
        mounts.append(
            {"name": "git-credentials", "mountPath": GIT_CREDENTIALS_DIR, "readOnly": True}
        )
        # 0440 with fsGroup: readable by the Job's group, not by other users on the node.
        volumes.append(
            {
                "name": "git-credentials",
                "secret": {"secretName": target.git_secret, "defaultMode": 0o440},
            }
        )
    if target.decryption_secret:
        mounts.append({"name": "decryption", "mountPath": DECRYPTION_KEYS_DIR, "readOnly": True})
        # Optional: without the Secret the pod still starts, and the Job says exit 2 "no age
        # key" on the commit, rather than a pod stuck creating with no status at all.
        volumes.append(
            {
                "name": "decryption",
                "secret": {
                    "secretName": target.decryption_secret,
                    "defaultMode": 0o440,
                    "optional": True,
                },
            }
        )
    container = {
        "name": CONTAINER_NAME,
        "image": config.job_image,
        "imagePullPolicy": "IfNotPresent",
        # Set explicitly: the Job records exactly what ran, whatever the image's entrypoint.
        "command": [JOB_COMMAND],
        "args": args,
        "workingDir": WORKSPACE_DIR,
        "env": [
            _field_env("POD_NAME", "metadata.name"),
            _field_env("POD_NAMESPACE", "metadata.namespace"),
            # The Job controller labels its pods with the Job's name; logs carry it.
            _field_env("HOOKSYNC_JOB_NAME", "metadata.labels['batch.kubernetes.io/job-name']"),
            # The root filesystem is read-only; Git wants a writable home.
            {"name": "HOME", "value": TMP_DIR},
            {"name": "TMPDIR", "value": TMP_DIR},
        ],
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "resources": _resources(config.job_disk_limit, in_memory=bool(target.decryption_secret)),
        "volumeMounts": mounts,
    }
    return {
        "restartPolicy": "Never",
        "serviceAccountName": target.service_account,
        # The Job talks to the API server as the target's ServiceAccount; it needs the token.
        "automountServiceAccountToken": True,
        # Service environment variables are noise to the converge and leak topology.
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_ID,
            "runAsGroup": RUN_AS_ID,
            "fsGroup": RUN_AS_ID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes,
    }


def _resources(disk_limit: str, in_memory: bool = False) -> dict[str, dict[str, str]]:
    """CPU and memory from RESOURCES; ephemeral storage for /tmp, /workspace and the logs.

    With `in_memory` (/tmp on tmpfs, for decrypted files) /tmp's size counts as memory instead.
    """
    resources = {kind: dict(values) for kind, values in RESOURCES.items()}
    storage = WORKSPACE_SIZE_LIMIT_MI + LOGS_MARGIN_MI
    if in_memory:
        memory = _mebibytes(resources["limits"]["memory"]) + _mebibytes(disk_limit)
        resources["limits"]["memory"] = f"{memory}Mi"
    else:
        storage += _mebibytes(disk_limit)
    resources["requests"]["ephemeral-storage"] = EPHEMERAL_STORAGE_REQUEST
    resources["limits"]["ephemeral-storage"] = f"{storage}Mi"
    return resources


def _mebibytes(quantity: str) -> int:
    """512Mi -> 512, 2Gi -> 2048 (the configuration allows only Mi and Gi)."""
    number, unit = int(quantity[:-2]), quantity[-2:]
    return number * 1024 if unit == "Gi" else number


def _labels(target: Target, mode: names.Mode) -> dict[str, str]:
    return {
        names.MANAGED_BY: names.MANAGED_BY_VALUE,
        names.TARGET: target.name,
        names.MODE: mode,
    }


def _field_env(name: str, field_path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": field_path}}}


def _check_mode(mode: str) -> None:
    if mode not in names.MODES:
        raise ValueError(f"mode {mode!r} is not one of {', '.join(names.MODES)}")


def _check_sha(sha: str) -> None:
    if not is_valid_sha(sha):
        raise ValueError(f"{sha!r} is not a full commit SHA")
