"""Job and CronJob names and manifests."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import pytest
from kubernetes.client import ApiClient

from hooksync import names
from hooksync.config import Config, Target
from hooksync.jobspec import DECRYPTION_KEYS_DIR, GIT_CREDENTIALS_DIR, JobSpec, parse_job_args
from hooksync.names import (
    dns_label,
    job_name,
    resync_cronjob_name,
    sync_job_name,
    waiting_job_name,
)
from hooksync.runsettings import HelmSettings
from hooksync.schedule import resolve
from receiver.dispatch.manifests import (
    build_job,
    build_resync_cronjob,
    build_sync_job,
    build_waiting_job,
)

SHA = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
OTHER_SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
THIRD_SHA = "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

SHOP = Target(
    name="shop",
    provider="github",
    repo="acme/shop",
    clone_url="https://github.com/acme/shop.git",
    branch="main",
    path="deploy/prod",
    namespace="shop",
    service_account="hooksync-shop",
    git_secret="hooksync-shop-git",
    resync="*/15 * * * *",
    timeout_seconds=600,
)
CONFIG = Config(
    job_image="ghcr.io/acme/hooksync-job:0.1.0",
    public_url="https://hooksync.example.com",
    targets=(SHOP,),
    namespace="hooksync",
    job_ttl_seconds=1800,
)


def is_label(name: str, limit: int = 63) -> bool:
    return len(name) <= limit and bool(DNS_LABEL.match(name))


def container(manifest: dict[str, Any]) -> dict[str, Any]:
    pod = manifest["spec"]["template"]["spec"]
    assert len(pod["containers"]) == 1
    result: dict[str, Any] = pod["containers"][0]
    return result


def round_trip(manifest: dict[str, Any], kind: str) -> dict[str, Any]:
    """The manifest as the Kubernetes client models read it: unknown fields would drop out."""
    api = ApiClient()
    # The public deserialize() changed signature between client releases; this one did not.
    model = api._ApiClient__deserialize(json.loads(json.dumps(manifest)), kind)  # type: ignore[attr-defined]
    result: dict[str, Any] = api.sanitize_for_serialization(model)
    return result


# Names


def test_job_name_reads_target_mode_and_short_sha() -> None:
    assert job_name("shop", "apply", SHA) == "hooksync-shop-apply-6113728"
    assert job_name("shop", "preview", OTHER_SHA) == "hooksync-shop-preview-ec26c3e"


def test_job_name_is_deterministic_and_differs_by_input() -> None:
    assert job_name("shop", "apply", SHA) == job_name("shop", "apply", SHA)
    names_seen = {
        job_name(t, m, s)
        for t in ("shop", "web")
        for m in ("apply", "preview")
        for s in (SHA, OTHER_SHA)
    }
    assert len(names_seen) == 8


@pytest.mark.parametrize("length", [1, 30, 44, 45, 46, 63, 200])
@pytest.mark.parametrize("mode", ["apply", "preview", "resync"])
def test_job_name_is_always_a_dns_label(length: int, mode: str) -> None:
    target = ("t" + "-x" * length)[:length]
    assert is_label(job_name(target, mode, SHA))


def test_long_job_name_is_cut_and_ends_in_a_hash_of_the_whole_name() -> None:
    target = "a" * 60
    name = job_name(target, "preview", SHA)
    assert len(name) == 63
    assert name.startswith("hooksync-aaaa")
    assert re.fullmatch(r".*-[0-9a-f]{8}", name)


def test_long_job_names_that_differ_past_the_cut_stay_distinct() -> None:
    base = "a" * 60
    assert job_name(base + "1", "apply", SHA) != job_name(base + "2", "apply", SHA)
    assert job_name(base, "apply", SHA) != job_name(base, "apply", OTHER_SHA)
    assert job_name(base, "apply", SHA) != job_name(base, "resync", SHA)


def test_longest_configurable_target_fits_without_cutting() -> None:
    target = "t" * 30  # hooksync.config.MAX_TARGET_NAME
    assert job_name(target, "preview", SHA) == f"hooksync-{target}-preview-6113728"
    assert waiting_job_name(target, job_name(target, "apply", SHA)).startswith(
        f"hooksync-{target}-apply-next-"
    )


@pytest.mark.parametrize(
    ("mode", "sha"), [("deploy", SHA), ("apply", "6113728"), ("apply", SHA.upper())]
)
def test_job_name_refuses_unknown_modes_and_short_shas(mode: str, sha: str) -> None:
    with pytest.raises(ValueError):
        job_name("shop", mode, sha)


def test_waiting_job_name_is_shared_by_racing_replicas_and_chains() -> None:
    active = job_name("shop", "apply", SHA)
    waiting = waiting_job_name("shop", active)
    assert waiting == waiting_job_name("shop", active)
    assert is_label(waiting)
    assert waiting.startswith("hooksync-shop-apply-next-")
    # Once the waiting Job runs, the next one waits behind it under a new name.
    following = waiting_job_name("shop", waiting)
    assert following not in (active, waiting)
    assert waiting_job_name("shop", job_name("shop", "apply", OTHER_SHA)) != waiting


@pytest.mark.parametrize("target", ["shop", "t" * 30, "t" * 50])
def test_resync_cronjob_name_leaves_room_for_the_controllers_suffix(target: str) -> None:
    name = resync_cronjob_name(target)
    assert is_label(name, 52)
    assert name.startswith("hooksync-resync-")


def test_dns_label_lowercases_and_replaces_other_characters() -> None:
    assert dns_label("HookSync_Shop.apply") == "hooksync-shop-apply"
    with pytest.raises(ValueError):
        dns_label("___")


# Jobs


def test_build_job_metadata() -> None:
    job = build_job(CONFIG, SHOP, "apply", SHA, "refs/heads/main", "d-1")
    assert job["apiVersion"] == "batch/v1"
    assert job["kind"] == "Job"
    assert job["metadata"] == {
        "name": "hooksync-shop-apply-6113728",
        "namespace": "hooksync",
        "labels": {
            "app.kubernetes.io/managed-by": "hooksync",
            "hooksync.dev/target": "shop",
            "hooksync.dev/mode": "apply",
        },
        "annotations": {
            names.SHA: SHA,
            names.REF: "refs/heads/main",
            names.DELIVERY: "d-1",
        },
        "finalizers": [names.STATUS_FINALIZER],
    }
    assert job["spec"]["template"]["metadata"]["labels"] == job["metadata"]["labels"]


def test_build_job_spec_policies() -> None:
    spec = build_job(CONFIG, SHOP, "apply", SHA, "refs/heads/main", "d-1")["spec"]
    assert spec["backoffLimit"] == 2
    assert spec["activeDeadlineSeconds"] == SHOP.timeout_seconds + 120
    assert spec["ttlSecondsAfterFinished"] == CONFIG.job_ttl_seconds
    assert spec["suspend"] is False
    assert spec["podFailurePolicy"]["rules"] == [
        {
            "action": "FailJob",
            "onExitCodes": {"containerName": "converge", "operator": "In", "values": [2]},
        },
        {
            "action": "Ignore",
            "onExitCodes": {"containerName": "converge", "operator": "In", "values": [3]},
        },
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
    ]


def test_build_job_pod() -> None:
    job = build_job(CONFIG, SHOP, "apply", SHA, "refs/heads/main", "d-1")
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == "hooksync-shop"
    assert pod["automountServiceAccountToken"] is True
    box = container(job)
    assert box["name"] == "converge"
    assert box["image"] == CONFIG.job_image
    assert box["command"] == ["hooksync-job"]
    assert box["terminationMessagePolicy"] == "FallbackToLogsOnError"
    env = {var["name"]: var for var in box["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    job_label = "metadata.labels['batch.kubernetes.io/job-name']"
    assert env["HOOKSYNC_JOB_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": job_label}}
    assert box["securityContext"] == {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert set(box["resources"]) == {"requests", "limits"}
    mounts = {m["mountPath"]: m["name"] for m in box["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/tmp"]] == {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}
    assert volumes[mounts[box["workingDir"]]]["emptyDir"] == {"sizeLimit": "64Mi"}
    # The container's disk covers both volumes and its logs; the request is within it.
    assert box["resources"]["limits"]["ephemeral-storage"] == "1152Mi"
    assert box["resources"]["requests"]["ephemeral-storage"] == "128Mi"


def test_apply_job_converges_the_branch_head_not_the_event_sha() -> None:
    job = build_job(CONFIG, SHOP, "apply", SHA, "refs/heads/main", "d-1")
    args = container(job)["args"]
    assert "--sha" not in args
    assert SHA not in args
    assert job["metadata"]["annotations"][names.SHA] == SHA
    assert parse_job_args(args) == JobSpec.for_target(
        SHOP, "apply", git_credentials=GIT_CREDENTIALS_DIR
    )


def test_a_targets_helm_block_reaches_the_job_in_its_args() -> None:
    helm = HelmSettings(chart="deploy/chart", values_files=("env/prod.yaml",), values_json="{}")
    charted = replace(SHOP, helm=helm)
    args = container(build_job(CONFIG, charted, "apply", SHA, "refs/heads/main", "d-3"))["args"]
    assert args[args.index("--helm-chart") + 1] == "deploy/chart"
    assert parse_job_args(args).helm == helm


def test_preview_job_checks_the_exact_head_sha() -> None:
    job = build_job(CONFIG, SHOP, "preview", OTHER_SHA, "refs/pull/7/head", "d-2", pr_number=7)
    args = container(job)["args"]
    assert parse_job_args(args) == JobSpec.for_target(
        SHOP, "preview", sha=OTHER_SHA, git_credentials=GIT_CREDENTIALS_DIR
    )
    assert job["metadata"]["name"] == "hooksync-shop-preview-ec26c3e"
    assert job["metadata"]["labels"][names.MODE] == "preview"
    assert job["metadata"]["annotations"][names.PULL_REQUEST] == "7"
    assert job["metadata"]["annotations"][names.REF] == "refs/pull/7/head"


def test_git_secret_is_mounted_read_only_where_the_job_looks() -> None:
    job = build_job(CONFIG, SHOP, "apply", SHA, "refs/heads/main", None)
    box = container(job)
    mount = next(m for m in box["volumeMounts"] if m["mountPath"] == GIT_CREDENTIALS_DIR)
    assert mount["readOnly"] is True
    volume = next(
        v for v in job["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]
    )
    assert volume["secret"]["secretName"] == "hooksync-shop-git"
    index = box["args"].index("--git-credentials")
    assert box["args"][index + 1] == GIT_CREDENTIALS_DIR


def test_without_git_secret_no_credentials_are_mounted_or_passed() -> None:
    job = build_job(CONFIG, replace(SHOP, git_secret=None), "apply", SHA, "refs/heads/main", None)
    box = container(job)
    assert "--git-credentials" not in box["args"]
    assert all(m["mountPath"] != GIT_CREDENTIALS_DIR for m in box["volumeMounts"])
    assert all("secret" not in v for v in job["spec"]["template"]["spec"]["volumes"])


def test_decryption_secret_is_mounted_read_only_and_tmp_is_memory_backed() -> None:
    sops = replace(SHOP, decryption_secret="hooksync-shop-age")
    job = build_job(CONFIG, sops, "apply", SHA, "refs/heads/main", None)
    box = container(job)
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    mount = next(m for m in box["volumeMounts"] if m["mountPath"] == DECRYPTION_KEYS_DIR)
    assert mount["readOnly"] is True
    # Optional: a missing Secret is the Job's exit 2 "no age key", not a pod stuck creating.
    assert volumes[mount["name"]]["secret"] == {
        "secretName": "hooksync-shop-age",
        "defaultMode": 0o440,
        "optional": True,
    }
    assert parse_job_args(box["args"]).decryption_keys == DECRYPTION_KEYS_DIR
    # Decrypted files live in the checkout on /tmp: tmpfs, counted as memory, not disk.
    tmp = next(m["name"] for m in box["volumeMounts"] if m["mountPath"] == "/tmp")
    assert volumes[tmp]["emptyDir"] == {"sizeLimit": "1Gi", "medium": "Memory"}
    assert box["resources"]["limits"]["memory"] == "1536Mi"
    assert box["resources"]["limits"]["ephemeral-storage"] == "128Mi"


def test_without_decryption_nothing_is_mounted_and_tmp_is_on_disk() -> None:
    job = build_job(CONFIG, SHOP, "apply", SHA, "refs/heads/main", None)
    box = container(job)
    assert "--decryption-keys" not in box["args"]
    assert all(m["mountPath"] != DECRYPTION_KEYS_DIR for m in box["volumeMounts"])
    assert box["resources"]["limits"]["memory"] == "512Mi"


def test_optional_annotations_appear_only_when_given() -> None:
    job = build_job(CONFIG, SHOP, "apply", SHA, "refs/heads/main", None)
    assert set(job["metadata"]["annotations"]) == {names.SHA, names.REF}


def test_coalesced_shas_are_listed_once_without_the_main_sha() -> None:
    job = build_job(
        CONFIG, SHOP, "apply", SHA, "refs/heads/main", "d-1",
        coalesced_shas=(OTHER_SHA, SHA, THIRD_SHA, OTHER_SHA),
    )  # fmt: skip
    assert job["metadata"]["annotations"][names.COALESCED_SHAS] == f"{OTHER_SHA},{THIRD_SHA}"


def test_build_job_refuses_bad_coalesced_shas() -> None:
    with pytest.raises(ValueError):
        build_job(CONFIG, SHOP, "apply", SHA, "refs/heads/main", None, coalesced_shas=["abc"])


def test_suspended_job() -> None:
    job = build_job(CONFIG, SHOP, "apply", SHA, "refs/heads/main", None, suspend=True)
    assert job["spec"]["suspend"] is True


def test_namespace_is_left_to_the_receiver_when_not_configured() -> None:
    job = build_job(replace(CONFIG, namespace=None), SHOP, "apply", SHA, "refs/heads/main", None)
    assert "namespace" not in job["metadata"]


def test_waiting_job_is_suspended_and_names_what_it_waits_for() -> None:
    active = job_name("shop", "apply", SHA)
    job = build_waiting_job(
        CONFIG, SHOP, active, OTHER_SHA, "refs/heads/main", "d-3", coalesced_shas=[THIRD_SHA],
        pushed_at=1735689660.25,
    )  # fmt: skip
    assert job["metadata"]["name"] == waiting_job_name("shop", active)
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["labels"][names.MODE] == "apply"
    annotations = job["metadata"]["annotations"]
    assert annotations[names.WAITS_FOR] == active
    assert annotations[names.SHA] == OTHER_SHA
    assert annotations[names.COALESCED_SHAS] == THIRD_SHA
    assert annotations[names.LAST_PUSH] == "2025-01-01T00:01:00.250Z"
    assert "--sha" not in container(job)["args"]


@pytest.mark.parametrize("mode", ["apply", "preview", "resync"])
def test_job_manifest_uses_only_real_kubernetes_fields(mode: str) -> None:
    job = build_job(CONFIG, SHOP, mode, SHA, "refs/heads/main", "d-1", pr_number=1)
    assert round_trip(job, "V1Job") == job


# CronJob


def test_resync_cronjob() -> None:
    cronjob = build_resync_cronjob(CONFIG, SHOP)
    assert cronjob["apiVersion"] == "batch/v1"
    assert cronjob["kind"] == "CronJob"
    assert cronjob["metadata"]["name"] == "hooksync-resync-shop"
    assert cronjob["metadata"]["namespace"] == "hooksync"
    labels = {names.MANAGED_BY: "hooksync", names.TARGET: "shop", names.MODE: "resync"}
    assert cronjob["metadata"]["labels"] == labels
    spec = cronjob["spec"]
    assert spec["schedule"] == SHOP.resync
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] > 0
    assert 0 < spec["successfulJobsHistoryLimit"] <= 3
    assert 0 < spec["failedJobsHistoryLimit"] <= 3
    template = spec["jobTemplate"]
    assert template["metadata"]["labels"] == labels
    assert template["spec"]["template"]["metadata"]["labels"] == labels
    assert template["spec"]["activeDeadlineSeconds"] == SHOP.timeout_seconds + 120
    args = template["spec"]["template"]["spec"]["containers"][0]["args"]
    assert parse_job_args(args) == JobSpec.for_target(
        SHOP, "resync", git_credentials=GIT_CREDENTIALS_DIR
    )


def test_resync_cronjob_uses_only_real_kubernetes_fields() -> None:
    cronjob = build_resync_cronjob(CONFIG, SHOP)
    assert round_trip(cronjob, "V1CronJob") == cronjob


def test_a_spread_resync_gets_the_targets_own_standard_schedule() -> None:
    """The CronJob controller reads no `~15m` or `H`: it gets the expression resolved for the
    target's name, the same on every replica and restart, and another for another name."""
    shop = replace(SHOP, resync="~15m")
    assert build_resync_cronjob(CONFIG, shop)["spec"]["schedule"] == "1,16,31,46 * * * *"
    cart = replace(SHOP, name="cart", resync="~15m")
    other = build_resync_cronjob(CONFIG, cart)["spec"]["schedule"]
    assert other != "1,16,31,46 * * * *"
    assert other == resolve("~15m", "cart")


