"""Converge Helm charts: rendered in the Job with the pinned helm, applied, pruned; the hooks
policy; kustomize's helmCharts; and what is refused (values or symlinks out of the checkout, a
dependency not vendored).

Each test runs `hooksync-job` as a Job does (`world.converge.Target`) against a chart committed
to a token-protected Git server, and asserts what the namespace holds afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest
from kubernetes import client

from hooksync.jobspec import EXIT_OK, EXIT_PERMANENT
from world.converge import PATH_IN_REPO, Target, configmap_data, live_objects

pytestmark = pytest.mark.cluster

REPO_ROOT = Path(__file__).resolve().parents[2]

CHART = """\
apiVersion: v2
name: web
version: 0.1.0
dependencies:
- name: cache
  version: 0.1.0
"""
VALUES = "greeting: hello\nextra: false\n"
SETTINGS = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-settings
data:
  greeting: {{ .Values.greeting | quote }}
  namespace: {{ .Release.Namespace | quote }}
"""
EXTRA = """\
{{- if .Values.extra }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-extra
data: {}
{{- end }}
"""
SMOKE_TEST = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-smoke
  annotations:
    helm.sh/hook: test
"""
MIGRATE_HOOK = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-migrate
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-weight: "-5"
"""
CACHE_CHART = "apiVersion: v2\nname: cache\nversion: 0.1.0\n"
CACHE_VALUES = "size: small\n"
CACHE_CONFIG = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-cache
data:
  size: {{ .Values.size | quote }}
"""


def web_chart(at: str = PATH_IN_REPO) -> dict[str, str | bytes | None]:
    """The chart `web` at `at`, its subchart `cache` vendored in charts/, and a test hook."""
    return {
        f"{at}/Chart.yaml": CHART,
        f"{at}/values.yaml": VALUES,
        f"{at}/templates/settings.yaml": SETTINGS,
        f"{at}/templates/extra.yaml": EXTRA,
        f"{at}/templates/tests/smoke.yaml": SMOKE_TEST,
        f"{at}/charts/cache/Chart.yaml": CACHE_CHART,
        f"{at}/charts/cache/values.yaml": CACHE_VALUES,
        f"{at}/charts/cache/templates/cache.yaml": CACHE_CONFIG,
    }


@pytest.fixture(scope="module")
def helm() -> str:
    """The pinned helm: $HOOKSYNC_HELM (as make sets it), else built into the cache now."""
    binary = os.environ.get("HOOKSYNC_HELM")
    if not binary:
        folder = subprocess.run(
            [str(REPO_ROOT / "hack" / "build-binaries"), "helm"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        binary = str(Path(folder) / "helm")
    assert os.access(binary, os.X_OK), f"{binary} is not an executable helm"
    return binary


@pytest.fixture
def charted(target: Target, helm: str) -> Target:
    """The converge target, with the pinned helm in its Job's environment."""
    target.env["HOOKSYNC_HELM"] = helm
    return target


def configmaps(kube: client.ApiClient, target: Target) -> set[str]:
    names = {name for kind, name in live_objects(kube, target.namespace).names()}
    return {name for name in names if not name.startswith("hooksync-")}


def helm_args(values: Mapping[str, object] | None = None, *files: str) -> list[str]:
    args = ["--helm-chart", PATH_IN_REPO]
    for file in files:
        args += ["--helm-values-file", file]
    if values:
        args += ["--helm-values", json.dumps(values)]
    return args


def test_chart_with_values_files_and_a_vendored_subchart_is_applied_then_pruned(
    kube: client.ApiClient, charted: Target
) -> None:
    name = charted.name
    charted.repo.commit(web_chart(), "the chart")

    # A path holding Chart.yaml: rendered with the chart's own values, test hooks left out.
    first = charted.run()
    assert first.code == EXIT_OK, first.explain()
    assert configmaps(kube, charted) == {f"{name}-settings", f"{name}-cache"}
    settings = configmap_data(kube, charted.namespace, f"{name}-settings")
    assert settings == {"greeting": "hello", "namespace": charted.namespace}
    assert configmap_data(kube, charted.namespace, f"{name}-cache") == {"size": "small"}

    # The helm: block: a values file from the repository, then inline values (which win, and
    # reach the subchart under its name).
    charted.repo.commit({"env/prod.yaml": "greeting: from-prod\nextra: true\n"}, "prod values")
    second = charted.run("apply", *helm_args({"cache": {"size": "large"}}, "env/prod.yaml"))
    assert second.code == EXIT_OK, second.explain()
    assert configmaps(kube, charted) == {f"{name}-settings", f"{name}-cache", f"{name}-extra"}
    assert configmap_data(kube, charted.namespace, f"{name}-settings")["greeting"] == "from-prod"
    assert configmap_data(kube, charted.namespace, f"{name}-cache") == {"size": "large"}

    # The chart drops a template: what it rendered is pruned, the rest stays.
    charted.repo.commit({f"{PATH_IN_REPO}/templates/extra.yaml": None}, "drop extra")
    third = charted.run("apply", *helm_args({"cache": {"size": "large"}}, "env/prod.yaml"))
    assert third.code == EXIT_OK, third.explain()
    assert third.counts["pruned"] == 1, third.summary
    assert configmaps(kube, charted) == {f"{name}-settings", f"{name}-cache"}


