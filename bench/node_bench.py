"""The real node's figures: both images built cold, the receiver's start-to-Ready, and push to
final status on the real node next to the same figure in the process-kubelet world.

1. Cold builds. The base (mmdebstrap) and both images are built as on a machine that never
   built them: an empty cache folder (HOOKSYNC_CACHE, with the Go binaries' folder linked in,
   since building those is not what this measures) and a podman storage of its own
   (CONTAINERS_STORAGE_CONF), so no base, layer or image is reused. Prints each step's time and
   each image's size. `--warm-images` skips this part.
2. The real node (world/node.py) with `k8s/` installed as `make e2e` installs it
   (world/e2e.py): the receiver pods' start-to-Ready time, from each pod's own status (its
   creationTimestamp to its Ready condition's lastTransitionTime), then `--runs` pushes of the
   demo app, one after another, each timed from the webhook to the commit's final status.
3. The same pushes of the same app in the process-kubelet world (world/stack.py: the receiver
   as a process, Jobs under the process kubelet), in the same run.

Needs root, podman, runc, mmdebstrap, containerd and the CNI plugins (as `make e2e`); without
them it says why and measures nothing.

    .venv/bin/python -m bench.node_bench [--runs 10] [--warm-images]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bench.figures import median, ratio
from world import e2e
from world.cluster import LocalCluster
from world.images import build_all, cache_root, podman_available
from world.node import PAUSE_IMAGE, RealCluster, ensure_node_tools
from world.stack import DeliveryStack


@contextlib.contextmanager
def cold_environment(scratch: Path) -> Iterator[None]:
    """An empty hooksync cache and an empty podman storage, for this process and its children."""
    cache = scratch / "cache"
    cache.mkdir()
    # The Go binaries are not part of an image build; kustomize is taken from there.
    (cache / "bin").symlink_to(cache_root() / "bin")
    storage = scratch / "storage.conf"
    storage.write_text(
        "[storage]\n"
        'driver = "overlay"\n'
        f'graphroot = "{scratch / "graph"}"\n'
        f'runroot = "{scratch / "run"}"\n'
    )
    saved = {name: os.environ.get(name) for name in ("HOOKSYNC_CACHE", "CONTAINERS_STORAGE_CONF")}
    os.environ["HOOKSYNC_CACHE"] = str(cache)
    os.environ["CONTAINERS_STORAGE_CONF"] = str(storage)
    try:
        yield
    finally:
        # This storage's images go first (and with them their layers' mounts), then any mount
        # still under the folder; the caller removes the folder.
        roots = ["--root", str(scratch / "graph"), "--runroot", str(scratch / "run")]
        subprocess.run(
            ["podman", *roots, "rmi", "--all", "--force"], capture_output=True, timeout=300
        )
        for point in sorted(_mounts_under(scratch), reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _mounts_under(folder: Path) -> list[str]:
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return [point for point in points if point.startswith(str(folder))]


def cold_images() -> dict[str, float]:
    """Build the base and both images with nothing cached; prints and returns the figures."""
    with tempfile.TemporaryDirectory(prefix="hooksync-cold-images-") as folder:
        with cold_environment(Path(folder)):
            started = time.monotonic()
            images = build_all()
            total = time.monotonic() - started
        shutil.rmtree(folder, ignore_errors=True)
    figures = {
        "base_seconds": images.timings["base"],
        "kustomize_stage_seconds": images.timings["kustomize"],
        "receiver_seconds": images.receiver.seconds,
        "job_seconds": images.job.seconds,
        "total_seconds": total,
        "receiver_mb": images.receiver.size_bytes / 1e6,
        "job_mb": images.job.size_bytes / 1e6,
    }
    print("cold builds (empty cache folder, empty podman storage):")
    print(f"  base (mmdebstrap bookworm + import)   {figures['base_seconds']:6.0f} s")
    print(f"  kustomize stage (import)              {figures['kustomize_stage_seconds']:6.0f} s")
    print(
        f"  {images.receiver.name:<37} {figures['receiver_seconds']:6.0f} s"
        f"   {figures['receiver_mb']:5.0f} MB"
    )
    print(f"  {images.job.name:<37} {figures['job_seconds']:6.0f} s   {figures['job_mb']:5.0f} MB")
    print(f"  all of it                             {total:6.0f} s", flush=True)
    return figures


def main_head(stack: DeliveryStack) -> str | None:
    """The head of main in the stack's repository, or None before its first commit."""
    try:
        return stack.repo.head() if stack.repo is not None else None
    except KeyError:
        return None


