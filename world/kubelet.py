"""A process kubelet: runs the pods of Jobs as local processes, so Job code runs for real.

It registers a Node, binds unscheduled Job pods to it, materialises their volumes (configMap,
secret, emptyDir, projected service-account tokens minted with the TokenRequest API), starts the
first container's command in a private mount namespace with those volumes bind-mounted at their
mountPaths, and writes pod status back the way a kubelet does. While a ConfigMap, Secret or key
the pod needs is missing, or the API server does not answer, the pod waits (ContainerCreating or
CreateContainerConfigError) and the kubelet tries again, as a real one does. It also serves
container logs on the kubelet port so `kubectl logs` and the pods/log API work.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import logging
import os
import shlex
import shutil
import signal
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import urllib3
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

log = logging.getLogger("process-kubelet")

NODE_NAME = "hooksync-local-node"
TERMINATION_MESSAGE_LIMIT = 4096
FALLBACK_LOG_LINES = 80

T = TypeVar("T")
TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
# Where each pod's folder is bound inside its mount namespace before the volume mounts.
STAGING_ROOT = Path("/run/hooksync-kubelet")
# While a pod's ConfigMap or Secret is missing, it is looked for again after these waits.
NOT_YET_FIRST_DELAY = 0.5
NOT_YET_MAX_DELAY = 8.0
# What the client raises when the API server does not answer at all.
UNREACHABLE = (OSError, urllib3.exceptions.HTTPError)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _LogHandler(BaseHTTPRequestHandler):
    """Answers the API server's /containerLogs/{ns}/{pod}/{container} requests."""

    server: _LogServer

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        segments = parts.path.strip("/").split("/")
        if len(segments) != 4 or segments[0] != "containerLogs":
            self.send_error(404)
            return
        _, namespace, pod, _container = segments
        path = self.server.kubelet.log_path(namespace, pod)
        if path is None or not path.exists():
            self.send_error(404, "no log for this pod")
            return
        data = path.read_bytes()
        query = parse_qs(parts.query)
        if "tailLines" in query:
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-int(query["tailLines"][0]) :])
        if "limitBytes" in query:
            data = data[: int(query["limitBytes"][0])]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return


class _LogServer(ThreadingHTTPServer):
    daemon_threads = True
    kubelet: ProcessKubelet


class _PodRun:
    def __init__(self, namespace: str, name: str, uid: str, directory: Path) -> None:
        self.namespace = namespace
        self.name = name
        self.uid = uid
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None
        self.thread: threading.Thread | None = None
        self.killed = False

    @property
    def log_path(self) -> Path:
        return self.directory / "container.log"


