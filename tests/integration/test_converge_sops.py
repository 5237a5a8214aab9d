"""Converge SOPS-encrypted files: a Secret and a generated Secret reach the cluster decrypted;
a wrong key, a tampered file, a missing key and a target without decryption fail with exit 2,
the file named, and the canary value on no surface a person could see.

Each test encrypts a fresh canary with the pinned sops for a fresh age key (`world.sops`) and
runs `hooksync-job` the way a Job does (`world.converge.Target`), with the key folder the Job
would mount from the target's decryption Secret, and a TMPDIR of its own (the Job's /tmp).
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from hooksync import names
from hooksync.jobspec import EXIT_OK, EXIT_PERMANENT
from hooksync.summary import RunSummary
from receiver.pages.run import page
from receiver.reporting.statuses import final_reports
from world.converge import PATH_IN_REPO, Run, Target
from world.manifests import configmap
from world.sops import AgeKey, SopsTools, sops_tools

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def sops() -> SopsTools:
    return sops_tools()


@pytest.fixture
def key(sops: SopsTools) -> AgeKey:
    return sops.new_key()


@pytest.fixture
def job_tmp(tmp_path: Path) -> Path:
    """The Job's /tmp: the checkout, and every plaintext, live below it while it runs."""
    folder = tmp_path / "job-tmp"
    folder.mkdir()
    return folder


def canary() -> str:
    return f"canary-{secrets.token_hex(12)}"


def secret_manifest(name: str, value: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name},
            "type": "Opaque",
            "stringData": {"password": value},
        }
    )


def key_folder(tmp_path: Path, *keys: AgeKey) -> Path:
    """What the Job sees where the decryption Secret is mounted: one file per key."""
    folder = tmp_path / "decryption"
    folder.mkdir(exist_ok=True)
    for index, key in enumerate(keys):
        (folder / f"key{index}.agekey").write_text(key.identity)
    return folder


def run_with_keys(target: Target, folder: Path | None, sops: SopsTools, job_tmp: Path) -> Run:
    target.env |= {"HOOKSYNC_SOPS": str(sops.sops), "TMPDIR": str(job_tmp)}
    extra = ["--decryption-keys", str(folder)] if folder is not None else []
    return target.run("apply", *extra)


def secret_value(kube: client.ApiClient, namespace: str, name: str, key: str) -> str:
    secret = client.CoreV1Api(kube).read_namespaced_secret(name, namespace)
    return base64.b64decode(secret.data[key]).decode()


def secret_names(kube: client.ApiClient, namespace: str) -> set[str]:
    listed = client.CoreV1Api(kube).list_namespaced_secret(namespace).items
    return {str(secret.metadata.name) for secret in listed}


def surfaces(run: Run, target: Target, job_tmp: Path) -> Iterator[tuple[str, str]]:
    """Everything a person could read about the run: the Job's output (log lines and the
    summary, which is also its termination message), the statuses the receiver would post,
    its run page, and whatever is left in the Job's /tmp."""
    yield "stdout", run.stdout
    yield "stderr", run.stderr
    summary = RunSummary.from_json(run.stdout.strip().splitlines()[-1])
    assert summary is not None, run.explain()
    yield "termination message", summary.to_json()
    job: dict[str, Any] = {
        "metadata": {
            "name": f"hooksync-{target.name}-apply-0000000",
            "labels": {names.TARGET: target.name, names.MODE: "apply"},
            "annotations": {names.SHA: summary.sha or "0" * 40},
        },
        "status": {},
    }
    for report in final_reports(job, summary, None):
        yield "status", report.description
    yield "run page", page(job, summary, run.stdout + run.stderr)
    for file in job_tmp.rglob("*"):
        if file.is_file():
            yield f"file {file}", file.read_bytes().decode(errors="replace")


def assert_nowhere(value: str, run: Run, target: Target, job_tmp: Path) -> None:
    encoded = base64.b64encode(value.encode()).decode()
    for surface, text in surfaces(run, target, job_tmp):
        assert value not in text and encoded not in text, f"{value} leaked into {surface}"


