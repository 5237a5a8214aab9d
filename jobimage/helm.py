"""Helm charts: rendered offline with the pinned `helm template`, from files in the checkout.

A chart is rendered as `helm template` renders it (release namespace = the target's namespace;
the chart's `crds/` folder left out, as hooksync applies no cluster-scoped objects) and its
objects then go through validate, apply, prune and health like any render. Nothing is
downloaded: dependencies must be vendored in the chart's `charts/` folder, and helm runs with
empty cache, config and data folders of its own and no PATH.

Chart hooks: `helm.sh/hook: test` objects (run by `helm test`, never by an install) are left
out. Any other hook (pre-/post-install, -upgrade, -delete, -rollback) is refused, because
hooksync keeps no release history to run it at the right moment; `helm.skipHooks: true` in
the target's configuration leaves them all out instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Final

from hooksync.runsettings import HelmSettings
from jobimage.errors import RenderError, TransientError
from jobimage.render import (
    MAX_FILE_BYTES,
    Manifest,
    Rendered,
    _check_yaml_input,
    _kustomization_file,
    _limit_output,
    _load_documents,
    _manifests_in,
    _NodeBudget,
    _read_text,
    _relative,
    _resolve_target_path,
    _walk,
)

__all__ = [
    "CHART_FILE",
    "HELM_ENV",
    "Release",
    "chart_to_render",
    "find_helm",
    "helm_binary",
    "is_chart",
    "render_chart",
    "without_hooks",
]

CHART_FILE: Final = "Chart.yaml"
HELM_ENV: Final = "HOOKSYNC_HELM"
HELM_TIMEOUT_SECONDS: Final = 120
HOOK_ANNOTATION: Final = "helm.sh/hook"
# Hooks `helm test` runs; an install or upgrade never does, so neither does hooksync.
TEST_HOOKS: Final = frozenset({"test", "test-success", "test-failure"})
_REQUIREMENTS_FILES: Final = ("requirements.yaml", "requirements.yml")  # apiVersion v1 charts


@dataclass(frozen=True)
class Release:
    """What `helm template` is told: the release's name and namespace, and the target's
    `helm:` block (None: a path holding Chart.yaml, rendered with the chart's own values)."""

    name: str
    namespace: str
    settings: HelmSettings | None = None


def is_chart(folder: Path) -> bool:
    return (folder / CHART_FILE).is_file()


def chart_to_render(root: Path, path: str, settings: HelmSettings | None) -> str | None:
    """The chart a target renders: its `helm:` block's, else its path when that is a folder
    holding Chart.yaml and no kustomization (a kustomization there is built, as before);
    None for a target that renders no chart."""
    if settings is not None:
        return settings.chart
    folder = root / (path or ".")
    if folder.is_dir() and is_chart(folder) and _kustomization_file(folder) is None:
        return path
    return None


def render_chart(root: Path, chart: str, release: Release, sha: str | None = None) -> Rendered:
    """Render the chart at `chart` (relative to the checkout `root`) as `release`; `sha` only
    improves error messages.

    Raises RenderError for anything the commit has to fix: a chart file, values file or symlink
    outside the repository, a dependency not vendored, a hook (see the module's docstring),
    a template error. TransientError when helm times out.
    """
    root = Path(root).resolve(strict=True)
    chart_dir = _resolve_target_path(root, chart, sha)
    shown = _relative(root, chart_dir)
    if not chart_dir.is_dir() or not is_chart(chart_dir):
        raise RenderError(
            f"chart {chart!r} has no {CHART_FILE}; point helm.chart (or the target's path) at "
            "the chart's folder"
        )
    budget = _NodeBudget()
    check_chart_files(root, chart_dir, budget)
    settings = release.settings
    values = [
        _values_file(root, file, budget) for file in (settings.values_files if settings else ())
    ]
    binary = helm_binary()
    with tempfile.TemporaryDirectory(prefix="hooksync-helm-") as home:
        if settings and settings.values_json:
            inline = Path(home) / "inline-values.json"  # JSON is YAML: helm reads it as values
            inline.write_text(settings.values_json, encoding="utf-8")
            values.append(inline)
        argv = [binary, "template", release.name, str(chart_dir)]
        argv += ["--namespace", release.namespace]
        for file in values:
            argv += ["--values", str(file)]
        text, error = _run_helm(argv, home, f"helm template of {shown}")
    if error is not None:
        detail = error.strip().replace(f"{root}/", "").replace(str(root), ".")
        raise RenderError(f"helm template of {shown} failed: {detail[-2000:]}")
    manifests = _manifests_in(text, shown, _NodeBudget())
    skip_hooks = settings.skip_hooks if settings else False
    return Rendered(manifests=without_hooks(manifests, skip_hooks), chart=shown)


def helm_env(home: str) -> dict[str, str]:
    """Pure: helm's environment: every folder it reads or writes is under `home`, and there is
    no PATH (no plugins, no downloaders) and no cluster to reach."""
    return {
        "HOME": home,
        "XDG_CONFIG_HOME": home,
        "HELM_CACHE_HOME": os.path.join(home, "cache"),
        "HELM_CONFIG_HOME": os.path.join(home, "config"),
        "HELM_DATA_HOME": os.path.join(home, "data"),
        "HELM_PLUGINS": os.path.join(home, "plugins"),
        "KUBECONFIG": os.path.join(home, "no-kubeconfig"),
    }


def _run_helm(argv: list[str], home: str, what: str) -> tuple[str, str | None]:
    """Run helm with a clean environment; (stdout, None) or (stdout, stderr) on failure."""
    output = Path(home) / "output.yaml"
    try:
        with output.open("w") as sink:
            done = subprocess.run(
                argv,
                cwd=home,
                env=helm_env(home),
                stdout=sink,
                stderr=subprocess.PIPE,
                text=True,
                timeout=HELM_TIMEOUT_SECONDS,
                check=False,
                preexec_fn=_limit_output,
            )
    except FileNotFoundError as exc:
        raise RenderError(
            f"helm binary {argv[0]!r} not found; install helm or set {HELM_ENV} to its path"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise TransientError(f"{what} took over {HELM_TIMEOUT_SECONDS}s") from exc
    if output.stat().st_size >= MAX_FILE_BYTES:
        raise RenderError(
            f"{what}: refused, its output passes {MAX_FILE_BYTES // 2**20} MiB; render fewer "
            "objects per chart"
        )
    text = output.read_text(encoding="utf-8", errors="replace")
    return text, (done.stderr if done.returncode != 0 else None)


def find_helm() -> str | None:
    """The pinned helm: $HOOKSYNC_HELM, else `helm` on PATH, as an absolute path (kustomize
    and helm both run without PATH); None when there is none."""
    binary = os.environ.get(HELM_ENV) or shutil.which("helm")
    return os.path.abspath(binary) if binary else None


def helm_binary() -> str:
    """find_helm's answer, or a RenderError saying how to provide helm."""
    binary = find_helm()
    if not binary:
        raise RenderError(f"helm not found on PATH; install helm or set {HELM_ENV} to its path")
    return binary


# --- what helm may read -------------------------------------------------------------------------


def check_chart_files(root: Path, chart_dir: Path, budget: _NodeBudget) -> None:
    """Refuse symlinks out of the repository anywhere in the chart (templates, values,
    `charts/`), measure its YAML for bombs, and insist every dependency is vendored."""
    for shown, real in _walk(root, chart_dir, PurePosixPath(_relative(root, chart_dir)), True):
        if real.suffix.lower() in (".yaml", ".yml"):
            try:
                text = real.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue  # helm reports what it cannot read
            _check_yaml_input(text, shown.as_posix(), budget)
    _check_vendored(root, chart_dir)


def _check_vendored(root: Path, chart_dir: Path) -> None:
    """Every dependency a chart (or a vendored subchart) declares is in its `charts/` folder."""
    pending = [chart_dir]
    while pending:
        chart = pending.pop()
        shown = _relative(root, chart)
        names = dependency_names(_chart_documents(root, chart))
        vendored = _vendored_charts(chart / "charts")
        for name in names:
            if not any(_vendors(entry, name) for entry in vendored):
                raise RenderError(
                    f"chart {shown}: dependency {name!r} is not vendored in {shown}/charts/; "
                    "run `helm dependency build` and commit the charts/ folder (hooksync "
                    "never downloads charts)"
                )
        pending.extend(entry for entry in vendored if entry.is_dir() and is_chart(entry))


def _chart_documents(root: Path, chart: Path) -> list[Any]:
    """Chart.yaml's mapping, then requirements.yaml's if any (where v1 charts list theirs)."""
    found: list[Any] = []
    for name in (CHART_FILE, *_REQUIREMENTS_FILES):
        file = chart / name
        if file.is_file():
            shown = _relative(root, file)
            documents = _load_documents(_read_text(file, shown), shown)
            found.append(documents[0] if documents else None)
    return found


def dependency_names(documents: Iterable[Any]) -> list[str]:
    """Pure: the dependency names a Chart.yaml (and requirements.yaml) declare."""
    names: list[str] = []
    for document in documents:
        if not isinstance(document, dict):
            continue
        for entry in document.get("dependencies") or []:
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                names.append(entry["name"])
    return names


def _vendored_charts(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(entry for entry in folder.iterdir() if not entry.name.startswith("."))


def _vendors(entry: Path, name: str) -> bool:
    """Whether a `charts/` entry holds the chart `name`: a folder whose Chart.yaml names it,
    or an archive `name-VERSION.tgz` as `helm dependency build` writes it."""
    if entry.is_dir():
        file = entry / CHART_FILE
        if not file.is_file():
            return False
        try:
            documents = _load_documents(file.read_text(encoding="utf-8"), entry.name)
        except (UnicodeDecodeError, OSError, RenderError):
            return False
        return (
            bool(documents) and isinstance(documents[0], dict) and documents[0].get("name") == name
        )
    return entry.name.startswith(f"{name}-") and entry.name.endswith(".tgz")


def _values_file(root: Path, file: str, budget: _NodeBudget) -> Path:
    """A values file the target names: in the repository, a file, measured for bombs."""
    # Inside first: whether a file outside the checkout exists is none of the commit's business.
    resolved = (root / file).resolve()
    if not resolved.is_relative_to(root):
        raise RenderError(
            f"values file {file!r} resolves outside the repository; keep values files in the "
            "repository (symlinks out of it are refused)"
        )
    if not resolved.exists():
        raise RenderError(f"values file {file!r} not found in the repository; fix helm.valuesFiles")
    if not resolved.is_file():
        raise RenderError(f"values file {file!r} is not a file; fix helm.valuesFiles")
    _check_yaml_input(_read_text(resolved, file), file, budget)
    return resolved


# --- chart hooks --------------------------------------------------------------------------------


def hooks_of(obj: dict[str, Any]) -> list[str]:
    """Pure: the hooks an object's `helm.sh/hook` annotation names (none: not a hook)."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(HOOK_ANNOTATION) if isinstance(annotations, dict) else None
    if not isinstance(value, str):
        return []
    return [hook.strip() for hook in value.split(",") if hook.strip()]


def without_hooks(manifests: list[Manifest], skip_hooks: bool) -> list[Manifest]:
    """Pure: a chart's objects without its test hooks (and without every hook when
    `skip_hooks`); any other hook is refused, naming it and the way out."""
    kept: list[Manifest] = []
    for manifest in manifests:
        hooks = hooks_of(manifest.obj)
        if not hooks:
            kept.append(manifest)
        elif skip_hooks or set(hooks) <= TEST_HOOKS:
            continue
        else:
            obj = manifest.obj
            name = f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"
            raise RenderError(
                f"{manifest.where}: {name} is a chart hook ({', '.join(hooks)}); hooksync runs "
                "no hooks — set helm.skipHooks: true to leave hooks out, or drop the "
                f"{HOOK_ANNOTATION} annotation to apply it as an ordinary object"
            )
    return kept
