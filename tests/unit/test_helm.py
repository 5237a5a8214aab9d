"""Helm: the `helm:` block, its argv, the hooks policy, and the checks made before helm runs."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from hooksync.config import ConfigError, parse_config
from hooksync.jobspec import JobSpec, JobSpecError, parse_job_args
from hooksync.runsettings import HelmSettings
from jobimage.errors import PermanentError, RenderError
from jobimage.helm import (
    Release,
    chart_to_render,
    dependency_names,
    helm_env,
    hooks_of,
    render_chart,
    without_hooks,
)
from jobimage.render import Manifest, render

# Every check here happens before helm would run: a binary that does not exist proves it.
NO_HELM = "/nonexistent/helm"


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOOKSYNC_HELM", NO_HELM)
    root = tmp_path / "repo"
    root.mkdir()
    return root


def chart(root: Path, folder: str = "chart", dependencies: str = "") -> None:
    write(
        root, f"{folder}/Chart.yaml", f"apiVersion: v2\nname: app\nversion: 0.1.0\n{dependencies}"
    )
    write(root, f"{folder}/values.yaml", "replicas: 1\n")
    write(root, f"{folder}/templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\n")


def release(**settings: Any) -> Release:
    return Release("web", "shop", HelmSettings(**settings) if settings else None)


# --- configuration and argv ---------------------------------------------------------------------


def config_with(helm: Any) -> str:
    target = {
        "name": "shop",
        "provider": "github",
        "repo": "acme/shop",
        "path": "deploy/chart",
        "namespace": "shop",
        "serviceAccount": "hooksync-shop",
        "helm": helm,
    }
    doc = {"jobImage": "j:1", "publicURL": "https://h.example.com", "targets": [target]}
    return yaml.safe_dump(doc)


def test_helm_block_defaults_the_chart_to_the_targets_path() -> None:
    helm = parse_config(config_with({"valuesFiles": ["env/prod.yaml"]})).targets[0].helm

    assert helm == HelmSettings(chart="deploy/chart", values_files=("env/prod.yaml",))


def test_helm_block_with_every_field() -> None:
    block = {
        "chart": "charts/web",
        "valuesFiles": ["a.yaml", "b.yaml"],
        "releaseName": "storefront",
        "values": {"image": {"tag": "1.2"}},
        "skipHooks": True,
    }
    helm = parse_config(config_with(block)).targets[0].helm

    assert helm == HelmSettings(
        chart="charts/web",
        values_files=("a.yaml", "b.yaml"),
        release="storefront",
        values_json='{"image":{"tag":"1.2"}}',
        skip_hooks=True,
    )


@pytest.mark.parametrize(
    ("block", "field"),
    [
        ({"chart": "../elsewhere"}, "helm.chart"),
        ({"valuesFiles": ["/etc/passwd"]}, "helm.valuesFiles"),
        ({"valuesFiles": "prod.yaml"}, "helm.valuesFiles"),
        ({"releaseName": "Not_A_Label"}, "helm.releaseName"),
        ({"releaseName": "r" * 54}, "helm.releaseName"),
        ({"values": ["a"]}, "helm.values"),
        ({"skipHooks": "yes"}, "helm.skipHooks"),
        ({"repo": "https://charts.example.com"}, "helm.repo: unknown field"),
        ("chart", "helm: must be a mapping"),
    ],
)
def test_helm_block_mistakes_name_the_field(block: Any, field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        parse_config(config_with(block))


def test_helm_settings_travel_in_argv_and_back() -> None:
    helm = HelmSettings(
        chart="deploy/chart",
        values_files=("a.yaml", "b.yaml"),
        release="storefront",
        values_json='{"replicas":2}',
        skip_hooks=True,
    )
    spec = JobSpec("apply", "shop", "https://git/x.git", "main", "deploy", "shop", helm=helm)

    assert parse_job_args(spec.to_args()) == spec


def test_a_spec_without_helm_writes_no_helm_args() -> None:
    spec = JobSpec("apply", "shop", "https://git/x.git", "main", "deploy", "shop")

    assert not [arg for arg in spec.to_args() if arg.startswith("--helm")]
    assert parse_job_args(spec.to_args()).helm is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--helm-values-file", "a.yaml"], "need --helm-chart"),
        (["--helm-chart", "c", "--helm-values", "{nope"], "not JSON"),
        (["--helm-chart", "c", "--helm-values", "[1]"], "JSON object"),
    ],
)
def test_bad_helm_args_are_refused(extra: list[str], message: str) -> None:
    base = JobSpec("apply", "shop", "https://git/x.git", "main", "deploy", "shop").to_args()
    with pytest.raises(JobSpecError, match=message):
        parse_job_args([*base, *extra])


# --- hooks policy -------------------------------------------------------------------------------


def hooked(name: str, hook: str | None) -> Manifest:
    metadata: dict[str, Any] = {"name": name}
    if hook is not None:
        metadata["annotations"] = {"helm.sh/hook": hook, "helm.sh/hook-weight": "1"}
    return Manifest({"apiVersion": "v1", "kind": "Pod", "metadata": metadata}, "chart", 1)


def test_hooks_of_splits_the_annotation() -> None:
    assert hooks_of(hooked("a", "pre-install, pre-upgrade").obj) == ["pre-install", "pre-upgrade"]
    assert hooks_of(hooked("a", None).obj) == []


def test_test_hooks_are_left_out_and_ordinary_objects_kept() -> None:
    kept = without_hooks(
        [hooked("web", None), hooked("smoke", "test"), hooked("old", "test-success")], False
    )

    assert [m.obj["metadata"]["name"] for m in kept] == ["web"]


def test_install_hooks_are_refused_naming_the_object_and_the_way_out() -> None:
    with pytest.raises(RenderError) as caught:
        without_hooks([hooked("web", None), hooked("migrate", "pre-install,pre-upgrade")], False)

    message = str(caught.value)
    assert "Pod/migrate is a chart hook (pre-install, pre-upgrade)" in message
    assert "helm.skipHooks: true" in message
    assert isinstance(caught.value, PermanentError)


def test_skip_hooks_leaves_every_hook_out() -> None:
    kept = without_hooks([hooked("migrate", "pre-upgrade"), hooked("web", None)], True)

    assert [m.obj["metadata"]["name"] for m in kept] == ["web"]


# --- pure helpers -------------------------------------------------------------------------------


def test_dependency_names_come_from_chart_and_requirements() -> None:
    chart_yaml = {"dependencies": [{"name": "redis"}, {"name": "db", "alias": "primary"}]}
    requirements = {"dependencies": [{"name": "legacy"}]}

    assert dependency_names([chart_yaml, requirements, None]) == ["redis", "db", "legacy"]


def test_helm_runs_with_every_folder_under_its_home_and_no_path() -> None:
    env = helm_env("/tmp/h")

    assert "PATH" not in env
    assert all(value.startswith("/tmp/h") for value in env.values())
    assert {"HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"} <= set(env)


def test_chart_to_render_prefers_the_helm_block_then_a_chart_at_the_path(repo: Path) -> None:
    chart(repo)
    write(repo, "kustomized/Chart.yaml", "apiVersion: v2\nname: k\nversion: 0.1.0\n")
    write(repo, "kustomized/kustomization.yaml", "resources: []\n")
    write(repo, "plain/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")

    assert chart_to_render(repo, "plain", HelmSettings(chart="chart")) == "chart"
    assert chart_to_render(repo, "chart", None) == "chart"
    assert chart_to_render(repo, "kustomized", None) is None
    assert chart_to_render(repo, "plain", None) is None


# --- checks before helm runs --------------------------------------------------------------------


def test_values_file_outside_the_repository_is_refused(repo: Path, tmp_path: Path) -> None:
    chart(repo)
    write(tmp_path, "secret.yaml", "token: x\n")
    (repo / "prod.yaml").symlink_to(tmp_path / "secret.yaml")

    with pytest.raises(RenderError, match=r"values file 'prod\.yaml' resolves outside"):
        render_chart(repo, "chart", release(chart="chart", values_files=("prod.yaml",)))


def test_missing_values_file_is_named(repo: Path) -> None:
    chart(repo)

    with pytest.raises(RenderError, match=r"values file 'env/prod\.yaml' not found"):
        render_chart(repo, "chart", release(chart="chart", values_files=("env/prod.yaml",)))


def test_symlink_out_of_the_repository_inside_a_chart_is_refused(
    repo: Path, tmp_path: Path
) -> None:
    chart(repo)
    write(tmp_path, "outside.yaml", "apiVersion: v1\nkind: Secret\n")
    (repo / "chart/templates/stolen.yaml").symlink_to(tmp_path / "outside.yaml")

    with pytest.raises(RenderError, match=r"chart/templates/stolen\.yaml is a symlink to outside"):
        render_chart(repo, "chart", release())


def test_unvendored_dependency_is_refused_naming_it(repo: Path) -> None:
    chart(repo, dependencies="dependencies:\n- name: redis\n  version: 1.0.0\n")

    with pytest.raises(RenderError, match="dependency 'redis' is not vendored in chart/charts/"):
        render_chart(repo, "chart", release())


def test_a_dependency_vendored_as_an_archive_passes_the_check(repo: Path) -> None:
    chart(repo, dependencies="dependencies:\n- name: redis\n  version: 1.0.0\n")
    (repo / "chart/charts").mkdir()
    (repo / "chart/charts/redis-1.0.0.tgz").write_bytes(b"")

    # Past the check, helm itself is looked for (and here is missing).
    with pytest.raises(RenderError, match="helm binary '/nonexistent/helm' not found"):
        render_chart(repo, "chart", release())


def test_a_folder_without_chart_yaml_is_not_a_chart(repo: Path) -> None:
    write(repo, "deploy/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")

    with pytest.raises(RenderError, match=r"chart 'deploy' has no Chart\.yaml"):
        render_chart(repo, "deploy", release(chart="deploy"))


def test_kustomize_helm_chart_from_a_repo_is_refused(repo: Path) -> None:
    write(
        repo,
        "app/kustomization.yaml",
        """
        helmCharts:
        - name: redis
          repo: https://charts.example.com
          version: 1.0.0
        """,
    )

    with pytest.raises(RenderError, match=r"helmCharts\[0\] \(redis\) names repo"):
        render(repo, "app", kustomize="/nonexistent/kustomize")


def test_kustomize_helm_values_file_outside_the_repository_is_refused(repo: Path) -> None:
    write(
        repo,
        "app/kustomization.yaml",
        "helmCharts:\n- name: web\n  valuesFile: ../../outside.yaml\n",
    )

    with pytest.raises(RenderError, match=r"helmCharts\[0\]\.valuesFile.*outside the repository"):
        render(repo, "app", kustomize="/nonexistent/kustomize")


def test_helm_inflation_generator_plugin_config_is_refused(repo: Path) -> None:
    write(repo, "app/kustomization.yaml", "generators: [helm.yaml]\n")
    write(
        repo,
        "app/helm.yaml",
        """
        apiVersion: builtin
        kind: HelmChartInflationGenerator
        metadata: {name: redis}
        name: redis
        repo: https://charts.example.com
        """,
    )

    with pytest.raises(RenderError, match="list the chart under helmCharts instead"):
        render(repo, "app", kustomize="/nonexistent/kustomize")