class ProcessKubelet:
    """Plays the kubelet for one Node, running Job pods as processes on this machine."""

    def __init__(
        self,
        kubeconfig: Path,
        api_host: str,
        api_port: int,
        ca_file: Path,
        serving_cert: Path,
        serving_key: Path,
        node_name: str = NODE_NAME,
        extra_env: dict[str, str] | None = None,
        directory: Path | None = None,
        pod_filter: Callable[[Any], bool] | None = None,
        preserve_paths: list[Path] | None = None,
    ) -> None:
        self.api_client = config.new_client_from_config(config_file=str(kubeconfig))
        self.core = client.CoreV1Api(self.api_client)
        self.api_host = api_host
        self.api_port = api_port
        self.ca_file = ca_file
        self.node_name = node_name
        self.extra_env = dict(extra_env or {})
        self._own_directory = directory is None
        self.directory = (
            Path(tempfile.mkdtemp(prefix="hooksync-kubelet-")) if directory is None else directory
        )
        self.pod_filter = pod_filter or _is_job_pod
        # Host folders pods must always see (the project, its interpreter, the tools' cache).
        self.preserve_paths = [p.resolve() for p in preserve_paths or []]
        self._runs: dict[str, _PodRun] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watch: watch.Watch | None = None
        self._threads: list[threading.Thread] = []
        self._log_server = _LogServer(("127.0.0.1", 0), _LogHandler)
        self._log_server.kubelet = self
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(serving_cert), str(serving_key))
        self._log_server.socket = context.wrap_socket(self._log_server.socket, server_side=True)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._register_node()
        for target in (self._log_server.serve_forever, self._watch_pods, self._heartbeat):
            thread = threading.Thread(target=target, name=f"kubelet-{target.__name__}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stopping.set()
        if self._watch is not None:
            self._watch.stop()
        self._log_server.shutdown()
        self._log_server.server_close()
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            self._kill(run)
        for run in runs:
            if run.thread is not None:
                run.thread.join(timeout=10)
        for thread in self._threads:
            thread.join(timeout=5)
        with contextlib.suppress(Exception):
            self.api_client.close()
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> ProcessKubelet:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_path(self, namespace: str, pod: str) -> Path | None:
        with self._lock:
            for run in self._runs.values():
                if run.namespace == namespace and run.name == pod:
                    return run.log_path
        return None

    # -- node ------------------------------------------------------------------------------

    def _node_status(self) -> dict[str, Any]:
        now = _now()
        return {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "process kubelet is posting ready status",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
            ],
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": self.node_name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self._log_server.server_address[1]}},
            "capacity": {"cpu": "2", "memory": "24Gi", "pods": "110"},
            "allocatable": {"cpu": "2", "memory": "24Gi", "pods": "110"},
            "nodeInfo": {
                "kubeletVersion": "process-kubelet",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "",
                "osImage": "", "containerRuntimeVersion": "process://local",
                "kubeProxyVersion": "",
            },
        }  # fmt: skip

    def _register_node(self) -> None:
        body = client.V1Node(
            metadata=client.V1ObjectMeta(name=self.node_name, labels={"kubernetes.io/os": "linux"})
        )
        try:
            self.core.create_node(body)
        except ApiException as exc:
            if exc.status != 409:
                raise
        self.core.patch_node_status(self.node_name, {"status": self._node_status()})

    def _heartbeat(self) -> None:
        while not self._stopping.wait(20):
            with contextlib.suppress(Exception):
                self.core.patch_node_status(self.node_name, {"status": self._node_status()})

    # -- pods ------------------------------------------------------------------------------

    def _watch_pods(self) -> None:
        resource_version: str = ""
        while not self._stopping.is_set():
            try:
                if not resource_version:
                    pods = self.core.list_pod_for_all_namespaces()
                    assert pods.metadata is not None, "a list always carries its metadata"
                    resource_version = str(pods.metadata.resource_version)
                    for pod in pods.items:
                        self._handle(pod)
                self._watch = watch.Watch()
                for event in self._watch.stream(
                    self.core.list_pod_for_all_namespaces,
                    resource_version=resource_version,
                    timeout_seconds=60,
                    allow_watch_bookmarks=True,
                ):
                    pod = event["object"]
                    resource_version = _meta(pod).resource_version or resource_version
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self._handle(pod)
                    elif event["type"] == "DELETED":
                        self._forget(_key(pod).uid)
                    if self._stopping.is_set():
                        return
            except ApiException as exc:
                if exc.status == 410:
                    resource_version = ""
                else:
                    self._stopping.wait(1)
            except Exception:  # the API server may be restarting in fault tests
                if self._stopping.is_set():
                    return
                resource_version = ""
                self._stopping.wait(1)

    def _handle(self, pod: client.V1Pod) -> None:
        if not self.pod_filter(pod):
            return
        uid = _key(pod).uid
        if _meta(pod).deletion_timestamp is not None:
            with self._lock:
                run = self._runs.get(uid)
            if run is not None:
                self._kill(run)
            else:
                self._delete_pod_now(pod)
            return
        if _phase(pod) in ("Succeeded", "Failed"):
            return
        if not _spec(pod).node_name:
            self._bind(pod)
            return
        if _spec(pod).node_name != self.node_name:
            return
        with self._lock:
            if uid in self._runs:
                return
            run = _PodRun(_key(pod).namespace, _key(pod).name, uid, self.directory / "pods" / uid)
            self._runs[uid] = run
        run.thread = threading.Thread(target=self._run_pod, args=(run, pod), daemon=True)
        run.thread.start()

    def _bind(self, pod: client.V1Pod) -> None:
        body = client.V1Binding(
            metadata=client.V1ObjectMeta(name=_key(pod).name, uid=_key(pod).uid),
            target=client.V1ObjectReference(kind="Node", name=self.node_name),
        )
        try:
            # The client cannot decode the Status this returns; the call itself is what counts.
            self.core.create_namespaced_binding(_key(pod).namespace, body, _preload_content=False)
        except ApiException as exc:
            if exc.status not in (404, 409):
                log.warning("binding %s/%s: %s", _key(pod).namespace, _key(pod).name, exc)

    def _forget(self, uid: str) -> None:
        with self._lock:
            run = self._runs.pop(uid, None)
        if run is not None:
            self._kill(run)

    def _kill(self, run: _PodRun) -> None:
        run.killed = True
        process = run.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)

    def _delete_pod_now(self, pod: client.V1Pod) -> None:
        with contextlib.suppress(ApiException):
            self.core.delete_namespaced_pod(
                _key(pod).name,
                _key(pod).namespace,
                grace_period_seconds=0,
                body=client.V1DeleteOptions(
                    grace_period_seconds=0,
                    preconditions=client.V1Preconditions(uid=_key(pod).uid),
                ),
            )

    # -- running one pod -------------------------------------------------------------------

    def _run_pod(self, run: _PodRun, pod: client.V1Pod) -> None:
        run.directory.mkdir(parents=True, exist_ok=True)
        container = _spec(pod).containers[0]
        started = _now()
        delay = NOT_YET_FIRST_DELAY
        shown = ""
        while True:
            try:
                argv, env, mounts = self._prepare(pod, container, run.directory)
                break
            except _NotYet as exc:
                # What a real kubelet does when a volume's or a variable's source is missing,
                # or the API server does not answer: the pod waits, and it tries again.
                if str(exc) != shown:
                    shown = str(exc)
                    self._set_waiting(pod, container.name, exc.reason, shown)
                if self._stopping.wait(delay):
                    return
                if run.killed:
                    self._delete_pod_now(pod)
                    return
                delay = min(delay * 2, NOT_YET_MAX_DELAY)
            except (_StartError, ApiException) as exc:
                reason = exc.reason if isinstance(exc, ApiException) else str(exc)
                self._set_terminated(pod, container.name, 128, "StartError", str(reason), started)
                return
            except Exception as exc:
                self._set_terminated(pod, container.name, 128, "StartError", repr(exc), started)
                return
        termination_file = run.directory / "termination-log"

        # The pod folder is bound at a staging point first: a mountPath such as /tmp could
        # otherwise hide the folder the later mounts come from.
        stage = STAGING_ROOT / run.uid
        # A real pod's programs live in its image; here they are this machine's, and a volume
        # at, say, /tmp would hide them when the project itself sits under /tmp. Such folders
        # are bound aside first and put back on top of the volumes afterwards.
        shadowed = [
            path
            for path in self.preserve_paths
            if any(_is_within(path, Path(target)) for _, target in mounts)
        ]
        try:
            script = _mount_script(run.directory, stage, mounts, shadowed)
        except OSError as exc:
            self._set_terminated(pod, container.name, 128, "StartError", str(exc), started)
            return
        if container.working_dir:
            script.append(f"cd {shlex.quote(container.working_dir)}")
        script.append('exec "$@"')
        wrapper = ["unshare", "--mount", "--propagation", "private", "sh", "-c", "\n".join(script)]
        with run.log_path.open("wb") as log_file:
            if run.killed:
                self._delete_pod_now(pod)
                return
            run.process = subprocess.Popen(
                [*wrapper, "pod", *argv],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self._set_running(pod, container.name, started)
            exit_code = run.process.wait()
        if exit_code < 0:
            exit_code = 128 - exit_code
        message = termination_file.read_bytes()[:TERMINATION_MESSAGE_LIMIT].decode(errors="replace")
        policy = container.termination_message_policy or "File"
        if not message and exit_code != 0 and policy == "FallbackToLogsOnError":
            lines = run.log_path.read_bytes().splitlines()[-FALLBACK_LOG_LINES:]
            message = b"\n".join(lines)[-2048:].decode(errors="replace")
        with contextlib.suppress(OSError):
            stage.rmdir()
        reason = "Completed" if exit_code == 0 else "Error"
        self._set_terminated(pod, container.name, exit_code, reason, message, started)
        if _meta(pod).deletion_timestamp is not None or run.killed:
            self._delete_pod_now(pod)

    def _prepare(
        self, pod: client.V1Pod, container: client.V1Container, pod_dir: Path
    ) -> tuple[list[str], dict[str, str], list[tuple[Path, str]]]:
        """The command, environment and mounts of the pod's container, its volumes written
        under `pod_dir`. Raises _NotYet while a source is missing and _StartError when the
        container can never start."""
        argv = list(container.command or []) + list(container.args or [])
        if not container.command:
            raise _StartError(
                "container has no command: the process kubelet cannot read an image's "
                "entrypoint, so Jobs must set `command` explicitly"
            )
        try:
            mounts = self._volumes(pod, container, pod_dir)
        except _NotYet as exc:
            raise _NotYet(f"MountVolume.SetUp failed: {exc}", "ContainerCreating") from None
        env = self._environment(pod, container)
        argv = [_expand(arg, env) for arg in argv]
        if shutil.which(argv[0], path=env.get("PATH")) is None:
            raise _StartError(f"executable {argv[0]!r} not found in $PATH")
        termination_file = pod_dir / "termination-log"
        termination_file.write_bytes(b"")
        message_path = container.termination_message_path or "/dev/termination-log"
        mounts.append((termination_file, message_path))
        return argv, env, mounts

    def _environment(self, pod: client.V1Pod, container: client.V1Container) -> dict[str, str]:
        namespace = _key(pod).namespace
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": "/tmp",
            "HOSTNAME": _key(pod).name,
            "KUBERNETES_SERVICE_HOST": self.api_host,
            "KUBERNETES_SERVICE_PORT": str(self.api_port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(self.api_port),
            "LANG": "C.UTF-8",
            **self.extra_env,
        }
        for source in container.env_from or []:
            prefix = source.prefix or ""
            if source.config_map_ref is not None:
                config_map = source.config_map_ref
                data = self._config_map_data(namespace, config_map.name, bool(config_map.optional))
            elif source.secret_ref is not None:
                secret = source.secret_ref
                data = self._secret_data(namespace, secret.name, bool(secret.optional))
            else:
                raise _StartError("envFrom names neither a ConfigMap nor a Secret")
            env.update({prefix + k: v.decode() for k, v in data.items()})
        for var in container.env or []:
            if var.value_from is None:
                env[var.name] = _expand(var.value or "", env)
                continue
            value = self._env_value(pod, var.value_from)
            if value is not None:
                env[var.name] = value
        return env

    def _env_value(self, pod: client.V1Pod, source: client.V1EnvVarSource) -> str | None:
        namespace = _key(pod).namespace
        if source.field_ref is not None:
            fields = {
                "metadata.name": _key(pod).name,
                "metadata.namespace": namespace,
                "metadata.uid": _key(pod).uid,
                "spec.nodeName": self.node_name,
                "spec.serviceAccountName": _spec(pod).service_account_name or "default",
                "status.podIP": "127.0.0.1",
                "status.hostIP": "127.0.0.1",
            }
            path = source.field_ref.field_path
            if path.startswith("metadata.labels['"):
                return str((_meta(pod).labels or {}).get(path[17:-2], ""))
            if path.startswith("metadata.annotations['"):
                return str((_meta(pod).annotations or {}).get(path[22:-2], ""))
            if path not in fields:
                raise _StartError(f"fieldRef {path!r} is not supported by the process kubelet")
            return str(fields[path])
        if source.secret_key_ref is not None:
            secret = source.secret_key_ref
            data = self._secret_data(namespace, secret.name, bool(secret.optional))
            if secret.key not in data:
                if secret.optional:
                    return None
                raise _NotYet(f"couldn't find key {secret.key} in Secret {namespace}/{secret.name}")
            return data[secret.key].decode()
        if source.config_map_key_ref is not None:
            config_map = source.config_map_key_ref
            data = self._config_map_data(namespace, config_map.name, bool(config_map.optional))
            if config_map.key not in data:
                if config_map.optional:
                    return None
                raise _NotYet(
                    f"couldn't find key {config_map.key} in ConfigMap {namespace}/{config_map.name}"
                )
            return data[config_map.key].decode()
        raise _StartError("resourceFieldRef is not supported by the process kubelet")

    def _secret_data(self, namespace: str, name: str | None, optional: bool) -> dict[str, bytes]:
        if not name:
            raise _StartError("a Secret reference has no name")
        try:
            secret = self.core.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status == 404 and optional:
                return {}
            if exc.status == 404:
                raise _NotYet(f'secret "{name}" not found') from None
            raise _not_yet_or(exc) from None
        except UNREACHABLE as exc:
            raise _NotYet(f"reading secret {name!r}: {exc}") from None
        return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}

    def _config_map_data(
        self, namespace: str, name: str | None, optional: bool
    ) -> dict[str, bytes]:
        if not name:
            raise _StartError("a ConfigMap reference has no name")
        try:
            config_map = self.core.read_namespaced_config_map(name, namespace)
        except ApiException as exc:
            if exc.status == 404 and optional:
                return {}
            if exc.status == 404:
                raise _NotYet(f'configmap "{name}" not found') from None
            raise _not_yet_or(exc) from None
        except UNREACHABLE as exc:
            raise _NotYet(f"reading configmap {name!r}: {exc}") from None
        data = {k: v.encode() for k, v in (config_map.data or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (config_map.binary_data or {}).items()})
        return data

    def _volumes(
        self, pod: client.V1Pod, container: client.V1Container, pod_dir: Path
    ) -> list[tuple[Path, str]]:
        """Write each volume's files under the pod folder; return (source, mountPath) pairs."""
        namespace = _key(pod).namespace
        volumes = {v.name: v for v in _spec(pod).volumes or []}
        mounts: list[tuple[Path, str]] = []
        for mount in container.volume_mounts or []:
            volume = volumes.get(mount.name)
            if volume is None:
                raise _StartError(f"volumeMount {mount.name!r} has no volume")
            folder = pod_dir / "volumes" / mount.name
            if not folder.exists():
                folder.mkdir(parents=True)
                try:
                    self._fill_volume(pod, namespace, volume, folder)
                except BaseException:
                    shutil.rmtree(folder, ignore_errors=True)  # the next try writes it whole
                    raise
            source = folder / mount.sub_path if mount.sub_path else folder
            mounts.append((source, mount.mount_path))
        return mounts

    def _fill_volume(
        self, pod: client.V1Pod, namespace: str, volume: client.V1Volume, folder: Path
    ) -> None:
        if volume.empty_dir is not None:
            folder.chmod(0o1777)
            return
        if volume.config_map is not None:
            config_map = volume.config_map
            data = self._config_map_data(namespace, config_map.name, bool(config_map.optional))
            _write_items(folder, data, config_map.items, config_map.default_mode)
            return
        if volume.secret is not None:
            secret = volume.secret
            data = self._secret_data(namespace, secret.secret_name, bool(secret.optional))
            _write_items(folder, data, secret.items, secret.default_mode or 0o644)
            return
        if volume.projected is not None:
            for projection in volume.projected.sources or []:
                if projection.service_account_token is not None:
                    token = self._mint_token(pod, projection.service_account_token)
                    _write_file(folder / projection.service_account_token.path, token, 0o644)
                elif projection.config_map is not None:
                    projected_map = projection.config_map
                    data = self._config_map_data(
                        namespace, projected_map.name, bool(projected_map.optional)
                    )
                    _write_items(folder, data, projected_map.items, volume.projected.default_mode)
                elif projection.secret is not None:
                    projected_secret = projection.secret
                    data = self._secret_data(
                        namespace, projected_secret.name, bool(projected_secret.optional)
                    )
                    _write_items(
                        folder, data, projected_secret.items, volume.projected.default_mode
                    )
                elif projection.downward_api is not None:
                    for item in projection.downward_api.items or []:
                        value = self._env_value(
                            pod, client.V1EnvVarSource(field_ref=item.field_ref)
                        )
                        _write_file(folder / item.path, (value or "").encode(), 0o644)
            return
        raise _StartError(f"volume {volume.name!r}: only configMap, secret, emptyDir and projected")

    def _mint_token(
        self, pod: client.V1Pod, projection: client.V1ServiceAccountTokenProjection
    ) -> bytes:
        account = _spec(pod).service_account_name or "default"
        request = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(
                audiences=[projection.audience] if projection.audience else [],
                expiration_seconds=projection.expiration_seconds or 3607,
                bound_object_ref=client.V1BoundObjectReference(
                    api_version="v1", kind="Pod", name=_key(pod).name, uid=_key(pod).uid
                ),
            )
        )
        try:
            answer = self.core.create_namespaced_service_account_token(
                account, _key(pod).namespace, request
            )
        except ApiException as exc:
            raise _not_yet_or(exc) from None
        except UNREACHABLE as exc:
            raise _NotYet(f"requesting a token for {account!r}: {exc}") from None
        if answer.status is None:
            raise RuntimeError(f"TokenRequest for {account!r} came back without a token")
        return str(answer.status.token).encode()

    # -- status ----------------------------------------------------------------------------

    def _set_running(self, pod: client.V1Pod, container: str, started: str) -> None:
        status = {
            "phase": "Running",
            "hostIP": "127.0.0.1",
            "podIP": "127.0.0.1",
            "startTime": started,
            "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": started},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": started},
            ],
            "containerStatuses": [
                _container_status(pod, container, {"running": {"startedAt": started}})
            ],
        }
        self._patch_status(pod, status)

    def _set_waiting(self, pod: client.V1Pod, container: str, reason: str, message: str) -> None:
        status = {
            "phase": "Pending",
            "hostIP": "127.0.0.1",
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": _now()},
            ],
            "containerStatuses": [
                _container_status(
                    pod, container, {"waiting": {"reason": reason, "message": message}}
                )
            ],
        }
        self._patch_status(pod, status)

    def _set_terminated(
        self,
        pod: client.V1Pod,
        container: str,
        exit_code: int,
        reason: str,
        message: str,
        started: str,
    ) -> None:
        finished = _now()
        status = {
            "phase": "Succeeded" if exit_code == 0 else "Failed",
            "hostIP": "127.0.0.1",
            "podIP": "127.0.0.1",
            "startTime": started,
            "conditions": [
                {"type": "Ready", "status": "False", "lastTransitionTime": finished},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": started},
            ],
            "containerStatuses": [
                _container_status(
                    pod,
                    container,
                    {
                        "terminated": {
                            "exitCode": exit_code,
                            "reason": reason,
                            "message": message,
                            "startedAt": started,
                            "finishedAt": finished,
                        }
                    },
                )
            ],
        }
        self._patch_status(pod, status)

    def _patch_status(self, pod: client.V1Pod, status: dict[str, Any]) -> None:
        for _ in range(30):
            try:
                self.core.patch_namespaced_pod_status(
                    _key(pod).name, _key(pod).namespace, {"status": status}
                )
                return
            except ApiException as exc:
                if exc.status == 404:
                    return
            except Exception:  # the API server may be restarting in fault tests
                log.debug("patching pod status failed; retrying", exc_info=True)
            if self._stopping.wait(1):
                return


