"""Both images, built for real from the repository's Dockerfiles with podman.

No image registry can be reached from the machines this runs on, so neither Docker Hub's
python image nor the golang image can be pulled. The builds get their bases locally instead:

- `BASE_IMAGE`: a Debian bookworm root file system made by mmdebstrap from Debian packages
  (minbase plus python3, its venv module and ca-certificates), imported into podman. The tar is
  cached outside the repository, keyed by its suite, sources and package set.
- `KUSTOMIZE_FROM`: an image holding the kustomize that `hack/build-binaries` builds from its Go
  module, at /out/kustomize, where the Dockerfile's own stage would put it.
- `SOPS_FROM`: the same for the sops that `hack/build-binaries sops` builds, at /out/sops.
- `HELM_FROM`: the same for helm (`hack/build-binaries helm`), at /out/helm.

Python packages still come from PyPI and git from Debian's mirrors, inside the build (host
network). Each image is tagged with a hash of everything that goes into it, so a rebuild with
nothing changed costs one `podman image exists`.

    python -m world.images      builds what is missing, prints the two image names
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = REPO_ROOT / "hack" / "build-binaries"

# The names the manifests use (k8s/deployment.yaml, k8s/config.yaml `jobImage`).
RECEIVER_IMAGE = "ghcr.io/hooksync/hooksync-receiver:0.1.0"
JOB_IMAGE = "ghcr.io/hooksync/hooksync-job:0.1.0"

DEBIAN_SUITE = "bookworm"
DEBIAN_SOURCES = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
# What the Dockerfiles need of their base: python3 (3.11) with venv, and the CA certificates
# git and the clients verify servers with. passwd (useradd) is part of minbase.
BASE_PACKAGES = ("ca-certificates", "python3", "python3-venv")

# The runtime podman uses here: crun refuses hybrid cgroup layouts (v1 plus a cgroup2 mount),
# and raising an rlimit above the sandbox's hard limit needs CAP_SYS_RESOURCE.
PODMAN = ("podman", "--runtime", "runc")
RUN_LIMITS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096")


class ImageBuildError(RuntimeError):
    """A base, a build or a tool failed; the message says which step and how to retry it."""


def cache_root() -> Path:
    """Where built bases are kept (the same folder `hack/build-binaries` uses)."""
    explicit = os.environ.get("HOOKSYNC_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "hooksync"


def base_key(suite: str, sources: tuple[str, ...], packages: tuple[str, ...]) -> str:
    """Pure: the cache key of a base root file system, from what it is built of."""
    text = json.dumps({"suite": suite, "sources": sources, "packages": sorted(packages)})
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def context_files(root: Path) -> list[Path]:
    """The files `.dockerignore` lets into the build context (its `!` lines), sorted.

    The file is an allow-list: `*` first, then `!path` for each thing the Dockerfiles copy.
    """
    allowed = [
        line.strip()[1:].strip("/")
        for line in (root / ".dockerignore").read_text().splitlines()
        if line.strip().startswith("!")
    ]
    files: list[Path] = []
    for entry in allowed:
        path = root / entry
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(
                p
                for p in path.rglob("*")
                if p.is_file()
                and "__pycache__" not in p.parts
                and p.suffix not in (".pyc", ".pyo", ".pyd")
                and not any(part.endswith(".egg-info") for part in p.parts)
            )
    return sorted(set(files))


def content_hash(dockerfile: Path, files: list[Path], build_args: dict[str, str]) -> str:
    """Pure but for reading the files: a hash of the Dockerfile, the context and the arguments."""
    digest = hashlib.sha256()
    digest.update(dockerfile.read_bytes())
    for path in files:
        digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    digest.update(json.dumps(build_args, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def _run(argv: list[str], what: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, text=True, capture_output=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
        raise ImageBuildError(f"{what} failed (exit {result.returncode}): {' '.join(argv)}\n{tail}")
    return result


def image_exists(name: str) -> bool:
    return subprocess.run([*PODMAN, "image", "exists", name], check=False).returncode == 0


def podman_available() -> str | None:
    """None if podman, runc and mmdebstrap are here; else why the images cannot be built."""
    missing = [tool for tool in ("podman", "runc", "mmdebstrap") if shutil.which(tool) is None]
    if missing:
        return f"not found on PATH: {', '.join(missing)} (Debian packages; .ci/run installs them)"
    if os.geteuid() != 0:
        return "podman builds and runs the images as root here (rootless needs subuid ranges)"
    return None


def trust_mounts() -> list[str]:
    """Build-time volumes that give RUN steps the machine's CA bundle, if it names one.

    Behind a TLS-inspecting egress proxy, pip inside the build must trust the proxy's CA the
    way this machine does (SSL_CERT_FILE). The bundle is mounted for the build only: it never
    becomes part of an image.
    """
    bundle = os.environ.get("SSL_CERT_FILE") or os.environ.get("PIP_CERT")
    if not bundle or not Path(bundle).is_file():
        return []
    return ["--volume", f"{Path(bundle).resolve()}:/etc/ssl/certs/ca-certificates.crt:ro"]


def ensure_base() -> str:
    """The local Debian base image, built by mmdebstrap and imported the first time."""
    key = base_key(DEBIAN_SUITE, DEBIAN_SOURCES, BASE_PACKAGES)
    name = f"localhost/hooksync-base:{DEBIAN_SUITE}-{key}"
    if image_exists(name):
        return name
    folder = cache_root() / "images"
    folder.mkdir(parents=True, exist_ok=True)
    tar = folder / f"base-{DEBIAN_SUITE}-{key}.tar"
    if not tar.exists():
        partial = tar.with_suffix(".partial.tar")
        _run(
            [
                "nice",
                "-n",
                "10",
                "mmdebstrap",
                "--quiet",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                DEBIAN_SUITE,
                str(partial),
                *DEBIAN_SOURCES,
            ],
            "mmdebstrap (the Debian base root file system)",
        )
        partial.rename(tar)
    _run(
        [*PODMAN, "import", "--change", 'CMD ["python3"]', str(tar), name],
        f"podman import {tar}",
    )
    return name


def ensure_tool_image(binary: Path) -> str:
    """An image with one Go tool at /out/<name> (kustomize, sops, helm), as the Dockerfile's
    `<name>-source` stage leaves it; tagged by the binary's hash, so it is made once."""
    tool = binary.name
    digest = hashlib.sha256(binary.read_bytes()).hexdigest()[:12]
    name = f"localhost/hooksync-{tool}:{digest}"
    if image_exists(name):
        return name
    with tempfile.TemporaryDirectory(prefix=f"hooksync-{tool}-") as scratch:
        tar = Path(scratch) / f"{tool}.tar"
        with tarfile.open(tar, "w") as archive:
            info = archive.gettarinfo(str(binary), arcname=f"out/{tool}")
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mode = 0o755
            with binary.open("rb") as data:
                archive.addfile(info, data)
        _run([*PODMAN, "import", str(tar), name], f"podman import {tar}")
    return name