def test_resync_cronjob_needs_a_schedule() -> None:
    with pytest.raises(ValueError, match="no resync schedule"):
        build_resync_cronjob(CONFIG, replace(SHOP, resync=""))


def test_a_suspended_target_has_a_suspended_cronjob() -> None:
    assert build_resync_cronjob(CONFIG, SHOP)["spec"]["suspend"] is False
    assert build_resync_cronjob(CONFIG, replace(SHOP, suspend=True))["spec"]["suspend"] is True


def test_sync_job_is_the_cronjobs_job_named_by_the_minute() -> None:
    now = 1_760_000_000.0  # 29333333 minutes and 20 seconds since the epoch
    job = build_sync_job(CONFIG, SHOP, now)
    assert job["kind"] == "Job" and job["apiVersion"] == "batch/v1"
    assert job["metadata"]["name"] == "hooksync-shop-sync-29333333"
    assert job["metadata"]["namespace"] == "hooksync"
    template = build_resync_cronjob(CONFIG, SHOP)["spec"]["jobTemplate"]
    assert job["metadata"]["labels"] == template["metadata"]["labels"]
    assert job["metadata"]["annotations"] == template["metadata"]["annotations"]
    assert job["spec"] == template["spec"]
    assert round_trip(job, "V1Job") == job
    # The same minute names the same Job; the next minute another.
    assert sync_job_name("shop", now + 39) == job["metadata"]["name"]
    assert sync_job_name("shop", now + 40) == "hooksync-shop-sync-29333334"
    longest = "t" * 30
    assert is_label(sync_job_name(longest, now)) and longest in sync_job_name(longest, now)