def timed_pushes(
    stack: DeliveryStack, app: Callable[[str], dict[str, str | None]], runs: int, label: str
) -> list[float]:
    """`runs` commits pushed one after another; seconds from the webhook to the final status."""
    seconds: list[float] = []
    before = main_head(stack)
    for run in range(runs):
        sha = stack.commit(app(f"{label}-{run}"), f"{label} {run}")
        started = time.monotonic()
        answer = stack.push_event(sha, before=before)
        before = sha
        if answer.status_code != 202:
            raise SystemExit(f"{label}: push {run} answered {answer.status_code}: {answer.text}")
        status = stack.wait_final_status(sha, timeout=240)
        elapsed = time.monotonic() - started
        if status.get("state") != "success":
            raise SystemExit(f"{label}: push {run} ended {status}")
        seconds.append(elapsed)
        print(f"  {label} push {run + 1}: {elapsed:.2f} s", flush=True)
    return seconds


def _app(image: str) -> Callable[[str], dict[str, str | None]]:
    """The demo app with a given greeting: each push changes its ConfigMap only."""
    return lambda greeting: e2e.app_files(greeting, image=image)


def real_node(runs: int) -> tuple[list[float], list[float]]:
    """(receiver pods' start-to-Ready seconds, push-to-final-status seconds) on the real node."""
    build_all()
    with (
        tempfile.TemporaryDirectory(prefix="hooksync-node-bench-") as folder,
        RealCluster(images=e2e.IMAGES) as cluster,
    ):
        # The real node as `make e2e` hands it to the scenario (relays included).
        args = e2e.parser().parse_args(e2e.node_scenario_args(cluster))
        side, relays = e2e.side_from_args(args)
        stack = e2e.NodeDeliveryStack(side, Path(folder))
        try:
            stack.start()
            stack.wait_receiver_ready()
            pods = json.loads(
                stack.kubectl(
                    "-n", e2e.NAMESPACE, "get", "pods", "-l", e2e.RECEIVER_LABEL, "-o", "json"
                )
            )["items"]
            ready = e2e.start_to_ready(pods)
            # Warm-up, not measured: the first converge creates the app.
            timed_pushes(stack, _app(PAUSE_IMAGE), 1, "node-warm")
            pushes = timed_pushes(stack, _app(PAUSE_IMAGE), runs, "node")
        finally:
            stack.stop()
            relays.stop()
    return ready, pushes


def process_kubelet(runs: int) -> list[float]:
    """Push-to-final-status seconds in the process-kubelet world, for the same app."""
    with (
        tempfile.TemporaryDirectory(prefix="hooksync-node-bench-") as folder,
        LocalCluster() as cluster,
    ):
        # As the node scenario configures it (world/e2e.py), so both worlds wait alike.
        stack = DeliveryStack(cluster, Path(folder), settings={"burstQuietSeconds": 1})
        try:
            stack.start()
            timed_pushes(stack, _app(PAUSE_IMAGE), 1, "process-warm")
            return timed_pushes(stack, _app(PAUSE_IMAGE), runs, "process")
        finally:
            stack.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench.node_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warm-images", action="store_true", help="skip the cold image builds")
    parser.add_argument("--images-only", action="store_true", help="only the cold image builds")
    args = parser.parse_args(argv)
    missing = podman_available() or ensure_node_tools()
    if missing:
        print(f"node bench skipped: containers cannot run here: {missing}")
        return 0
    if not args.warm_images:
        cold_images()
    if args.images_only:
        return 0
    print(
        "\nthe real node: k8s/ installed, the receiver's start-to-Ready, timed pushes", flush=True
    )
    ready, node = real_node(args.runs)
    print("\nthe process-kubelet world: the same app, the same pushes", flush=True)
    process = process_kubelet(args.runs)

    print(
        "\nreceiver pods, creation to Ready (their own status times): "
        + ", ".join(f"{s:.0f} s" for s in ready)
    )
    print(f"push -> final status, {args.runs} pushes of the demo app one after another")
    print(f"{'':<32} {'median':>8} {'worst':>8}   runs")
    for label, values in (("real node (pods, containerd)", node), ("process kubelet", process)):
        print(
            f"{label:<32} {median(values):7.2f}s {max(values):7.2f}s   "
            + " ".join(f"{s:.2f}" for s in values)
        )
    print(f"ratio real node / process kubelet: median {ratio(median(node), median(process))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