def kustomize_binary() -> Path:
    """The kustomize `hack/build-binaries` builds (running it only if the binary is missing)."""
    result = _run([str(BUILD_SCRIPT), "--print"], str(BUILD_SCRIPT))
    path = Path(result.stdout.strip().splitlines()[-1]) / "kustomize"
    if not path.is_file():
        _run([str(BUILD_SCRIPT)], str(BUILD_SCRIPT))
    if not path.is_file():
        raise ImageBuildError(f"{path} is missing after {BUILD_SCRIPT}: run it by hand to see why")
    return path


def sops_binary() -> Path:
    """The sops `hack/build-binaries sops` builds (building it only if it is missing)."""
    result = _run([str(BUILD_SCRIPT), "sops"], f"{BUILD_SCRIPT} sops")
    path = Path(result.stdout.strip().splitlines()[-1]) / "sops"
    if not path.is_file():
        raise ImageBuildError(
            f"{path} is missing after {BUILD_SCRIPT} sops: run it by hand to see why"
        )
    return path


def helm_binary() -> Path:
    """The helm `hack/build-binaries helm` builds (building it only if it is missing)."""
    result = _run([str(BUILD_SCRIPT), "helm"], f"{BUILD_SCRIPT} helm")
    path = Path(result.stdout.strip().splitlines()[-1]) / "helm"
    if not path.is_file():
        raise ImageBuildError(f"{path} is missing after {BUILD_SCRIPT} helm: run it by hand")
    return path