def test_encrypted_secret_and_generated_secret_are_applied_decrypted(
    kube: client.ApiClient,
    target: Target,
    sops: SopsTools,
    key: AgeKey,
    tmp_path: Path,
    job_tmp: Path,
) -> None:
    password, token = canary(), canary()
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["secret.yaml", "settings.yaml"],
        "secretGenerator": [{"name": "api", "envs": ["api.env"]}],
        "generatorOptions": {"disableNameSuffixHash": True},
    }
    secret = sops.encrypt("secret.yaml", secret_manifest("db", password), key.recipient)
    env = sops.encrypt("api.env", f"TOKEN={token}\n", key.recipient, encrypted_regex=None)
    assert password not in secret and token not in env and "ENC[" in secret
    target.repo.commit(
        {
            f"{PATH_IN_REPO}/kustomization.yaml": yaml.safe_dump(kustomization),
            f"{PATH_IN_REPO}/secret.yaml": secret,
            f"{PATH_IN_REPO}/api.env": env,
            f"{PATH_IN_REPO}/settings.yaml": configmap("settings", {"colour": "blue"}),
        },
        "encrypted secrets",
    )

    run = run_with_keys(target, key_folder(tmp_path, key), sops, job_tmp)

    assert run.code == EXIT_OK, run.explain()
    assert secret_value(kube, target.namespace, "db", "password") == password
    assert secret_value(kube, target.namespace, "api", "TOKEN") == token
    logged = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]
    decrypted = next(entry for entry in logged if entry.get("step") == "decrypt")
    assert decrypted["names"] == [f"{PATH_IN_REPO}/api.env", f"{PATH_IN_REPO}/secret.yaml"]
    for value in (password, token):
        assert_nowhere(value, run, target, job_tmp)


def tampered(encrypted: str) -> str:
    """The file edited by hand after encryption: an unencrypted value changed, so sops' MAC
    (over every value) no longer matches."""
    assert "name: db" in encrypted
    return encrypted.replace("name: db", "name: dbx", 1)


@pytest.mark.parametrize("fault", ["wrong key", "tampered", "missing key", "no decryption"])
def test_undecryptable_file_fails_permanently_naming_it_and_leaks_nothing(
    kube: client.ApiClient,
    target: Target,
    sops: SopsTools,
    key: AgeKey,
    tmp_path: Path,
    job_tmp: Path,
    fault: str,
) -> None:
    # The first file decrypts, so its plaintext was on the Job's /tmp when the second failed.
    good, bad = canary(), canary()
    broken = sops.encrypt("b.yaml", secret_manifest("db", bad), key.recipient)
    folder: Path | None = key_folder(tmp_path, key)
    if fault == "wrong key":
        broken = sops.encrypt("b.yaml", secret_manifest("db", bad), sops.new_key().recipient)
    elif fault == "tampered":
        broken = tampered(broken)
    elif fault == "missing key":
        assert folder is not None
        for file in folder.iterdir():
            file.unlink()  # an empty folder: what the Job sees when the Secret is missing
    elif fault == "no decryption":
        folder = None
    target.repo.commit(
        {
            f"{PATH_IN_REPO}/a.yaml": sops.encrypt(
                "a.yaml", secret_manifest("first", good), key.recipient
            ),
            f"{PATH_IN_REPO}/b.yaml": broken,
        },
        fault,
    )

    run = run_with_keys(target, folder, sops, job_tmp)

    assert run.code == EXIT_PERMANENT, run.explain()
    assert run.result == "failure" and run.summary["failed_step"] == "decrypt"
    message = run.summary["message"]
    expected = {
        "wrong key": (f"{PATH_IN_REPO}/b.yaml", "none of the target's age keys"),
        "tampered": (f"{PATH_IN_REPO}/b.yaml", "MAC mismatch"),
        "missing key": (f"{PATH_IN_REPO}/a.yaml", "no age key"),
        "no decryption": (f"{PATH_IN_REPO}/a.yaml", "no decryption"),
    }[fault]
    assert all(part in message for part in expected), message
    assert "\n" not in message and "AGE-SECRET-KEY" not in message
    assert secret_names(kube, target.namespace) & {"first", "db"} == set()
    for value in (good, bad, key.identity.strip().splitlines()[-1]):
        assert_nowhere(value, run, target, job_tmp)