def test_install_hooks_are_refused_unless_skipped(kube: client.ApiClient, charted: Target) -> None:
    name = charted.name
    files = web_chart() | {f"{PATH_IN_REPO}/templates/migrate.yaml": MIGRATE_HOOK}
    charted.repo.commit(files, "a chart with a migration hook")

    refused = charted.run()
    assert refused.code == EXIT_PERMANENT, refused.explain()
    assert (
        f"ConfigMap/{name}-migrate is a chart hook (pre-install, pre-upgrade)"
        in (refused.summary["message"])
    )
    assert "helm.skipHooks: true" in refused.summary["message"]
    assert configmaps(kube, charted) == set()

    skipped = charted.run("apply", "--helm-chart", PATH_IN_REPO, "--helm-skip-hooks")
    assert skipped.code == EXIT_OK, skipped.explain()
    assert configmaps(kube, charted) == {f"{name}-settings", f"{name}-cache"}


def test_kustomize_helm_charts_inflate_a_local_chart(
    kube: client.ApiClient, charted: Target
) -> None:
    kustomization = """\
helmCharts:
- name: web
  releaseName: store
  valuesInline:
    greeting: from-kustomize
"""
    files = web_chart(f"{PATH_IN_REPO}/charts/web")
    charted.repo.commit(files | {f"{PATH_IN_REPO}/kustomization.yaml": kustomization}, "inflate")

    run = charted.run()
    assert run.code == EXIT_OK, run.explain()
    # kustomize's own helm inflation keeps test hooks unless skipTests is set.
    assert configmaps(kube, charted) == {"store-settings", "store-cache", "store-smoke"}
    assert configmap_data(kube, charted.namespace, "store-settings")["greeting"] == (
        "from-kustomize"
    )


def test_kustomize_helm_chart_from_a_repo_is_refused(charted: Target) -> None:
    kustomization = """\
helmCharts:
- name: web
  repo: https://charts.example.com
  version: 0.1.0
"""
    charted.repo.commit({f"{PATH_IN_REPO}/kustomization.yaml": kustomization}, "remote chart")

    run = charted.run()
    assert run.code == EXIT_PERMANENT, run.explain()
    assert "names repo 'https://charts.example.com'" in run.summary["message"]


@pytest.mark.parametrize(
    ("files", "symlinks", "extra", "reason"),
    [
        pytest.param(
            {},
            {"env/prod.yaml": "/etc/passwd"},
            ["--helm-chart", PATH_IN_REPO, "--helm-values-file", "env/prod.yaml"],
            "values file 'env/prod.yaml' resolves outside the repository",
            id="values-symlink-out",
        ),
        pytest.param(
            {},
            {},
            ["--helm-chart", PATH_IN_REPO, "--helm-values-file", "../../../etc/passwd"],
            "values file '../../../etc/passwd' resolves outside the repository",
            id="values-path-out",
        ),
        pytest.param(
            {},
            {f"{PATH_IN_REPO}/templates/stolen.yaml": "/etc/passwd"},
            [],
            f"{PATH_IN_REPO}/templates/stolen.yaml is a symlink to outside the repository",
            id="template-symlink-out",
        ),
        pytest.param(
            {f"{PATH_IN_REPO}/charts/cache/Chart.yaml": None},
            {},
            [],
            f"dependency 'cache' is not vendored in {PATH_IN_REPO}/charts/",
            id="unvendored-dependency",
        ),
    ],
)
def test_hostile_charts_are_refused_with_one_line(
    kube: client.ApiClient,
    charted: Target,
    files: dict[str, str | bytes | None],
    symlinks: dict[str, str],
    extra: list[str],
    reason: str,
) -> None:
    charted.repo.commit(web_chart() | files, "hostile", symlinks=symlinks)

    run = charted.run("apply", *extra)
    assert run.code == EXIT_PERMANENT, run.explain()
    message = run.summary["message"]
    assert reason in message and "\n" not in message, message
    assert "root:" not in run.stdout + run.stderr  # nothing of /etc/passwd was read out
    assert configmaps(kube, charted) == set()