class _StartError(Exception):
    """The container could not be started; the pod fails with this message."""


class _NotYet(Exception):
    """Something the container needs is missing for now (a ConfigMap, a Secret, a key in one,
    or an answer from the API server); the pod waits with `reason` and the kubelet tries again."""

    def __init__(self, message: str, reason: str = "CreateContainerConfigError") -> None:
        super().__init__(message)
        self.reason = reason


def _not_yet_or(exc: ApiException) -> Exception:
    """Pure: a throttled or failing API server is worth waiting for; other answers are final."""
    if exc.status is not None and (exc.status == 429 or exc.status >= 500):
        return _NotYet(f"the API server answered {exc.status} {exc.reason}")
    return exc


@dataclass(frozen=True)
class _PodKey:
    namespace: str
    name: str
    uid: str


def _key(pod: client.V1Pod) -> _PodKey:
    """Pure: where a pod is and which one it is; every pod the API server sends has all three."""
    metadata = _meta(pod)
    if not (metadata.namespace and metadata.name and metadata.uid):
        raise ValueError(f"pod without namespace, name or uid: {metadata}")
    return _PodKey(metadata.namespace, metadata.name, metadata.uid)


def _meta(pod: client.V1Pod) -> client.V1ObjectMeta:
    if pod.metadata is None:
        raise ValueError("pod without metadata")
    return pod.metadata


