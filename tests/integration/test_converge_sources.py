"""Converge from its sources: kustomize's generated names, and clear permanent failures for a
missing branch or a wrong Git token.

Each test runs `hooksync-job` the way a Job does (`world.converge.Target`: a subprocess as
the target's ServiceAccount, fetching over token-protected HTTP; or a real Job under the
process kubelet) and asserts what it leaves behind: objects, resourceVersions, the
inventory, the summary and the exit code. Fixtures (`target`, `git`, `rollouts`,
`other_namespace`) are in conftest.py.
"""

from __future__ import annotations

import base64
import secrets
import subprocess
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from hooksync.jobspec import EXIT_OK, EXIT_PERMANENT
from world.converge import (
    GIT_TOKEN,
    PATH_IN_REPO,
    Target,
    configmap_data,
    inventory_key,
    live_objects,
)
from world.manifests import service, shop_files

pytestmark = pytest.mark.cluster


def test_kustomization_is_applied_with_the_names_kustomize_generates(
    kube: client.ApiClient, target: Target, tmp_path: Path
) -> None:
    files: dict[str, str | bytes | None] = {
        f"{PATH_IN_REPO}/kustomization.yaml": yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "namePrefix": "shop-",
                "resources": ["service.yaml"],
                "configMapGenerator": [{"name": "settings", "literals": ["colour=blue"]}],
            }
        ),
        f"{PATH_IN_REPO}/service.yaml": service("web"),
    }
    sha = target.repo.commit(files, "kustomize")
    # What kustomize itself makes of the same files: the names to expect.
    for path, content in files.items():
        (tmp_path / "k" / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "k" / path).write_text(str(content))
    built = subprocess.run(
        [str(target.bin_dir / "kustomize"), "build", str(tmp_path / "k" / PATH_IN_REPO)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    expected = {(doc["kind"], doc["metadata"]["name"]) for doc in yaml.safe_load_all(built.stdout)}
    generated = [name for kind, name in expected if kind == "ConfigMap"]
    assert len(generated) == 1 and generated[0].startswith("shop-settings-")

    run = target.run()
    assert run.code == EXIT_OK, run.explain()
    assert run.summary["sha"] == sha and run.counts["created"] == 2
    live = live_objects(kube, target.namespace).names() - {inventory_key(target)}
    assert live == expected
    assert configmap_data(kube, target.namespace, generated[0]) == {"colour": "blue"}


def test_missing_branch_fails_permanently_with_a_clear_message(
    kube: client.ApiClient, target: Target
) -> None:
    target.repo.commit(shop_files(), "first")
    run = target.run(branch="no-such-branch")
    assert run.code == EXIT_PERMANENT, run.explain()
    assert run.result == "failure"
    assert "branch 'no-such-branch' not found" in run.summary["message"]
    assert live_objects(kube, target.namespace).names() == set()


def test_wrong_token_fails_permanently_and_never_shows_the_token(
    kube: client.ApiClient, target: Target
) -> None:
    target.repo.commit(shop_files(), "first")
    wrong = f"wrong-{secrets.token_hex(12)}"
    run = target.run(token=wrong)
    assert run.code == EXIT_PERMANENT, run.explain()
    assert run.result == "failure"
    assert "authentication" in run.summary["message"].lower()
    encoded = base64.b64encode(f"x-access-token:{wrong}".encode()).decode()
    for secret in (wrong, encoded, GIT_TOKEN):
        assert secret not in run.stdout and secret not in run.stderr
    assert live_objects(kube, target.namespace).names() == set()
