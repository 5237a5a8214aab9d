"""The cheap no-op resync against the full one, on the converge bench's 300 objects.

Applies 100 ConfigMaps, Services and Deployments once, settles (a resync that records what the
controllers left), then alternates, `--repeats` times each: a resync at the unchanged head that
takes the cheap path (`git ls-remote`, one list per kind, fingerprints compared: nothing fetched),
and a resync that must take the full path (fetch, render, validate, observe, compare), made so by
removing the fingerprints from the inventory first, as an inventory written before them reads.
Prints wall and CPU time of the `hooksync-job` process and the ratio full/cheap.

    .venv/bin/python -m bench.resync_bench [--per-kind 100] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kubernetes import client, config

from bench.converge_bench import PATH_IN_REPO, PER_KIND, TOKEN, manifests, new_namespace
from hooksync.inventory import DATA_KEY
from hooksync.names import parent_name
from world.cluster import LocalCluster
from world.gitserver import GitServer
from world.rollouts import RolloutStandIn

TARGET = "bench"


def run_job(argv: list[str], env: dict[str, str]) -> tuple[float, float, dict[str, object]]:
    """Wall and CPU seconds of one `hooksync-job` run, and its summary."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"hooksync-job exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return wall, cpu, json.loads(done.stdout.splitlines()[-1])


def forget_fingerprints(api: client.ApiClient, namespace: str) -> None:
    """Rewrite the inventory without fingerprints, so the next resync runs in full."""
    core = client.CoreV1Api(api)
    parent = core.read_namespaced_config_map(parent_name(TARGET), namespace)
    document = json.loads(parent.data[DATA_KEY])
    document.pop("fingerprints", None)
    data = {DATA_KEY: json.dumps(document, separators=(",", ":"), sort_keys=True)}
    core.patch_namespaced_config_map(parent_name(TARGET), namespace, {"data": data})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.resync_bench", description=__doc__)
    parser.add_argument("--per-kind", type=int, default=PER_KIND, help="objects of each kind")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    files = manifests(args.per_kind)
    results: dict[str, list[tuple[float, float]]] = {"cheap": [], "full": []}

    with tempfile.TemporaryDirectory(prefix="hooksync-bench-") as scratch:
        root = Path(scratch)
        print("starting the local cluster and the Git server...", flush=True)
        with LocalCluster() as cluster, GitServer(root / "git", token=TOKEN) as git:
            bin_dir = cluster.control_plane.bin_dir
            assert bin_dir is not None
            api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
            repo = git.create_repo(TARGET)
            repo.commit({f"{PATH_IN_REPO}/{name}": text for name, text in files.items()}, "all")
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("HOOKSYNC_")},
                "KUBECONFIG": str(cluster.kubeconfig),
                "HOOKSYNC_GIT_TOKEN": TOKEN,
                "PATH": os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")]),
            }
            namespace = new_namespace(api)

            def job(mode: str) -> list[str]:
                return [
                    sys.executable, "-m", "jobimage.cli", mode,
                    "--target", TARGET, "--clone-url", repo.url, "--branch", "main",
                    "--path", PATH_IN_REPO, "--namespace", namespace, "--timeout", "300",
                    "--allow-unenforced-pod-security",
                ]  # fmt: skip

            with RolloutStandIn(api, interval=0.1, workers=8):
                print(f"applying {len(files)} objects, then settling...", flush=True)
                run_job(job("apply"), env)
                run_job(job("resync"), env)
                print(f"measuring ({args.repeats} rounds)...", flush=True)
                for _ in range(args.repeats):
                    wall, cpu, summary = run_job(job("resync"), env)
                    assert "nothing fetched" in str(summary["message"]), summary
                    results["cheap"].append((wall, cpu))
                    forget_fingerprints(api, namespace)
                    wall, cpu, summary = run_job(job("resync"), env)
                    assert summary["result"] == "no-op", summary
                    assert "nothing fetched" not in str(summary["message"]), summary
                    results["full"].append((wall, cpu))
            api.close()

    print(report(results, len(files)))
    return 0


def report(results: dict[str, list[tuple[float, float]]], total: int) -> str:
    wall = {key: statistics.median(w for w, _ in runs) for key, runs in results.items()}
    cpu = {key: statistics.median(c for _, c in runs) for key, runs in results.items()}

    def row(label: str, key: str) -> str:
        runs = " ".join(f"{w:.2f}" for w, _ in results[key])
        return f"{label:<46} {wall[key]:>7.2f}s {cpu[key]:>7.2f}s   ({runs})"

    return "\n".join(
        [
            f"{'no-op resync, ' + str(total) + ' objects':<46} {'wall':>8} {'CPU':>8}   runs",
            row("cheap: ls-remote, list, fingerprints", "cheap"),
            row("full: fetch, render, observe, compare", "full"),
            f"ratio full/cheap: wall {wall['full'] / wall['cheap']:.2f}, "
            f"CPU {cpu['full'] / cpu['cheap']:.2f}",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
