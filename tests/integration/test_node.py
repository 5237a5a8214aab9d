"""The real node (world/node.py): kubelet, kube-proxy and containerd in a namespace of their own.

One pod from the job image proves the parts the process kubelet cannot: a container started
by runc as uid 65532 with a read-only root, a pod address from the CNI bridge, the API server
reached through the `kubernetes` Service IP by in-cluster config (kube-proxy), and logs and
exec through the kubelet's own serving certificate. Stopping the node must leave no process,
mount, cgroup, network namespace or iptables rule behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from world.images import JOB_IMAGE, build_all, podman_available
from world.netns import NETNS_ROOT
from world.node import NODE_NAME, RealCluster, ensure_node_tools, leftovers

pytestmark = [pytest.mark.containers, pytest.mark.slow, pytest.mark.timeout(1800)]

_MISSING = podman_available() or ensure_node_tools()

# In-cluster config by hand: the Service address from the environment, the mounted token and CA.
IN_CLUSTER_GET = """
import os, ssl, urllib.request
root = "/var/run/secrets/kubernetes.io/serviceaccount"
token = open(root + "/token").read()
context = ssl.create_default_context(cafile=root + "/ca.crt")
host = os.environ["KUBERNETES_SERVICE_HOST"]
request = urllib.request.Request(
    "https://" + host + "/version",
    headers={"Authorization": "Bearer " + token},
)
with urllib.request.urlopen(request, context=context, timeout=20) as answer:
    print("in-cluster", host, answer.status)
try:
    open("/probe", "w")
    print("root writable")
except OSError:
    print("root read-only")
import time
time.sleep(3600)
"""

POD = f"""apiVersion: v1
kind: Pod
metadata: {{name: probe, namespace: default}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    seccompProfile: {{type: RuntimeDefault}}
  containers:
  - name: probe
    image: {JOB_IMAGE}
    imagePullPolicy: Never
    command: ["python3", "-c", {json.dumps(IN_CLUSTER_GET)}]
    securityContext:
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities: {{drop: [ALL]}}
"""


@pytest.fixture(scope="module")
def node() -> Iterator[RealCluster]:
    if _MISSING:
        if os.environ.get("HOOKSYNC_REQUIRE_CONTAINERS") == "1":
            pytest.fail(f"a real node cannot run here: {_MISSING}")
        pytest.skip(f"a real node cannot run here: {_MISSING}")
    images = build_all()
    cluster = RealCluster(images=[images.job.name])
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def kubectl(cluster: RealCluster, *args: str, stdin: str | None = None) -> str:
    assert cluster.control_plane is not None and cluster.control_plane.bin_dir is not None
    result = subprocess.run(
        [
            str(cluster.control_plane.bin_dir / "kubectl"),
            "--kubeconfig",
            str(cluster.kubeconfig),
            *args,
        ],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    return result.stdout + result.stderr


def test_a_pod_runs_for_real_and_reaches_the_api_through_the_service(node: RealCluster) -> None:
    assert "Ready" in kubectl(node, "get", "node", NODE_NAME)
    assert "created" in kubectl(node, "apply", "-f", "-", stdin=POD)
    deadline = time.monotonic() + 180
    logs = ""
    while time.monotonic() < deadline and "root " not in logs and "Traceback" not in logs:
        time.sleep(1)
        logs = kubectl(node, "logs", "probe")
    assert "in-cluster 10.0.0.1 200" in logs, logs + kubectl(node, "describe", "pod", "probe")
    assert "root read-only" in logs, logs
    pod_ip = kubectl(node, "get", "pod", "probe", "-o", "jsonpath={.status.podIP}")
    assert pod_ip.startswith("10.244.0."), pod_ip
    # exec goes API server -> kubelet (its serving certificate) -> containerd -> runc.
    assert kubectl(node, "exec", "probe", "--", "id", "-u").strip() == "65532"
    kubectl(node, "delete", "pod", "probe", "--wait=true", "--timeout=60s")


def test_stopping_leaves_nothing_behind() -> None:
    if _MISSING:
        pytest.skip(f"a real node cannot run here: {_MISSING}")
    cluster = RealCluster()
    cluster.start()
    assert cluster.node is not None
    directory = cluster.node.directory
    netns = cluster.network.name
    cgroup = cluster.node.cgroup_name
    assert leftovers(cluster), "a running node must show up as left behind"
    cluster.stop()

    assert leftovers(cluster) == []
    # The same, spelled out, so the check above cannot go blind.
    assert not (NETNS_ROOT / netns).exists()
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(directory) not in mounts
    assert not directory.exists()
    assert not any(Path("/sys/fs/cgroup").glob(f"*/{cgroup}"))
    leftover = subprocess.run(
        ["pgrep", "-af", str(directory)], capture_output=True, text=True, check=False
    ).stdout
    assert not leftover, leftover
    rules = subprocess.run(
        ["iptables", "-w", "-t", "nat", "-S", "PREROUTING"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    assert cluster.network.host_link not in rules
