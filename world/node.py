"""A real node: kubelet, kube-proxy and containerd (runc, CNI bridge) for the local control plane.

Everything runs inside a network namespace of its own (world/netns.py): containerd with runc and
the CNI bridge, host-local and loopback plugins, the kubelet (cgroup v1 layout, cgroupfs driver,
pods under a cgroup root of their own), and kube-proxy in iptables mode, so pods reach the API
server through the `kubernetes` Service IP as in any cluster. The node has its own client
certificates (system:node:NAME, system:kube-proxy) signed by the control plane's CA, and a
serving certificate for its node address, so logs, exec and port-forward work.

`NodeControlPlane` is the local control plane plus what pods need of it: kube-scheduler, the
Deployment, ReplicaSet and EndpointSlice controllers, and the API server advertised at the
host-side address of the node's link (its `kubernetes` EndpointSlice then points there).

Images are imported into containerd's k8s.io namespace under the names the manifests use; the
sandbox ("pause") image is a small static Go program built here. `stop()` deletes the pods it
can, then kills what is left in the node's cgroups, unmounts everything under its folder and
removes the namespace: no process, mount, network namespace or container stays behind.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import ipaddress
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from world.controlplane import BUILD_SCRIPT, CONTROLLERS, ControlPlane, _Component, binaries_dir
from world.images import PODMAN, cache_root
from world.netns import NETNS_ROOT, NodeNetwork

NODE_NAME = "hooksync-node"
POD_CIDR = "10.244.0.0/24"
SERVICE_IP = "10.0.0.1"
PAUSE_IMAGE = "localhost/hooksync-pause:1.0"
CNI_BIN_DIR = Path("/usr/lib/cni")
CGROUP_ROOT = Path("/sys/fs/cgroup")
KUBELET_PORT = 10250

# What Deployments and Services need beyond the Job controllers the local control plane runs.
NODE_CONTROLLERS = (
    "deployment-controller",
    "replicaset-controller",
    "endpointslice-controller",
    "endpoints-controller",
    "disruption-controller",
    "pod-garbage-collector-controller",
    # Removes the not-ready taint a kubelet registers its node with, once the node is Ready.
    "node-lifecycle-controller",
)

# The sandbox process: waits for TERM or INT and exits 0 (PID 1 has no default handlers).
PAUSE_SOURCE = """package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
"""


class NodeError(RuntimeError):
    """The node could not be built, started or torn down; the message says which part and why."""


def node_binaries() -> Path:
    """The bin folder with kubelet, kube-proxy and kube-scheduler (built if missing)."""
    result = subprocess.run(
        [str(BUILD_SCRIPT), "--node"], stdout=subprocess.PIPE, text=True, check=False
    )
    if result.returncode != 0:
        raise NodeError(f"{BUILD_SCRIPT} --node failed with exit code {result.returncode}")
    return Path(result.stdout.strip().splitlines()[-1])


def _run(argv: list[str], what: str, timeout: float = 600) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
        raise NodeError(f"{what} failed (exit {result.returncode}): {' '.join(argv)}\n{tail}")
    return result.stdout


# -- certificates ---------------------------------------------------------------------------


def _issue(
    ca_cert_path: Path,
    ca_key_path: Path,
    common_name: str,
    organizations: Iterable[str] = (),
    ips: Iterable[str] = (),
    dns: Iterable[str] = (),
    server: bool = False,
) -> tuple[bytes, bytes]:
    """A certificate and key signed by the control plane's CA (client, or serving if `server`)."""
    ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    now = datetime.datetime.now(datetime.UTC)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attributes))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _self_signed_ca(common_name: str) -> tuple[bytes, bytes]:
    """A fresh CA certificate and key (PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _write_pair(directory: Path, name: str, pair: tuple[bytes, bytes]) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    cert.write_bytes(pair[0])
    key.write_bytes(pair[1])
    key.chmod(0o600)
    return cert, key


# -- the control plane, as a real node needs it ------------------------------------------------


class NodeControlPlane(ControlPlane):
    """The local control plane plus kube-scheduler and the controllers Deployments need.

    The API server still listens on 127.0.0.1 only; it advertises `advertise_address` (the
    host side of the node's link, where a DNAT rule leads to 127.0.0.1), so the `kubernetes`
    Service's endpoints are reachable from pods.
    """

    def __init__(self, advertise_address: str, bin_dir: Path, directory: Path | None = None):
        super().__init__(directory=directory, bin_dir=bin_dir)
        self.advertise_address = advertise_address
        # The API server's client certificate for kubelets comes from a CA of its own, made
        # before the API server starts (its flags name the files); kubelets trust that CA.
        self.node_pki = self.directory / "node-pki"
        self.kubelet_client_ca = self.node_pki / "kubelet-client-ca.crt"
        self.kubelet_client = (
            self.node_pki / "apiserver-kubelet-client.crt",
            self.node_pki / "apiserver-kubelet-client.key",
        )

    def start(self, timeout: float = 90.0) -> None:
        self.node_pki.mkdir(parents=True, exist_ok=True)
        ca_cert, ca_key = _self_signed_ca("hooksync-kubelet-client-ca")
        self.kubelet_client_ca.write_bytes(ca_cert)
        ca_key_path = self.node_pki / "kubelet-client-ca.key"
        ca_key_path.write_bytes(ca_key)
        ca_key_path.chmod(0o600)
        _write_pair(
            self.node_pki,
            "apiserver-kubelet-client",
            _issue(
                self.kubelet_client_ca,
                ca_key_path,
                "kube-apiserver-kubelet-client",
                organizations=["system:masters"],
            ),
        )
        super().start(timeout)
        try:
            self.components["kube-scheduler"] = _Component(
                "kube-scheduler", self._scheduler_argv(), self.directory / "scheduler.log"
            )
            self.start_component("kube-scheduler")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if "kube-scheduler" in self.components:
            self.components["kube-scheduler"].stop()
        super().stop()

    def _apiserver_argv(self, tokens: Path) -> list[str]:
        argv = []
        for arg in super()._apiserver_argv(tokens):
            if arg.startswith("--advertise-address="):
                arg = f"--advertise-address={self.advertise_address}"
            elif arg.startswith("--endpoint-reconciler-type="):
                arg = "--endpoint-reconciler-type=lease"
            argv.append(arg)
        argv += [
            f"--kubelet-client-certificate={self.kubelet_client[0]}",
            f"--kubelet-client-key={self.kubelet_client[1]}",
        ]
        return argv

    def _controller_manager_argv(self) -> list[str]:
        controllers = ",".join((*CONTROLLERS, *NODE_CONTROLLERS))
        return [
            f"--controllers={controllers}" if arg.startswith("--controllers=") else arg
            for arg in super()._controller_manager_argv()
        ]

    def _scheduler_argv(self) -> list[str]:
        return [
            self._bin("kube-scheduler"),
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--secure-port=0",
            "--v=1",
        ]


# -- the node -------------------------------------------------------------------------------


class RealNode:
    """containerd, kubelet and kube-proxy in `network`, registered with `control_plane`."""

    def __init__(
        self,
        control_plane: NodeControlPlane,
        network: NodeNetwork,
        bin_dir: Path,
        images: Iterable[str] = (),
        directory: Path | None = None,
    ) -> None:
        self.control_plane = control_plane
        self.network = network
        self.bin_dir = bin_dir
        self.images = list(images)
        self.directory = directory or Path(tempfile.mkdtemp(prefix="hooksync-node-"))
        self._own_directory = directory is None
        self.cgroup_name = f"hooksync-node-{network.name.removeprefix('hooksync-')}"
        self.components: dict[str, _Component] = {}
        self.socket = self.directory / "containerd" / "containerd.sock"
        self.containerd_root = self.directory / "containerd" / "root"
        self._root_lock: IO[str] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> None:
        try:
            self._write_pki()
            self._start_containerd(timeout)
            self._import_images()
            self._start_kubelet(timeout)
            self._start_kube_proxy()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop everything and remove every trace (processes, mounts, cgroups, folders)."""
        errors: list[str] = []
        for name in ("kube-proxy", "kubelet"):
            if name in self.components:
                self.components[name].stop()
        with contextlib.suppress(Exception):
            self._remove_containers()
        if "containerd" in self.components and self.components["containerd"].running():
            with contextlib.suppress(Exception):
                self._forget_containers()
        if "containerd" in self.components:
            self.components["containerd"].stop()
        self._kill_shims()
        self._kill_cgroups()
        errors += self._unmount_all()
        self.components.clear()
        if self._root_lock is not None:
            self._root_lock.close()
            self._root_lock = None
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)
        if errors:
            raise NodeError("node teardown left: " + "; ".join(errors))

    def log_tail(self, name: str, lines: int = 30) -> str:
        component = self.components.get(name)
        return component.log_tail(lines) if component else ""

    # -- pieces ------------------------------------------------------------------------------

    def _write_pki(self) -> None:
        cp = self.control_plane
        pki = self.directory / "pki"
        pki.mkdir(parents=True, exist_ok=True)
        ca_key = cp.pki["ca.key"]
        self.kubelet_client = _write_pair(
            pki,
            "kubelet-client",
            _issue(cp.ca_file, ca_key, f"system:node:{NODE_NAME}", organizations=["system:nodes"]),
        )
        self.kubelet_serving = _write_pair(
            pki,
            "kubelet-serving",
            _issue(
                cp.ca_file,
                ca_key,
                NODE_NAME,
                ips=[self.network.node_address, "127.0.0.1"],
                dns=[NODE_NAME, "localhost"],
                server=True,
            ),
        )
        self.proxy_client = _write_pair(
            pki, "kube-proxy-client", _issue(cp.ca_file, ca_key, "system:kube-proxy")
        )

    def _kubeconfig(self, name: str, pair: tuple[Path, Path]) -> Path:
        server = f"{self.network.host_address}:{self.control_plane.api_port}"
        path = self.directory / f"{name}.kubeconfig"
        # The API server's certificate names localhost and 127.0.0.1, where the DNAT leads.
        path.write_text(
            "apiVersion: v1\nkind: Config\n"
            "clusters:\n- name: local\n  cluster:\n"
            f"    server: https://{server}\n"
            f"    certificate-authority: {self.control_plane.ca_file}\n"
            "    tls-server-name: localhost\n"
            f"users:\n- name: {name}\n  user:\n"
            f"    client-certificate: {pair[0]}\n    client-key: {pair[1]}\n"
            f"contexts:\n- name: local\n  context:\n    cluster: local\n    user: {name}\n"
            "current-context: local\n"
        )
        path.chmod(0o600)
        return path

    def _start(self, name: str, argv: list[str]) -> None:
        component = _Component(
            name, [*self.network.enter_argv(), *argv], self.directory / f"{name}.log"
        )
        self.components[name] = component
        component.start()

    def _wait(self, name: str, check: object, timeout: float) -> None:
        assert callable(check)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.components[name].running():
                raise NodeError(
                    f"{name} exited during start-up; its log ends:\n{self.log_tail(name)}"
                )
            if check():
                return
            time.sleep(0.2)
        raise NodeError(
            f"{name} not ready after {timeout:.0f}s; its log ends:\n{self.log_tail(name)}"
        )

    def ctr(self, *args: str, timeout: float = 600) -> str:
        return _run(["ctr", "--address", str(self.socket), "-n", "k8s.io", *args], "ctr", timeout)

    def _start_containerd(self, timeout: float) -> None:
        base = self.directory / "containerd"
        cni = self.directory / "cni"
        (cni / "net.d").mkdir(parents=True, exist_ok=True)
        (cni / "net.d" / "10-hooksync.conflist").write_text(cni_config(POD_CIDR))
        base.mkdir(parents=True, exist_ok=True)
        self.containerd_root = self._claim_containerd_root()
        config = base / "config.toml"
        config.write_text(containerd_config(base, self.containerd_root, cni / "net.d"))
        self._start("containerd", ["containerd", "--config", str(config)])

        def answers() -> bool:
            if not self.socket.exists():
                return False
            result = subprocess.run(
                ["ctr", "--address", str(self.socket), "version"], capture_output=True, check=False
            )
            return result.returncode == 0

        self._wait("containerd", answers, timeout)
        self._forget_containers()

    def _import_images(self) -> None:
        """Import each image unless the kept content store already has this very build."""
        names = [ensure_pause_image(), *self.images]
        marks = self.containerd_root / "hooksync-imported"
        marks.mkdir(exist_ok=True)
        listed = self.ctr("images", "ls", "-q").split()
        with tempfile.TemporaryDirectory(prefix="hooksync-images-", dir=self.directory) as scratch:
            for name in names:
                image_id = _run(
                    [*PODMAN, "image", "inspect", "--format", "{{.Id}}", name], "podman inspect"
                ).strip()
                mark = marks / hashlib.sha256(name.encode()).hexdigest()[:16]
                if _qualified(name) in listed and mark.exists() and mark.read_text() == image_id:
                    continue
                archive = Path(scratch) / f"{mark.name}.tar"
                _run(
                    [*PODMAN, "save", "--format", "docker-archive", "-o", str(archive), name],
                    f"podman save {name}",
                )
                self.ctr("images", "import", str(archive))
                archive.unlink()
                mark.write_text(image_id)
        listed = self.ctr("images", "ls", "-q").split()
        missing = [n for n in names if _qualified(n) not in listed]
        if missing:
            raise NodeError(f"not in containerd after import: {missing}; it lists: {listed}")

    def _claim_containerd_root(self) -> Path:
        """The content store kept between runs (imports are slow), or a fresh one if in use."""
        kept = cache_root() / "node" / "containerd"
        kept.mkdir(parents=True, exist_ok=True)
        self._root_lock = (kept.parent / "containerd.lock").open("w")
        try:
            fcntl.flock(self._root_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._root_lock.close()
            self._root_lock = None
            return self.directory / "containerd" / "root"
        return kept

    def _forget_containers(self) -> None:
        """Remove containers (and their snapshots) a kept content store may still list."""
        for container in self.ctr("containers", "ls", "-q", timeout=60).split():
            subprocess.run(
                [
                    "ctr",
                    "--address",
                    str(self.socket),
                    "-n",
                    "k8s.io",
                    "containers",
                    "rm",
                    container,
                ],
                capture_output=True,
                check=False,
                timeout=60,
            )

    def _start_kubelet(self, timeout: float) -> None:
        root = self.directory / "kubelet"
        root.mkdir(parents=True, exist_ok=True)
        for hierarchy in _cgroup_hierarchies():
            (hierarchy / self.cgroup_name).mkdir(exist_ok=True)
            # A new cpuset starts with no CPUs and no memory nodes: give it its parent's.
            for name in ("cpuset.cpus", "cpuset.mems"):
                parent = hierarchy / name
                if parent.exists():
                    (hierarchy / self.cgroup_name / name).write_text(parent.read_text())
        config = self.directory / "kubelet.yaml"
        config.write_text(
            kubelet_config(
                address=self.network.node_address,
                ca_file=self.control_plane.kubelet_client_ca,
                serving=self.kubelet_serving,
                socket=self.socket,
                cgroup_root=f"/{self.cgroup_name}",
                logs_dir=self.directory / "pod-logs",
            )
        )
        kubeconfig = self._kubeconfig("kubelet", self.kubelet_client)
        self._start(
            "kubelet",
            [
                str(self.bin_dir / "kubelet"),
                f"--config={config}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={root}",
                f"--cert-dir={root / 'pki'}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={self.network.node_address}",
                "--v=1",
            ],
        )
        self._wait("kubelet", self._node_ready, timeout)

    def _node_ready(self) -> bool:
        result = subprocess.run(
            [
                str((self.control_plane.bin_dir or binaries_dir()) / "kubectl"),
                "--kubeconfig",
                str(self.control_plane.kubeconfig),
                "get",
                "node",
                NODE_NAME,
                "-o",
                'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        return bool(result.stdout.strip() == "True")

    def _start_kube_proxy(self) -> None:
        config = self.directory / "kube-proxy.yaml"
        kubeconfig = self._kubeconfig("kube-proxy", self.proxy_client)
        config.write_text(kube_proxy_config(kubeconfig, POD_CIDR))
        self._start("kube-proxy", [str(self.bin_dir / "kube-proxy"), f"--config={config}", "--v=1"])

        def rules_synced() -> bool:
            result = subprocess.run(
                [*self.network.enter_argv(), "iptables", "-w", "-t", "nat", "-S", "KUBE-SERVICES"],
                capture_output=True,
                text=True,
                check=False,
            )
            return SERVICE_IP in result.stdout

        self._wait("kube-proxy", rules_synced, 60)

    # -- teardown ----------------------------------------------------------------------------

    def _remove_containers(self) -> None:
        if not self.socket.exists():
            return
        for task in self.ctr("tasks", "ls", "-q", timeout=30).split():
            subprocess.run(
                [
                    "ctr",
                    "--address",
                    str(self.socket),
                    "-n",
                    "k8s.io",
                    "tasks",
                    "kill",
                    "-s",
                    "SIGKILL",
                    "--all",
                    task,
                ],
                capture_output=True,
                check=False,
                timeout=30,
            )

    def _kill_shims(self) -> None:
        """containerd leaves its shims running by design; ours name our socket."""
        marker = str(self.socket).encode()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if marker in cmdline or str(self.directory).encode() in cmdline:
                with contextlib.suppress(OSError):
                    os.kill(int(proc.name), 9)

    def _kill_cgroups(self) -> None:
        """Kill every process left under the node's cgroup root, then remove the cgroups."""
        roots = [h / self.cgroup_name for h in _cgroup_hierarchies(include_unified=True)]
        for _ in range(50):
            alive = False
            for root in roots:
                for procs in root.rglob("cgroup.procs") if root.exists() else []:
                    with contextlib.suppress(OSError):
                        for pid in procs.read_text().split():
                            alive = True
                            with contextlib.suppress(OSError):
                                os.kill(int(pid), 9)
            if not alive:
                break
            time.sleep(0.1)
        for root in roots:
            if not root.exists():
                continue
            for folder in sorted(
                (p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)
            ):
                with contextlib.suppress(OSError):
                    folder.rmdir()
            with contextlib.suppress(OSError):
                root.rmdir()

    def _unmount_all(self) -> list[str]:
        """Unmount everything under the node's folder (volumes, rootfs, netns), deepest first."""
        prefix = str(self.directory)
        left: list[str] = []
        for _ in range(3):
            mounts = [m for m in _mount_points() if m == prefix or m.startswith(prefix + "/")]
            if not mounts:
                return []
            for mount in sorted(mounts, key=len, reverse=True):
                subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
        left = [m for m in _mount_points() if m.startswith(prefix + "/")]
        return [f"mount {m}" for m in left]


# -- configuration files (pure) -----------------------------------------------------------------


def cni_config(pod_cidr: str) -> str:
    """Pure: the CNI network list: a bridge with host-local addresses, and loopback."""
    gateway = str(next(ipaddress.ip_network(pod_cidr).hosts()))
    return f"""{{
  "cniVersion": "1.0.0",
  "name": "hooksync-pods",
  "plugins": [
    {{
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {{
        "type": "host-local",
        "ranges": [[{{"subnet": "{pod_cidr}", "gateway": "{gateway}"}}]],
        "routes": [{{"dst": "0.0.0.0/0"}}]
      }}
    }},
    {{"type": "loopback"}}
  ]
}}
"""


def containerd_config(base: Path, root: Path, cni_conf_dir: Path) -> str:
    """Pure: containerd with everything under `base`, runc, CNI from Debian's plugins folder.

    restrict_oom_score_adj: a negative oom_score_adj needs CAP_SYS_RESOURCE, which the
    machines this runs on lack; without it every sandbox fails to start.
    """
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{root}"
state = "{base / "state"}"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "{base / "containerd.sock"}"

[ttrpc]
  address = "{base / "containerd.sock.ttrpc"}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{base / "opt"}"

[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  enable_selinux = false

[{cri}.cni]
  bin_dir = "{CNI_BIN_DIR}"
  conf_dir = "{cni_conf_dir}"
  max_conf_num = 1

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
"""


def kubelet_config(
    address: str,
    ca_file: Path,
    serving: tuple[Path, Path],
    socket: Path,
    cgroup_root: str,
    logs_dir: Path,
) -> str:
    """Pure: a KubeletConfiguration for the cgroup v1 layout this machine has."""
    return f"""apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: {address}
port: {KUBELET_PORT}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: true}}
  x509: {{clientCAFile: {ca_file}}}
authorization:
  mode: Webhook
tlsCertFile: {serving[0]}
tlsPrivateKeyFile: {serving[1]}
containerRuntimeEndpoint: unix://{socket}
cgroupDriver: cgroupfs
cgroupRoot: {cgroup_root}
failCgroupV1: false
failSwapOn: false
enforceNodeAllocatable: []
# The node reports its ephemeral storage, as any cluster's does: the converge Job requests some.
localStorageCapacityIsolation: true
podLogsDir: {logs_dir}
resolvConf: /etc/resolv.conf
clusterDomain: cluster.local
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {{memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%}}
syncFrequency: 10s
maxPods: 60
"""


def kube_proxy_config(kubeconfig: Path, cluster_cidr: str) -> str:
    """Pure: kube-proxy in iptables mode; masqueradeAll so replies on the bridge come back."""
    return f"""apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: {kubeconfig}
hostnameOverride: {NODE_NAME}
mode: iptables
clusterCIDR: {cluster_cidr}
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
iptables:
  masqueradeAll: true
  minSyncPeriod: 0s
  syncPeriod: 30s
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
"""


# -- helpers --------------------------------------------------------------------------------


def _qualified(name: str) -> str:
    """Pure: the name containerd lists for an image name (docker.io added to short names)."""
    first = name.split("/", 1)[0]
    if "/" in name and ("." in first or ":" in first or first == "localhost"):
        return name
    return f"docker.io/{name}" if "/" in name else f"docker.io/library/{name}"


def _cgroup_hierarchies(include_unified: bool = False) -> list[Path]:
    found: list[Path] = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        if fields[2] == "cgroup" or (include_unified and fields[2] == "cgroup2"):
            found.append(Path(fields[1]))
    return found


def _mount_points() -> list[str]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if len(fields) > 4:
            points.append(fields[4].replace("\\040", " "))
    return points


def ensure_pause_image() -> str:
    """The sandbox image: a static Go program that waits for TERM, imported into podman."""
    result = subprocess.run([*PODMAN, "image", "exists", PAUSE_IMAGE], check=False)
    if result.returncode == 0:
        return PAUSE_IMAGE
    folder = cache_root() / "images"
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hooksync-pause-") as scratch:
        work = Path(scratch)
        (work / "main.go").write_text(PAUSE_SOURCE)
        (work / "go.mod").write_text("module hooksync.local/pause\n\ngo 1.22\n")
        env = dict(os.environ, CGO_ENABLED="0", GOTOOLCHAIN="local", GOFLAGS="-buildvcs=false")
        built = subprocess.run(
            ["go", "build", "-trimpath", "-ldflags=-s -w", "-o", "pause", "."],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if built.returncode != 0:
            raise NodeError(f"building the pause program failed:\n{built.stderr}")
        tar = work / "pause.tar"
        with tarfile.open(tar, "w") as archive:
            info = archive.gettarinfo(str(work / "pause"), arcname="pause")
            info.uid = info.gid = 0
            info.mode = 0o755
            with (work / "pause").open("rb") as data:
                archive.addfile(info, data)
        _run(
            [
                *PODMAN,
                "import",
                "--change",
                'ENTRYPOINT ["/pause"]',
                "--change",
                "USER 65535",
                str(tar),
                PAUSE_IMAGE,
            ],
            "podman import (pause)",
        )
    return PAUSE_IMAGE


def ensure_node_tools() -> str | None:
    """None if this machine can run a real node; else why not (for a skip or a failure)."""
    missing = [
        tool
        for tool in (
            "podman",
            "runc",
            "containerd",
            "containerd-shim-runc-v2",
            "ctr",
            "iptables",
            "ip",
            "nsenter",
            "go",
            # The scenario posts webhooks from inside the node's network with curl
            # (world/e2e.py), and `leftovers()` looks for stray processes with pgrep.
            "curl",
            "pgrep",
        )
        if shutil.which(tool) is None
    ]
    if not (CNI_BIN_DIR / "bridge").exists():
        missing.append(f"{CNI_BIN_DIR}/bridge (containernetworking-plugins)")
    if missing:
        return f"not found: {', '.join(missing)} (Debian packages; .ci/run installs them)"
    if os.geteuid() != 0:
        return "a real node needs root (network namespaces, cgroups, mounts)"
    return None


class RealCluster:
    """The node's network, a NodeControlPlane advertised on it, and the real node.

    `expose(port)` makes a loopback service of this machine (a Git server, a Git-host
    stand-in) reachable from pods, and returns the address pods use for it.
    """

    def __init__(self, images: Iterable[str] = ()) -> None:
        self.images = list(images)
        self.network = NodeNetwork()
        self.control_plane: NodeControlPlane | None = None
        self.node: RealNode | None = None
        # What the node made, remembered past stop() so `leftovers()` can look for its traces.
        self.node_directory: Path | None = None
        self.cgroup_name: str | None = None

    @property
    def kubeconfig(self) -> Path:
        assert self.control_plane is not None
        return self.control_plane.kubeconfig

    def expose(self, port: int) -> str:
        return self.network.expose(port)

    def start(self) -> None:
        reason = ensure_node_tools()
        if reason:
            raise NodeError(reason)
        bin_dir = node_binaries()
        try:
            self.network.create()
            self.control_plane = NodeControlPlane(self.network.host_address, bin_dir)
            self.control_plane.start()
            self.network.expose(self.control_plane.api_port)
            self.node = RealNode(self.control_plane, self.network, bin_dir, self.images)
            self.node_directory = self.node.directory
            self.cgroup_name = self.node.cgroup_name
            self.node.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        try:
            if self.node is not None:
                self.node.stop()
        finally:
            self.node = None
            if self.control_plane is not None:
                self.control_plane.stop()
                self.control_plane = None
            self.network.destroy()

    def __enter__(self) -> RealCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def leftovers(cluster: RealCluster) -> list[str]:
    """What a stopped cluster left behind: its network namespace, a NAT rule on its link, a
    mount, folder, cgroup or process of its node; empty when it is all gone."""
    found: list[str] = []
    if (NETNS_ROOT / cluster.network.name).exists():
        found.append(f"network namespace {cluster.network.name}")
    rules = subprocess.run(
        ["iptables", "-w", "-t", "nat", "-S", "PREROUTING"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    found += [f"iptables rule {r}" for r in rules.splitlines() if cluster.network.host_link in r]
    directory = cluster.node_directory
    if directory is not None:
        found += [f"mount {m}" for m in _mount_points() if m.startswith(str(directory))]
        if directory.exists():
            found.append(f"folder {directory}")
        processes = subprocess.run(
            ["pgrep", "-af", str(directory)], capture_output=True, text=True, check=False
        ).stdout
        found += [f"process {line}" for line in processes.splitlines()]
    if cluster.cgroup_name is not None:
        found += [
            f"cgroup {path}"
            for hierarchy in _cgroup_hierarchies(include_unified=True)
            for path in [hierarchy / cluster.cgroup_name]
            if path.exists()
        ]
    return found