@dataclass
class BuiltImage:
    """One image: the name the manifests use, its content-hash tag, and what building it cost."""

    name: str
    content_tag: str
    built: bool
    seconds: float
    size_bytes: int


@dataclass
class Images:
    receiver: BuiltImage
    job: BuiltImage
    base: str
    timings: dict[str, float] = field(default_factory=dict)


def build_image(dockerfile: str, name: str, build_args: dict[str, str]) -> BuiltImage:
    """Build `dockerfile` as `name` unless an image of the same content hash exists."""
    path = REPO_ROOT / dockerfile
    repository = name.rsplit(":", 1)[0].rsplit("/", 1)[-1]
    tag = f"localhost/{repository}:ctx-{content_hash(path, context_files(REPO_ROOT), build_args)}"
    started = time.monotonic()
    built = False
    if not image_exists(tag):
        argv = [
            "nice",
            "-n",
            "10",
            *PODMAN,
            "build",
            "--network",
            "host",
            "--pull=never",
            *RUN_LIMITS,
            *trust_mounts(),
            "--file",
            str(path),
            "--tag",
            tag,
        ]
        for key, value in sorted(build_args.items()):
            argv += ["--build-arg", f"{key}={value}"]
        _run([*argv, str(REPO_ROOT)], f"podman build {dockerfile}")
        built = True
    _run([*PODMAN, "tag", tag, name], f"podman tag {tag} {name}")
    size = int(_run([*PODMAN, "image", "inspect", "--format", "{{.Size}}", tag], "inspect").stdout)
    return BuiltImage(name, tag, built, time.monotonic() - started, size)


def build_all() -> Images:
    """The base, the kustomize and helm stand-in stages, then both images (each only if
    missing)."""
    reason = podman_available()
    if reason:
        raise ImageBuildError(reason)
    timings: dict[str, float] = {}
    started = time.monotonic()
    base = ensure_base()
    timings["base"] = time.monotonic() - started
    started = time.monotonic()
    kustomize = ensure_tool_image(kustomize_binary())
    timings["kustomize"] = time.monotonic() - started
    started = time.monotonic()
    sops = ensure_tool_image(sops_binary())
    timings["sops"] = time.monotonic() - started
    started = time.monotonic()
    helm = ensure_tool_image(helm_binary())
    timings["helm"] = time.monotonic() - started
    common = {"BASE_IMAGE": base, "REVISION": "local"}
    receiver = build_image("Dockerfile.receiver", RECEIVER_IMAGE, common)
    job_args = {**common, "KUSTOMIZE_FROM": kustomize, "SOPS_FROM": sops, "HELM_FROM": helm}
    job = build_image("Dockerfile.job", JOB_IMAGE, job_args)
    return Images(receiver=receiver, job=job, base=base, timings=timings)


def run_in(
    image: str, *args: str, entrypoint: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run one command in `image` as a pod would: read-only root, no network, no capabilities."""
    argv = [
        *PODMAN,
        "run",
        "--rm",
        "--read-only",
        "--network",
        "none",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        *RUN_LIMITS,
        "--tmpfs",
        "/tmp:rw,size=64m",
    ]
    if entrypoint is not None:
        argv += ["--entrypoint", entrypoint]
    return subprocess.run(
        [*argv, image, *args], text=True, capture_output=True, check=False, timeout=120
    )


def main() -> int:
    try:
        images = build_all()
    except ImageBuildError as exc:
        print(f"images: {exc}", file=sys.stderr)
        return 1
    for image in (images.receiver, images.job):
        state = f"built in {image.seconds:.0f}s" if image.built else "up to date"
        print(f"{image.name} ({image.content_tag}, {image.size_bytes / 1e6:.0f} MB, {state})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
