"""`make demo`: start the local cluster, show that it works, and stop it again."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.world.cluster import LocalCluster
from tests.world.controlplane import binaries_dir


def main() -> int:
    started = time.monotonic()
    print("starting etcd, kube-apiserver, kube-controller-manager and the process kubelet ...")
    with LocalCluster() as cluster:
        print(f"ready in {time.monotonic() - started:.1f}s")
        print(f"  export KUBECONFIG={cluster.kubeconfig}")
        kubectl = str(binaries_dir(build=False) / "kubectl")
        result = subprocess.run(
            [kubectl, "--kubeconfig", str(cluster.kubeconfig), "get", "nodes,namespaces"],
            capture_output=True,
            text=True,
            check=False,
        )
        print(result.stdout or result.stderr)
        ok = result.returncode == 0 and "hooksync-local-node" in result.stdout
    print("stopped; run `hack/local-cluster up --dir DIR` to keep a cluster running")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