def _spec(pod: client.V1Pod) -> client.V1PodSpec:
    if pod.spec is None:
        raise ValueError(f"pod {_key(pod).name} without spec")
    return pod.spec


def _container_status(pod: client.V1Pod, container: str, state: dict[str, Any]) -> dict[str, Any]:
    """Pure: the status of the pod's one container in `state` (running, waiting, terminated);
    it is ready and started only while running."""
    running = "running" in state
    return {
        "name": container,
        "ready": running,
        "restartCount": 0,
        "image": _spec(pod).containers[0].image or "",
        "imageID": "",
        "started": running,
        "state": state,
    }


def _phase(pod: client.V1Pod) -> str | None:
    return pod.status.phase if pod.status is not None else None


def _is_job_pod(pod: client.V1Pod) -> bool:
    owners = _meta(pod).owner_references or []
    return any(o.kind == "Job" for o in owners)


def _is_within(path: Path, mount_point: Path) -> bool:
    """Whether a mount at `mount_point` would hide `path`."""
    return path == mount_point or mount_point in path.parents


def _expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion in command, args and env values."""
    for key, value in env.items():
        text = text.replace(f"$({key})", value)
    return text


def _write_file(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)


def _write_items(
    folder: Path, data: dict[str, bytes], items: list[client.V1KeyToPath] | None, mode: int | None
) -> None:
    file_mode = mode if mode is not None else 0o644
    if items:
        for item in items:
            if item.key in data:
                _write_file(folder / item.path, data[item.key], item.mode or file_mode)
        return
    for key, value in data.items():
        _write_file(folder / key, value, file_mode)


def _mount_script(
    pod_dir: Path, stage: Path, mounts: list[tuple[Path, str]], shadowed: list[Path]
) -> list[str]:
    """The shell lines that set up a pod's mounts in its mount namespace.

    What can be made before the namespace exists (the staging point, the folders a mount
    lands on that no earlier mount hides) is made here, not by a command of the script: each
    command is a process started before the pod's own, and a container runtime makes its
    mounts with system calls, not processes.
    """
    stage.mkdir(parents=True, exist_ok=True)
    script = ["set -e", f"mount --rbind {shlex.quote(str(pod_dir))} {shlex.quote(str(stage))}"]
    for index, path in enumerate(shadowed):
        (pod_dir / ".keep" / str(index)).mkdir(parents=True, exist_ok=True)
        aside = stage / ".keep" / str(index)
        script.append(f"mount --rbind {shlex.quote(str(path))} {shlex.quote(str(aside))}")
    mounted: list[Path] = []
    for source, target in mounts:
        quoted = shlex.quote(target)
        staged = stage / source.relative_to(pod_dir)
        hidden = any(_is_within(Path(target), point) for point in mounted)
        if source.is_dir() and hidden:
            script.append(f"mkdir -p {quoted}")
        elif source.is_dir():
            Path(target).mkdir(parents=True, exist_ok=True)
        elif hidden:
            script.append(f"mkdir -p {shlex.quote(str(Path(target).parent))}")
            script.append(f"[ -e {quoted} ] || : > {quoted}")
        else:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            if not os.path.lexists(target):
                Path(target).touch()
        script.append(f"mount --bind {shlex.quote(str(staged))} {quoted}")
        mounted.append(Path(target))
    for index, path in enumerate(shadowed):
        aside = stage / ".keep" / str(index)
        quoted = shlex.quote(str(path))
        script += [f"mkdir -p {quoted}", f"mount --rbind {shlex.quote(str(aside))} {quoted}"]
    return script


def pod_summary(pod: client.V1Pod) -> dict[str, Any]:
    """A compact view of a pod's status, for test failure messages."""
    statuses = (pod.status.container_statuses if pod.status else None) or []
    return {
        "name": _key(pod).name,
        "phase": _phase(pod),
        "containers": [json.loads(json.dumps(s.to_dict(), default=str)) for s in statuses],
    }


def wait_until(predicate: Callable[[], T], timeout: float, interval: float = 0.2) -> T:
    """Poll `predicate` until it returns something truthy; raise TimeoutError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        time.sleep(interval)
