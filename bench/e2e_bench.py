"""End to end: push -> Job -> converge of a 20-object app -> success status on the commit.

DeliveryStack: Git over HTTP, the GitHub stand-in, the receiver process with its leader, Jobs
running `hooksync-job` under the process kubelet as the target's ServiceAccount, and the rollout
stand-in that makes Deployments ready. The app: 7 ConfigMaps, 7 headless Services and 6
Deployments. Each run commits a change to every object (ConfigMap data, a Service annotation,
the Deployments' pod template, so each rolls out), sends the push webhook and times until the
commit's final status is there, which must be success.

Baseline, in the same run and interleaved with it: the same kind of change converged by running
`hooksync-job apply` directly (a subprocess with the admin kubeconfig, no webhook, no Job, no
status). The ratio is what the delivery path adds to the converge itself. Goal: median under
5 s.

    .venv/bin/python -m bench.e2e_bench [--runs 10]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml
from kubernetes import client

from bench.figures import goal, median, ratio
from world.cluster import LocalCluster
from world.stack import DeliveryStack

CONFIGMAPS, SERVICES, DEPLOYMENTS = 7, 7, 6
GOAL_MEDIAN_SECONDS = 5.0
RUN_TIMEOUT = 120.0


def app(revision: str) -> dict[str, str | None]:
    """20 objects, every one of which differs from one `revision` to the next."""
    files: dict[str, str | None] = {}
    for i in range(CONFIGMAPS):
        files[f"deploy/config-{i}.yaml"] = yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"config-{i}"},
                "data": {"revision": revision, "index": str(i)},
            }
        )
    for i in range(SERVICES):
        files[f"deploy/service-{i}.yaml"] = yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": f"service-{i}", "annotations": {"revision": revision}},
                # Headless: the local Service range (a /24) is small.
                "spec": {
                    "clusterIP": "None",
                    "selector": {"app": f"web-{i % DEPLOYMENTS}"},
                    "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
                },
            }
        )
    for i in range(DEPLOYMENTS):
        labels = {"app": f"web-{i}"}
        files[f"deploy/web-{i}.yaml"] = yaml.safe_dump(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": f"web-{i}"},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels, "annotations": {"revision": revision}},
                        "spec": {
                            "containers": [
                                {
                                    "name": "web",
                                    "image": "registry.local/web:1",
                                    "envFrom": [{"configMapRef": {"name": f"config-{i}"}}],
                                }
                            ]
                        },
                    },
                },
            }
        )
    return files


def revision_live(stack: DeliveryStack, revision: str) -> bool:
    item = client.CoreV1Api(stack.api).read_namespaced_config_map(
        f"config-{CONFIGMAPS - 1}", stack.target_namespace
    )
    return (item.data or {}).get("revision") == revision


def through_webhook(stack: DeliveryStack, revision: str) -> tuple[float, str]:
    """Commit, push, and time until the commit's final status; (seconds, description)."""
    sha = stack.commit(app(revision), f"revision {revision}")
    started = time.perf_counter()
    answer = stack.push_event(sha)
    if answer.status_code != 202:
        raise SystemExit(f"push answered {answer.status_code}: {answer.text}")
    deadline = time.monotonic() + RUN_TIMEOUT
    while (status := stack.final_status(sha)) is None:
        if time.monotonic() > deadline:
            raise SystemExit(f"no final status on {sha[:7]} after {RUN_TIMEOUT:.0f} s")
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    if status.get("state") != "success":
        raise SystemExit(f"the deploy of {sha[:7]} failed: {status.get('description')}")
    if not revision_live(stack, revision):
        raise SystemExit(f"success on {sha[:7]}, but revision {revision} is not live")
    return elapsed, str(status.get("description"))


