"""The real node's figures: both images built cold, the receiver's start-to-Ready, and the push
path taken apart step by step on the real node next to the same in the process-kubelet world.

1. Cold builds. The base (mmdebstrap) and both images are built as on a machine that never
   built them: an empty cache folder (HOOKSYNC_CACHE, with the Go binaries' folder linked in,
   since building those is not what this measures) and a podman storage of its own
   (CONTAINERS_STORAGE_CONF), so no base, layer or image is reused. Prints each step's time and
   each image's size. `--warm-images` skips this part.
2. The real node (world/node.py) with `k8s/` installed as `make e2e` installs it
   (world/e2e.py): the receiver pods' start-to-Ready time, from each pod's own status (its
   creationTimestamp to its Ready condition's lastTransitionTime), then `--runs` pushes of the
   demo app, one after another, each timed from the webhook to the commit's final status at
   the GitHub stand-in and taken apart step by step as bench/pushpath_bench.py does it: the
   Jobs, their pods and the app's ConfigMap watched, the Job pod's log, the receiver pods' logs
   (the leader's says when it learnt of the Job's end) and the stand-in's record of statuses.
   Each push changes only the ConfigMap `web`'s greeting; the change is live when it shows.
3. The same pushes of the same app in the process-kubelet world (world/stack.py: the receiver
   as a process, Jobs under the process kubelet), in the same run, taken apart the same way.

Needs root, podman, runc, mmdebstrap, containerd and the CNI plugins (as `make e2e`); without
them it says why and measures nothing.

    .venv/bin/python -m bench.node_bench [--runs 10] [--warm-images]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from bench.figures import median, ratio
from bench.pushpath_bench import Push, PushPath, breakdown, job_watches, push_once
from world import e2e
from world.cluster import LocalCluster
from world.images import build_all, cache_root, podman_available
from world.node import PAUSE_IMAGE, RealCluster, ensure_node_tools
from world.stack import DeliveryStack

# The demo app's ConfigMap: every push changes its greeting, and nothing else.
LIVE_CONFIGMAP, LIVE_KEY = "web", "greeting"


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


def receiver_pod_logs(api: client.ApiClient) -> list[str]:
    """The log of every receiver pod on the node, read through the API."""
    core = client.CoreV1Api(api)
    pods = core.list_namespaced_pod(
        e2e.NAMESPACE, label_selector=e2e.RECEIVER_LABEL, _request_timeout=10
    )
    logs: list[str] = []
    for pod in pods.items:
        if pod.metadata is None or pod.metadata.name is None:
            continue
        # A pod still starting or already gone has no log to give; the others are enough.
        with contextlib.suppress(ApiException):
            logs.append(
                str(
                    core.read_namespaced_pod_log(
                        pod.metadata.name, e2e.NAMESPACE, _request_timeout=10
                    )
                )
            )
    return logs


def taken_apart_pushes(stack: DeliveryStack, path: PushPath, runs: int, label: str) -> list[Push]:
    """One push that creates the app (not measured), then `runs` pushes one after another, each
    changing the app's greeting, taken apart step by step."""
    app = _app(PAUSE_IMAGE)
    before = main_head(stack)
    pushes: list[Push] = []
    with job_watches(path) as watches:
        for run in range(-1, runs):
            greeting = f"{label}-warm" if run < 0 else f"{label}-{run}"
            push = push_once(
                stack, path, watches, app(greeting), greeting, before=before, timeout=240
            )
            before = push.sha
            if run < 0:
                continue
            pushes.append(push)
            print(
                f"  {label} push {run + 1}: live {push.span('post', 'live'):.2f} s, "
                f"status {push.span('post', 'status'):.2f} s",
                flush=True,
            )
    return pushes


def _app(image: str) -> Callable[[str], dict[str, str | None]]:
    """The demo app with a given greeting: each push changes its ConfigMap only."""
    return lambda greeting: e2e.app_files(greeting, image=image)


def real_node(runs: int) -> tuple[list[float], list[Push]]:
    """(receiver pods' start-to-Ready seconds, the pushes taken apart) on the real node."""
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
            path = PushPath(
                api=stack.api,
                jobs_namespace=stack.jobs_namespace,
                target_namespace=stack.target_namespace,
                live_configmap=LIVE_CONFIGMAP,
                live_key=LIVE_KEY,
                receiver_logs=lambda: receiver_pod_logs(stack.api),
                status_calls=lambda: stack.host.calls,
            )
            pushes = taken_apart_pushes(stack, path, runs, "node")
        finally:
            stack.stop()
            relays.stop()
    return ready, pushes


def process_kubelet(runs: int) -> list[Push]:
    """The same pushes in the process-kubelet world, taken apart."""
    with (
        tempfile.TemporaryDirectory(prefix="hooksync-node-bench-") as folder,
        LocalCluster() as cluster,
    ):
        # As the node scenario configures it (world/e2e.py), so both worlds wait alike.
        stack = DeliveryStack(cluster, Path(folder), settings={"burstQuietSeconds": 1})
        try:
            stack.start()
            path = PushPath.of(stack, LIVE_CONFIGMAP, LIVE_KEY)
            return taken_apart_pushes(stack, path, runs, "process")
        finally:
            stack.stop()


def to_status(pushes: list[Push]) -> list[float]:
    """Seconds from each push's webhook to its final status at the Git host."""
    return [s for p in pushes if not math.isnan(s := p.span("post", "status"))]


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
    load_before = os.getloadavg()
    ready, node_pushes = real_node(args.runs)
    print("\nthe process-kubelet world: the same app, the same pushes", flush=True)
    process_pushes = process_kubelet(args.runs)
    load_after = os.getloadavg()

    live = f"live: ConfigMap {LIVE_CONFIGMAP}'s {LIVE_KEY} seen changed"
    print(
        f"\npush path, real node (pods, containerd), {len(node_pushes)} pushes of the demo app, "
        f"each changing its greeting; {live}"
    )
    print(breakdown(node_pushes))
    print(
        f"\npush path, process kubelet, {len(process_pushes)} pushes of the demo app, "
        f"the same changes; {live}"
    )
    print(breakdown(process_pushes))

    node, process = to_status(node_pushes), to_status(process_pushes)
    print(
        "\nreceiver pods, creation to Ready (their own status times): "
        + ", ".join(f"{s:.0f} s" for s in ready)
    )
    print(
        f"push -> final status at the Git host, {args.runs} pushes of the demo app one after "
        "another"
    )
    print(f"{'':<32} {'median':>8} {'worst':>8}   runs")
    for label, values in (("real node (pods, containerd)", node), ("process kubelet", process)):
        print(
            f"{label:<32} {median(values):7.2f}s {max(values, default=math.nan):7.2f}s   "
            + " ".join(f"{s:.2f}" for s in values)
        )
    print(f"ratio real node / process kubelet: median {ratio(median(node), median(process))}")
    print(
        f"load average (1, 5, 15 min): before {' '.join(f'{x:.2f}' for x in load_before)}, "
        f"after {' '.join(f'{x:.2f}' for x in load_after)}; {os.cpu_count()} cores"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
