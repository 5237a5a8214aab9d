"""What ships: the Dockerfiles, the lock file and the shell scripts, checked without a cluster.

No Docker engine is needed: hadolint and shellcheck come from the dev dependencies (binary
wheels), and the image's Python environment is rebuilt the way its builder stage builds it.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILES = ("Dockerfile.receiver", "Dockerfile.job")
LOCK = ROOT / "requirements.lock"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def tool(name: str) -> str:
    """A linter installed by the dev dependencies, beside this interpreter."""
    path = Path(sys.executable).parent / name
    found = str(path) if path.exists() else shutil.which(name)
    assert found, f"{name} not found: install the dev dependencies (pip install -e '.[dev]')"
    return found


def copy_sources(dockerfile: str) -> list[str]:
    """The build-context paths a Dockerfile COPYs (not those copied from another stage)."""
    sources: list[str] = []
    for line in (ROOT / dockerfile).read_text().splitlines():
        words = line.split()
        if not words or words[0].upper() not in ("COPY", "ADD"):
            continue
        args = [w for w in words[1:] if not w.startswith("--")]
        if any(w.startswith("--from") for w in words[1:]):
            continue
        sources.extend(args[:-1])
    return sources


def dockerignore_excludes(path: str) -> bool:
    """Whether .dockerignore keeps `path` (relative, '/'-separated) out of the build context.

    Docker's rules, as far as this repository's file uses them: patterns in order, the last one
    that matches wins, `!` re-includes, and a pattern matching a folder covers what is inside.
    """
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern.lstrip("!").strip("/")
        globs = [glob, glob[3:]] if glob.startswith("**/") else [glob]
        tails = [
            "/".join(parts[i : j + 1]) for i in range(len(parts)) for j in range(i, len(parts))
        ]
        candidates = prefixes if not glob.startswith("**/") else tails
        if any(fnmatch.fnmatchcase(c, g) for c in candidates for g in globs):
            excluded = not negated
    return excluded


def locked() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in LOCK.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep and version and " " not in version, f"not an exact pin: {line!r}"
        key = canonicalize_name(name)
        assert key not in pins, f"{name} is pinned twice"
        pins[key] = version
    return pins


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_dockerfile_passes_hadolint(dockerfile: str) -> None:
    result = subprocess.run(
        [tool("hadolint"), "--no-color", dockerfile],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_shell_scripts_pass_shellcheck() -> None:
    scripts = [ROOT / ".ci" / "run"]
    for path in sorted((ROOT / "hack").rglob("*")):
        if path.is_file() and path.suffix != ".py":
            first = path.read_bytes().split(b"\n", 1)[0]
            if first.startswith(b"#!") and (b"bash" in first or first.endswith(b"/sh")):
                scripts.append(path)
    names = {str(path.relative_to(ROOT)) for path in scripts}
    assert {"hack/e2e-kind.sh", "hack/build-binaries", ".ci/run"} <= names
    result = subprocess.run(
        [tool("shellcheck"), "--format=gcc", *map(str, scripts)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_dockerfile_copies_only_what_exists_and_what_the_build_needs(dockerfile: str) -> None:
    sources = copy_sources(dockerfile)
    assert sources, f"{dockerfile} copies nothing from the build context"
    for source in sources:
        assert (ROOT / source).exists(), f"{dockerfile} copies {source}, which does not exist"
        files = [ROOT / source] if (ROOT / source).is_file() else (ROOT / source).rglob("*.py")
        for file in files:
            relative = file.relative_to(ROOT).as_posix()
            assert not dockerignore_excludes(relative), f".dockerignore leaves out {relative}"
    # The wheel needs every package pyproject.toml names, the readme and the lock.
    packages = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    copied = {source.strip("/").removeprefix("./") for source in sources}
    for pattern in packages:
        assert pattern.rstrip("*") in copied, f"{dockerfile} does not copy package {pattern}"
    assert {"pyproject.toml", PYPROJECT["project"]["readme"], LOCK.name} <= copied
    # ...and nothing else reaches the build context.
    for private in (".venv/bin/python", ".git/config", "tests/conftest.py", "k8s/config.yaml"):
        assert dockerignore_excludes(private), f".dockerignore lets {private} through"
    assert dockerignore_excludes("receiver/__pycache__/app.cpython-311.pyc")


def test_lock_pins_every_runtime_dependency_and_no_dev_tool() -> None:
    pins = locked()
    for spec in PYPROJECT["project"]["dependencies"]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is a dependency but not in {LOCK.name}"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{LOCK.name} pins {requirement.name}=={pins[name]}, outside {requirement.specifier}"
        )
    runtime = {canonicalize_name(Requirement(s).name) for s in PYPROJECT["project"]["dependencies"]}
    for spec in PYPROJECT["project"]["optional-dependencies"]["dev"]:
        name = canonicalize_name(Requirement(spec).name)
        assert name in runtime or name not in pins, f"dev tool {name} is in {LOCK.name}"
    assert "hooksync" not in pins


def test_lock_is_closed_under_dependencies() -> None:
    """Every requirement of every locked package (as installed here) is locked too, so the
    images' `pip install --no-deps -r requirements.lock` misses nothing."""
    pins = locked()
    environment = {"extra": ""}
    for name in pins:
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            pytest.fail(f"{name} is locked but not installed in this environment")
        for spec in distribution.requires or []:
            requirement = Requirement(spec)
            if requirement.marker is not None and not requirement.marker.evaluate(environment):
                continue
            assert canonicalize_name(requirement.name) in pins, (
                f"{name} needs {requirement.name}, which {LOCK.name} does not pin"
            )


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_console_scripts_start_from_an_environment_built_like_the_image(tmp_path: Path) -> None:
    """The builder stage's steps, from the files the Dockerfile copies: a fresh venv, the
    locked dependencies with --no-deps, the project wheel, `pip check`, then pip and setuptools
    removed as in the final stage; both commands must start there."""
    context = tmp_path / "context"
    for source in copy_sources("Dockerfile.receiver"):
        origin = ROOT / source
        if origin.is_dir():
            shutil.copytree(origin, context / source, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (context / source).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, context / source)
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"

    def run(*args: str | Path, cwd: Path = context) -> str:
        result = subprocess.run(
            [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, f"{args}:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    base_python = getattr(sys, "_base_executable", sys.executable)
    run(base_python, "-m", "venv", venv)
    run(python, "-m", "pip", "install", "--quiet", "--no-deps", "--requirement", LOCK.name)
    run(python, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", tmp_path / "dist", ".")
    (wheel,) = (tmp_path / "dist").glob("hooksync-*.whl")
    run(python, "-m", "pip", "install", "--quiet", "--no-deps", wheel)
    run(python, "-m", "pip", "check")
    run(python, "-m", "pip", "uninstall", "--quiet", "--yes", "pip", "setuptools")

    for command in ("hooksync-receiver", "hooksync-job"):
        # Outside the checkout, so only what the wheel installed can be imported.
        usage = run(venv / "bin" / command, "--help", cwd=tmp_path)
        assert f"usage: {command}" in usage