def directly(stack: DeliveryStack, cluster: LocalCluster, revision: str) -> tuple[float, str]:
    """Commit, then time `hooksync-job apply` run by hand; (seconds, its summary's counts)."""
    stack.commit(app(revision), f"revision {revision} (direct)")
    bin_dir = cluster.control_plane.bin_dir
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKSYNC_")}
    env.update(
        KUBECONFIG=str(cluster.kubeconfig),
        HOOKSYNC_GIT_TOKEN=stack.git_token,
        PATH=os.pathsep.join([str(Path(sys.executable).parent), str(bin_dir), env["PATH"]]),
    )
    argv = [
        str(Path(sys.executable).parent / "hooksync-job"), "apply",
        "--target", stack.target, "--clone-url", stack.git.url(stack.repo_name),
        "--branch", "main", "--path", "deploy", "--namespace", stack.target_namespace,
        "--prune", "--timeout", str(stack.timeout_seconds),
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False
    )
    elapsed = time.perf_counter() - started
    lines = done.stdout.strip().splitlines()
    summary = json.loads(lines[-1]) if lines else {}
    if done.returncode != 0 or summary.get("result") != "success":
        raise SystemExit(f"hooksync-job apply exited {done.returncode}: {done.stdout[-2000:]}"
                         f"{done.stderr[-2000:]}")  # fmt: skip
    if not revision_live(stack, revision):
        raise SystemExit(f"hooksync-job apply succeeded, but revision {revision} is not live")
    return elapsed, json.dumps(summary.get("counts"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench.e2e_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args(argv)
    webhook: list[float] = []
    direct: list[float] = []
    described = counted = ""

    with tempfile.TemporaryDirectory(prefix="hooksync-bench-") as scratch:
        print("starting the local cluster and the delivery stack...", flush=True)
        with LocalCluster() as cluster:
            stack = DeliveryStack(cluster, Path(scratch) / "stack")
            try:
                stack.start()
                tag = uuid.uuid4().hex[:6]
                # Warm-up, not measured: creates the 20 objects, then one run of each kind.
                through_webhook(stack, f"{tag}-create")
                through_webhook(stack, f"{tag}-warm")
                directly(stack, cluster, f"{tag}-warm-direct")
                print(f"measuring {args.runs} runs of each, interleaved...", flush=True)
                for run in range(args.runs):
                    seconds, described = through_webhook(stack, f"{tag}-{run}")
                    webhook.append(seconds)
                    seconds, counted = directly(stack, cluster, f"{tag}-{run}-direct")
                    direct.append(seconds)
                    print(f"  run {run + 1}: push -> success {webhook[-1]:.2f} s, "
                          f"hooksync-job apply {direct[-1]:.2f} s", flush=True)  # fmt: skip
            finally:
                stack.stop()

    ours, baseline = median(webhook), median(direct)
    print(f"\ne2e: push -> Job -> converge of {CONFIGMAPS + SERVICES + DEPLOYMENTS} objects "
          f"({CONFIGMAPS} ConfigMaps, {SERVICES} Services, {DEPLOYMENTS} Deployments) -> "
          "success status; every object changed each run")  # fmt: skip
    print(f"{'':<40} {'median':>8} {'worst':>8}   runs")
    print(f"{'push -> success status':<40} {ours:7.2f}s {max(webhook):7.2f}s   "
          f"{' '.join(f'{s:.2f}' for s in webhook)}")  # fmt: skip
    print(f"{'hooksync-job apply run directly':<40} {baseline:7.2f}s {max(direct):7.2f}s   "
          f"{' '.join(f'{s:.2f}' for s in direct)}")  # fmt: skip
    print(f"last status: {described!r}; last direct counts: {counted}")
    print(f"ratio push-to-status / direct apply: median {ratio(ours, baseline)}, "
          f"worst {ratio(max(webhook), max(direct))}")  # fmt: skip
    print(goal(f"median under {GOAL_MEDIAN_SECONDS:.0f} s (median {ours:.2f} s)",
               ours < GOAL_MEDIAN_SECONDS))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
