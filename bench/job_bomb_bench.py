"""The Job's peak memory on a YAML bomb by bytes: 9 KB of YAML, 1 KB scalars, ~1 GB expanded.

Runs `hooksync-job apply` (a subprocess, as a Job runs it) against the local control plane,
once with the bomb as a plain manifest and once as a kustomize resource, and reads each run's
peak RSS (kustomize and git included) from wait4. `--checkout DIR` runs the jobimage of another
checkout (an older commit, say), for a before/after. Goal: every run ends with exit 2 (refused,
not retried) and stays under the Job's 512 MiB memory limit.

    .venv/bin/python -m bench.job_bomb_bench [--checkout DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from kubernetes import client, config

from world.cluster import LocalCluster
from world.gitserver import GitServer
from world.hostile import bytes_bomb
from world.stack import POD_SECURITY_BASELINE

TOKEN = "bench-bomb-token"
LIMIT_KIB = 512 * 1024
CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n"
CASES = {
    "plain": {"deploy/config.yaml": CONFIGMAP, "deploy/bomb.yaml": bytes_bomb()},
    "kustomize": {
        "deploy/kustomization.yaml": "resources: [config.yaml, bomb.yaml]\n",
        "deploy/config.yaml": CONFIGMAP,
        "deploy/bomb.yaml": bytes_bomb(),
    },
}


def run_job(checkout: Path, argv: list[str], env: dict[str, str]) -> tuple[int, int, str]:
    """(exit code, peak RSS in KiB, last line of output) of one `hooksync-job` run."""
    process = subprocess.Popen(
        [sys.executable, "-m", "jobimage.cli", *argv],
        cwd=checkout,
        env=env | {"PYTHONPATH": str(checkout)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    lines = [line for line in output.splitlines() if line.strip()]
    return process.returncode, usage.ru_maxrss, (lines[-1] if lines else "")[:300]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args(argv)
    failed = False
    with tempfile.TemporaryDirectory() as folder, LocalCluster() as cluster:
        assert cluster.control_plane.bin_dir is not None
        api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HOOKSYNC_", "KUBE"))}
        env["PATH"] = os.pathsep.join([str(cluster.control_plane.bin_dir), env["PATH"]])
        env |= {"KUBECONFIG": str(cluster.kubeconfig), "HOOKSYNC_GIT_TOKEN": TOKEN}
        with GitServer(Path(folder) / "git", token=TOKEN) as git:
            for case, files in CASES.items():
                namespace = f"bomb-{uuid.uuid4().hex[:8]}"
                metadata = client.V1ObjectMeta(name=namespace, labels=POD_SECURITY_BASELINE)
                client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=metadata))
                repo = git.create_repo(namespace)
                repo.commit(files, case)
                job_argv = ["apply", "--target", namespace, "--clone-url", repo.url]
                job_argv += ["--branch", "main", "--path", "deploy", "--namespace", namespace]
                code, peak, last = run_job(args.checkout, job_argv, env)
                ok = code == 2 and peak < LIMIT_KIB
                failed |= not ok
                verdict = "ok" if ok else "GOAL MISSED"
                print(f"{case:10} exit {code}  peak RSS {peak / 1024:8.1f} MiB  {verdict}")
                print(f"{'':10} {last}")
        api.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
