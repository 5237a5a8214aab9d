"""The local cluster: the control plane plus the process kubelet, started and stopped as one.

`hack/local-cluster up --dir DIR` runs it in the foreground for people and other tools.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import FrameType

from kubernetes import client

from world.controlplane import REPO_ROOT, ControlPlane
from world.kubelet import ProcessKubelet


class LocalCluster:
    """A control plane and a process kubelet whose pods find the project's commands on PATH."""

    def __init__(self, directory: Path | None = None) -> None:
        self.control_plane = ControlPlane(directory)
        self.kubelet: ProcessKubelet | None = None

    @property
    def kubeconfig(self) -> Path:
        return self.control_plane.kubeconfig

    def start(self) -> None:
        self.control_plane.start()
        try:
            self.start_kubelet()
        except BaseException:
            self.control_plane.stop()
            raise

    def start_kubelet(self) -> None:
        cp = self.control_plane
        # Pods run this machine's programs, so the interpreter's bin folder (the project's
        # virtual environment, where `hooksync-job` lives) comes first on their PATH.
        # The job image carries git and kustomize; here they come from the machine and the cache.
        path = os.pathsep.join(
            [str(Path(sys.executable).parent), str(cp.bin_dir), os.environ.get("PATH", "")]
        )
        self.kubelet = ProcessKubelet(
            kubeconfig=cp.kubeconfig,
            api_host="127.0.0.1",
            api_port=cp.api_port,
            ca_file=cp.ca_file,
            serving_cert=cp.pki["kubelet.crt"],
            serving_key=cp.pki["kubelet.key"],
            directory=cp.directory / "kubelet",
            # The checkout's own code, not whatever checkout the environment was installed from.
            extra_env={"PATH": path, "PYTHONPATH": str(REPO_ROOT)},
            preserve_paths=[REPO_ROOT, Path(sys.prefix), Path(str(cp.bin_dir))],
        )
        self.kubelet.start()

    def stop(self) -> None:
        if self.kubelet is not None:
            self.kubelet.stop()
            self.kubelet = None
        self.control_plane.stop()

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def temporary_namespace(
    api: client.ApiClient, prefix: str = "t", labels: Mapping[str, str] | None = None
) -> Iterator[str]:
    """A fresh namespace `<prefix>-<10 hex digits>` with `labels`, deleted (in the background)
    afterwards."""
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(api)
    metadata = client.V1ObjectMeta(name=name, labels=dict(labels or {}))
    core.create_namespace(client.V1Namespace(metadata=metadata))
    try:
        yield name
    finally:
        core.delete_namespace(name, propagation_policy="Background")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hack/local-cluster",
        description="Run etcd, kube-apiserver, kube-controller-manager and the process kubelet "
        "in the foreground; Ctrl-C stops everything.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the local cluster and write DIR/kubeconfig when ready")
    up.add_argument("--dir", required=True, type=Path, help="folder for state and kubeconfig")
    args = parser.parse_args(argv)

    directory: Path = args.dir.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    cluster = LocalCluster(directory / "state")
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    started = time.monotonic()
    cluster.start()
    kubeconfig = directory / "kubeconfig"
    try:
        # Written last, and atomically, so its presence means "ready".
        tmp = directory / ".kubeconfig.tmp"
        tmp.write_text(cluster.kubeconfig.read_text())
        tmp.chmod(0o600)
        tmp.replace(kubeconfig)
        print(
            f"local cluster ready in {time.monotonic() - started:.1f}s\n"
            f"  export KUBECONFIG={kubeconfig}\n"
            f"  API server: {cluster.control_plane.api_url}\n"
            "Ctrl-C stops it.",
            flush=True,
        )
        stopping.wait()
    finally:
        kubeconfig.unlink(missing_ok=True)
        cluster.stop()
        import shutil

        shutil.rmtree(directory / "state", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
