"""A real local control plane: etcd, kube-apiserver and kube-controller-manager as processes.

Binaries come from `hack/build-binaries` (built from Go modules, cached outside the repository).
Everything listens on free loopback ports; `stop()` leaves no process and no temp folder behind.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from world.pki import write_pki

REPO_ROOT = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = REPO_ROOT / "hack" / "build-binaries"

CONTROLLERS = (
    "job-controller",
    "cronjob-controller",
    "ttl-after-finished-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
)

ADMIN_USER = "hooksync-admin"


class ControlPlaneError(RuntimeError):
    """A component failed to build, start or become ready; the message says which and why."""


def binaries_dir(build: bool = True) -> Path:
    """The cached bin folder; builds missing binaries first when `build` is true."""
    args = [str(BUILD_SCRIPT)] if build else [str(BUILD_SCRIPT), "--print"]
    result = subprocess.run(args, stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        raise ControlPlaneError(f"{BUILD_SCRIPT} failed with exit code {result.returncode}")
    return Path(result.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    # A test run that is killed must not leave an API server behind.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


@dataclass
class _Component:
    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    log_file: IO[bytes] | None = None

    def start(self) -> None:
        self.log_file = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
            start_new_session=True,
        )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager with RBAC, token auth and SA signing."""

    def __init__(self, directory: Path | None = None, bin_dir: Path | None = None) -> None:
        self._own_directory = directory is None
        self.directory = (
            Path(tempfile.mkdtemp(prefix="hooksync-cp-")) if directory is None else directory
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        self.bin_dir = bin_dir
        self.admin_token = secrets.token_urlsafe(32)
        self.etcd_port = free_port()
        self.etcd_peer_port = free_port()
        self.api_port = free_port()
        self.pki: dict[str, Path] = {}
        self.components: dict[str, _Component] = {}

    # -- addresses and credentials -------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def ca_file(self) -> Path:
        return self.pki["ca.crt"]

    @property
    def kubeconfig(self) -> Path:
        return self.directory / "kubeconfig"

    def write_kubeconfig(self, path: Path, token: str, user: str = ADMIN_USER) -> Path:
        """A kubeconfig for this API server that authenticates with `token`."""
        path.write_text(
            "apiVersion: v1\nkind: Config\n"
            "clusters:\n- name: local\n  cluster:\n"
            f"    server: {self.api_url}\n    certificate-authority: {self.ca_file}\n"
            f"users:\n- name: {user}\n  user:\n    token: {token}\n"
            f"contexts:\n- name: local\n  context:\n    cluster: local\n    user: {user}\n"
            "current-context: local\n"
        )
        path.chmod(0o600)
        return path

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float = 90.0) -> None:
        if self.bin_dir is None:
            self.bin_dir = binaries_dir(build=True)
        self.pki = write_pki(self.directory / "pki")
        tokens = self.directory / "tokens.csv"
        tokens.write_text(f'{self.admin_token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n')
        tokens.chmod(0o600)
        self.write_kubeconfig(self.kubeconfig, self.admin_token)
        self.components = {
            "etcd": _Component("etcd", self._etcd_argv(), self.directory / "etcd.log"),
            "kube-apiserver": _Component(
                "kube-apiserver", self._apiserver_argv(tokens), self.directory / "apiserver.log"
            ),
            "kube-controller-manager": _Component(
                "kube-controller-manager",
                self._controller_manager_argv(),
                self.directory / "controller-manager.log",
            ),
        }
        try:
            self.start_component("etcd")
            self._wait_etcd(timeout)
            self.start_component("kube-apiserver")
            self.wait_ready(timeout)
            self.start_component("kube-controller-manager")
            self._wait_default_service_account(timeout)
        except BaseException:
            self.stop()
            raise

    def start_component(self, name: str) -> None:
        self.components[name].start()

    def stop_component(self, name: str) -> None:
        self.components[name].stop()

    def stop(self) -> None:
        for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
            if name in self.components:
                self.components[name].stop()
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- readiness -----------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def _get_ok(self, path: str) -> bool:
        """Whether GET `path` on the API server answers 200 to the admin."""
        request = urllib.request.Request(  # noqa: S310 (an https URL of our own)
            f"{self.api_url}{path}", headers={"Authorization": f"Bearer {self.admin_token}"}
        )
        context = self._ssl_context()
        try:
            with urllib.request.urlopen(request, timeout=2, context=context) as r:  # noqa: S310
                return bool(r.status == 200)
        except OSError:
            return False

    def api_ready(self) -> bool:
        return self._get_ok("/readyz")

    def wait_ready(self, timeout: float = 60.0) -> None:
        self._wait("kube-apiserver", self.api_ready, timeout)

    def _wait_etcd(self, timeout: float) -> None:
        def healthy() -> bool:
            try:
                url = f"http://127.0.0.1:{self.etcd_port}/health"
                with urllib.request.urlopen(url, timeout=2) as r:
                    return b'"health":"true"' in r.read()
            except OSError:
                return False

        self._wait("etcd", healthy, timeout)

    def _wait_default_service_account(self, timeout: float) -> None:
        # The serviceaccount controller creating `default` shows the controller manager works.
        def exists() -> bool:
            return self._get_ok("/api/v1/namespaces/default/serviceaccounts/default")

        self._wait("kube-controller-manager", exists, timeout)

    def _wait(self, name: str, check: object, timeout: float) -> None:
        assert callable(check)
        deadline = time.monotonic() + timeout
        component = self.components[name]
        while time.monotonic() < deadline:
            if not component.running():
                raise ControlPlaneError(
                    f"{name} exited during start-up; its log ends:\n{component.log_tail()}"
                )
            if check():
                return
            time.sleep(0.1)
        raise ControlPlaneError(
            f"{name} not ready after {timeout:.0f}s; its log ends:\n{component.log_tail()}"
        )

    # -- command lines -------------------------------------------------------------------

    def _bin(self, name: str) -> str:
        assert self.bin_dir is not None
        return str(self.bin_dir / name)

    def _etcd_argv(self) -> list[str]:
        client = f"http://127.0.0.1:{self.etcd_port}"
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        return [
            self._bin("etcd"),
            "--name=local",
            f"--data-dir={self.directory / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=local={peer}",
            "--unsafe-no-fsync=true",
            "--quota-backend-bytes=4294967296",
            "--log-level=warn",
        ]

    def _apiserver_argv(self, tokens: Path) -> list[str]:
        pki = self.pki
        return [
            self._bin("kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.api_port}",
            f"--cert-dir={self.directory / 'apiserver-certs'}",
            f"--tls-cert-file={pki['apiserver.crt']}",
            f"--tls-private-key-file={pki['apiserver.key']}",
            f"--client-ca-file={pki['ca.crt']}",
            f"--token-auth-file={tokens}",
            "--authorization-mode=Node,RBAC",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki['sa.pub']}",
            f"--service-account-signing-key-file={pki['sa.key']}",
            "--kubelet-preferred-address-types=InternalIP",
            "--endpoint-reconciler-type=none",
            "--enable-priority-and-fairness=false",
            "--profiling=false",
            "--v=1",
        ]

    def _controller_manager_argv(self) -> list[str]:
        return [
            self._bin("kube-controller-manager"),
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            f"--service-account-private-key-file={self.pki['sa.key']}",
            f"--root-ca-file={self.pki['ca.crt']}",
            f"--controllers={','.join(CONTROLLERS)}",
            "--leader-elect=false",
            "--secure-port=0",
            "--concurrent-job-syncs=10",
            "--concurrent-cron-job-syncs=5",
            "--v=1",
        ]


def run_kubectl(
    control_plane: ControlPlane, *args: str, check: bool = True, input_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the kubectl built beside the control plane against it, as admin."""
    bin_dir = control_plane.bin_dir or binaries_dir()
    env = dict(os.environ, KUBECONFIG=str(control_plane.kubeconfig))
    return subprocess.run(
        [str(bin_dir / "kubectl"), *args],
        input=input_text,
        capture_output=True,
        text=True,
        env=env,
        check=check,
    )
