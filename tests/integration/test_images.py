"""Both images, built from the repository's Dockerfiles by podman and run as a pod would run them.

What users install is the image, not the source tree: a wrong entrypoint, a file uid 65532
cannot read, a write outside /tmp under a read-only root, or a job image without git or
kustomize would break every install while every other test passed. The builds are cached by
content hash (world/images.py), so a rerun with nothing changed costs seconds.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest

from world.images import Images, build_all, podman_available, run_in

# A cold build (Debian base, PyPI, Debian's git) takes minutes; the first test pays for it.
pytestmark = [pytest.mark.containers, pytest.mark.slow, pytest.mark.timeout(1800)]

_MISSING = podman_available()

# Every module of the three packages, imported as uid 65532 under a read-only root: a file the
# user cannot read, or an import that writes (bytecode, caches), fails here.
IMPORT_ALL = """
import importlib, pkgutil, sys
names = []
for package in ("hooksync", "receiver", "jobimage"):
    root = importlib.import_module(package)
    names.append(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        importlib.import_module(info.name)
        names.append(info.name)
print(len(names), sys.version_info[:2], sys.dont_write_bytecode)
"""


@pytest.fixture(scope="module")
def images() -> Iterator[Images]:
    if _MISSING:
        # CI installs the tools (.ci/run) and sets this, so there the test never skips.
        if os.environ.get("HOOKSYNC_REQUIRE_CONTAINERS") == "1":
            pytest.fail(f"the images cannot be built here: {_MISSING}")
        pytest.skip(f"the images cannot be built here: {_MISSING}")
    yield build_all()


@pytest.mark.parametrize(
    ("which", "usage"),
    [("receiver", "usage: hooksync-receiver"), ("job", "usage: hooksync-job")],
)
def test_entrypoint_answers_help(images: Images, which: str, usage: str) -> None:
    image = getattr(images, which).name
    result = run_in(image, "--help")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(usage), result.stdout


@pytest.mark.parametrize("which", ["receiver", "job"])
def test_runs_as_65532_and_writes_only_tmp(images: Images, which: str) -> None:
    image = getattr(images, which).name
    ids = run_in(image, "-u", entrypoint="id")
    assert ids.stdout.strip() == "65532", ids.stdout + ids.stderr
    groups = run_in(image, "-g", entrypoint="id")
    assert groups.stdout.strip() == "65532", groups.stdout + groups.stderr

    probe = (
        "import pathlib\n"
        "for place in ('/opt/venv/x', '/etc/x', '/x'):\n"
        "    try:\n"
        "        pathlib.Path(place).write_text('x')\n"
        "        print('wrote', place)\n"
        "    except OSError as exc:\n"
        "        print('refused', place, exc.errno)\n"
        "pathlib.Path('/tmp/x').write_text('x')\n"
        "print('tmp ok')\n"
    )
    result = run_in(image, "-c", probe, entrypoint="python3")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "wrote" not in result.stdout, result.stdout
    assert result.stdout.count("refused") == 3 and "tmp ok" in result.stdout, result.stdout


@pytest.mark.parametrize("which", ["receiver", "job"])
def test_every_module_imports_as_the_image_user(images: Images, which: str) -> None:
    image = getattr(images, which).name
    result = run_in(image, "-c", IMPORT_ALL, entrypoint="python3")
    assert result.returncode == 0, result.stdout + result.stderr
    count, _, rest = result.stdout.strip().partition(" ")
    assert int(count) > 20, result.stdout
    assert rest.endswith("True"), "PYTHONDONTWRITEBYTECODE is not set: " + result.stdout


def test_job_image_has_git_ssh_and_kustomize(images: Images) -> None:
    git = run_in(images.job.name, "--version", entrypoint="git")
    assert re.match(r"git version 2\.\d+", git.stdout), git.stdout + git.stderr
    ssh = run_in(images.job.name, "-V", entrypoint="ssh")
    assert "OpenSSH" in ssh.stdout + ssh.stderr, ssh.stdout + ssh.stderr
    kustomize = run_in(images.job.name, "version", entrypoint="kustomize")
    assert kustomize.returncode == 0 and "v5." in kustomize.stdout, (
        kustomize.stdout + kustomize.stderr
    )
    # kustomize renders as the image user, under a read-only root, with HOME=/tmp.
    render = run_in(
        images.job.name,
        "-c",
        "mkdir -p /tmp/k && cd /tmp/k"
        " && printf 'configMapGenerator:\\n- name: x\\n  literals: [a=b]\\n' > kustomization.yaml"
        " && kustomize build .",
        entrypoint="/bin/sh",
    )
    assert render.returncode == 0 and "kind: ConfigMap" in render.stdout, (
        render.stdout + render.stderr
    )


def test_job_image_has_the_pinned_sops(images: Images) -> None:
    sops = run_in(images.job.name, "--disable-version-check", "--version", entrypoint="sops")
    assert sops.returncode == 0 and "3.13.3" in sops.stdout, sops.stdout + sops.stderr


def test_job_image_has_the_pinned_helm(images: Images) -> None:
    helm = run_in(images.job.name, "version", "--short", entrypoint="helm")
    assert helm.returncode == 0 and helm.stdout.startswith("v3.22.0"), helm.stdout + helm.stderr
    # helm renders as the image user, under a read-only root, with no network.
    render = run_in(
        images.job.name,
        "-c",
        "mkdir -p /tmp/c/templates && cd /tmp/c"
        " && printf 'apiVersion: v2\\nname: c\\nversion: 0.1.0\\n' > Chart.yaml"
        " && printf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata: {name: x}\\n'"
        " > templates/cm.yaml"
        " && helm template r .",
        entrypoint="/bin/sh",
    )
    assert render.returncode == 0 and "kind: ConfigMap" in render.stdout, (
        render.stdout + render.stderr
    )


def test_receiver_image_has_no_git_and_no_pip(images: Images) -> None:
    """The receiver's image carries no tools it does not run (smaller, less to patch)."""
    result = run_in(
        images.receiver.name,
        "-c",
        "command -v git pip pip3 kustomize; echo end",
        entrypoint="/bin/sh",
    )
    assert result.stdout.strip() == "end", result.stdout + result.stderr
