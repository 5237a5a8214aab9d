"""Benchmark of the converge engine against `kubectl apply --server-side`, on 300 objects.

Starts the local cluster and a Git server, commits 100 ConfigMaps, 100 Services and 100
Deployments, then times (median of 3) a first `hooksync-job apply` into a clean namespace, a
no-op `resync` (fetch included), a first `kubectl apply --server-side` into a clean namespace and
a kubectl re-apply with nothing changed. Goals: the first apply is at most as slow as kubectl's,
and a no-op resync of 300 objects takes under 2 s.

    .venv/bin/python -m bench.converge_bench
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml
from kubernetes import client, config

from world.cluster import LocalCluster
from world.gitserver import GitServer
from world.rollouts import RolloutStandIn

PER_KIND = 100
REPEATS = 3
TOKEN = "bench-git-token"
PATH_IN_REPO = "deploy"
NOOP_GOAL_SECONDS = 2.0


def manifests(per_kind: int = PER_KIND) -> dict[str, str]:
    """One file per object: `per_kind` ConfigMaps, Services and Deployments."""
    files: dict[str, str] = {}
    for i in range(per_kind):
        name = f"app-{i:03d}"
        labels = {"app": name}
        files[f"{name}-config.yaml"] = yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name},
                "data": {"index": str(i), "greeting": "hello", "mode": "benchmark"},
            }
        )
        files[f"{name}-service.yaml"] = yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name},
                "spec": {
                    # Headless: the local Service CIDR is a /24, too small for 600 cluster IPs.
                    "clusterIP": "None",
                    "selector": labels,
                    "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
                },
            }
        )
        files[f"{name}-deployment.yaml"] = yaml.safe_dump(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "containers": [
                                {
                                    "name": "web",
                                    "image": "registry.local/web:1",
                                    "envFrom": [{"configMapRef": {"name": name}}],
                                }
                            ]
                        },
                    },
                },
            }
        )
    return files


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Wall time of one command, which must succeed; and its stdout."""
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(
            f"{' '.join(argv[:4])}... exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )
    return elapsed, done.stdout


def new_namespace(api: client.ApiClient) -> str:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name))
    )
    return name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.converge_bench", description=__doc__)
    parser.add_argument("--per-kind", type=int, default=PER_KIND, help="objects of each kind")
    parser.add_argument("--repeats", type=int, default=REPEATS)
    args = parser.parse_args(argv)
    files = manifests(args.per_kind)
    total = len(files)

    with tempfile.TemporaryDirectory(prefix="hooksync-bench-") as scratch:
        root = Path(scratch)
        print("starting the local cluster and the Git server...", flush=True)
        with LocalCluster() as cluster, GitServer(root / "git", token=TOKEN) as git:
            bin_dir = cluster.control_plane.bin_dir
            assert bin_dir is not None
            api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
            repo = git.create_repo("bench")
            repo.commit({f"{PATH_IN_REPO}/{name}": text for name, text in files.items()}, "300")
            manifest_dir = root / "manifests"
            manifest_dir.mkdir()
            for name, text in files.items():
                (manifest_dir / name).write_text(text)
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("HOOKSYNC_")},
                "KUBECONFIG": str(cluster.kubeconfig),
                "HOOKSYNC_GIT_TOKEN": TOKEN,
                "PATH": os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")]),
            }
            kubectl = str(bin_dir / "kubectl")

            def engine(mode: str, namespace: str) -> list[str]:
                return [
                    sys.executable, "-m", "jobimage.cli", mode,
                    "--target", "bench", "--clone-url", repo.url, "--branch", "main",
                    "--path", PATH_IN_REPO, "--namespace", namespace, "--timeout", "300",
                ]  # fmt: skip

            engine_namespaces: list[str] = []

            def engine_apply() -> float:
                namespace = new_namespace(api)
                engine_namespaces.append(namespace)
                seconds, out = timed(engine("apply", namespace), env)
                summary = json.loads(out.splitlines()[-1])
                assert summary["counts"]["created"] == total, summary
                return seconds

            def engine_resync() -> float:
                seconds, out = timed(engine("resync", engine_namespaces[0]), env)
                summary = json.loads(out.splitlines()[-1])
                assert summary["result"] == "no-op", summary
                return seconds

            kubectl_namespaces: list[str] = []

            def kubectl_apply() -> float:
                namespace = new_namespace(api)
                kubectl_namespaces.append(namespace)
                argv = [kubectl, "apply", "--server-side", "-n", namespace, "-f", str(manifest_dir)]
                return timed(argv, env)[0]

            def kubectl_reapply() -> float:
                namespace = kubectl_namespaces[0]
                argv = [kubectl, "apply", "--server-side", "-n", namespace, "-f", str(manifest_dir)]
                return timed(argv, env)[0]

            measures = {
                "engine_apply": engine_apply,
                "kubectl_apply": kubectl_apply,
                "engine_noop": engine_resync,
                "kubectl_noop": kubectl_reapply,
            }
            results: dict[str, list[float]] = {key: [] for key in measures}
            with RolloutStandIn(api, interval=0.1, workers=8):
                print(f"measuring ({args.repeats} rounds, {total} objects)...", flush=True)
                # Rounds interleave engine and kubectl, so a busy moment on the machine hurts
                # both sides alike rather than one whole column.
                for _ in range(args.repeats):
                    for key, measure in measures.items():
                        results[key].append(measure())
            api.close()

    print(report(results, total))
    return 0


def report(results: dict[str, list[float]], total: int) -> str:
    median = {key: statistics.median(values) for key, values in results.items()}

    def row(label: str, key: str) -> str:
        runs = " ".join(f"{value:.2f}" for value in results[key])
        return f"{label:<44} {median[key]:>7.2f}s   ({runs})"

    first_ratio = median["engine_apply"] / median["kubectl_apply"]
    noop_ratio = median["engine_noop"] / median["kubectl_noop"]
    first_ok = median["engine_apply"] <= median["kubectl_apply"]
    noop_ok = median["engine_noop"] < NOOP_GOAL_SECONDS
    lines = [
        f"{'measurement (' + str(total) + ' objects)':<44} {'median':>8}   runs",
        row("hooksync-job apply, clean namespace", "engine_apply"),
        row("kubectl apply --server-side, clean namespace", "kubectl_apply"),
        row("hooksync-job resync, nothing changed", "engine_noop"),
        row("kubectl apply --server-side, nothing changed", "kubectl_noop"),
        f"{'ratio engine/kubectl, first apply':<44} {first_ratio:>8.2f}",
        f"{'ratio engine/kubectl, no-op':<44} {noop_ratio:>8.2f}",
        f"goal: first apply at most as slow as kubectl: {'met' if first_ok else 'MISSED'}",
        f"goal: no-op resync under {NOOP_GOAL_SECONDS:.0f} s: {'met' if noop_ok else 'MISSED'}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
