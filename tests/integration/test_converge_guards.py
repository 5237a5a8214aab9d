"""The Job's guards end to end: `hooksync-job` against the local control plane, as the target's
ServiceAccount, refusing what would let a push escape its namespace or exhaust the Job.

Each refusal is permanent (exit 2), names the step that failed and what to fix, and leaves the
namespace as it was. The harness (targets, Git server, reading the cluster) is the converge
tests'.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest
import yaml
from kubernetes import client

from hooksync.jobspec import EXIT_OK, EXIT_PERMANENT, EXIT_TRANSIENT
from jobimage.podsecurity import ENFORCE_LABEL
from world.converge import PATH_IN_REPO, Run, Target, live_objects
from world.hostile import bytes_bomb, nested
from world.manifests import configmap

pytestmark = pytest.mark.cluster

# The Job container's memory limit (receiver/dispatch/manifests.py): a bomb must stay under it.
JOB_MEMORY_LIMIT_KIB = 512 * 1024
RBAC = "rbac.authorization.k8s.io"


@dataclass
class Measured:
    """A finished run and its peak resident memory, kustomize and git included."""

    run: Run
    peak_rss_kib: int


def run_measured(target: Target, *extra: str) -> Measured:
    """Run `hooksync-job apply` to the end, reaping it with wait4 to read its peak RSS."""
    process = target.start("apply", *extra)
    outputs: dict[str, str] = {}

    def drain(name: str, stream: IO[str] | None) -> None:
        outputs[name] = stream.read() if stream is not None else ""

    readers = [
        threading.Thread(target=drain, args=("stdout", process.stdout), daemon=True),
        threading.Thread(target=drain, args=("stderr", process.stderr), daemon=True),
    ]
    for reader in readers:
        reader.start()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    for reader in readers:
        reader.join(timeout=30)
    stdout = outputs.get("stdout", "")
    lines = [line for line in stdout.splitlines() if line.strip()]
    summary = json.loads(lines[-1]) if lines else {}
    run = Run(process.returncode, summary, stdout, outputs.get("stderr", ""))
    return Measured(run, usage.ru_maxrss)


def refused(run: Run, step: str) -> str:
    """Assert a permanent failure in `step`; return its message."""
    assert run.code == EXIT_PERMANENT, run.explain()
    assert run.result == "failure" and run.summary["failed_step"] == step, run.explain()
    message = str(run.summary["message"])
    assert message.startswith(f"apply failed: {step}: "), message
    return message


def nothing_applied(kube: client.ApiClient, target: Target) -> None:
    assert live_objects(kube, target.namespace).names() == set()
    bindings = client.RbacAuthorizationV1Api(kube).list_namespaced_role_binding(target.namespace)
    assert {b.metadata.name for b in bindings.items} == {target.account}


# --- Pod Security -------------------------------------------------------------------------------


@pytest.fixture
def unenforced(kube: client.ApiClient, target: Target) -> Target:
    """The target, with its namespace's Pod Security label removed (it enforces nothing)."""
    client.CoreV1Api(kube).patch_namespace(
        target.namespace, {"metadata": {"labels": {ENFORCE_LABEL: None}}}
    )
    return target


def test_a_namespace_without_pod_security_is_refused_and_nothing_applied(
    kube: client.ApiClient, unenforced: Target
) -> None:
    unenforced.repo.commit({f"{PATH_IN_REPO}/config.yaml": configmap("settings", {})}, "first")

    run = unenforced.run()

    message = refused(run, "namespace")
    assert f"{ENFORCE_LABEL}=restricted" in message and "allowUnenforcedPodSecurity" in message
    nothing_applied(kube, unenforced)


def test_a_target_that_opts_out_converges_an_unenforced_namespace(
    kube: client.ApiClient, unenforced: Target
) -> None:
    unenforced.repo.commit({f"{PATH_IN_REPO}/config.yaml": configmap("settings", {})}, "first")

    run = unenforced.run("apply", "--allow-unenforced-pod-security")

    assert run.code == EXIT_OK and run.counts["created"] == 1, run.explain()
    assert ("ConfigMap", "settings") in live_objects(kube, unenforced.namespace).names()


# --- RoleBindings -------------------------------------------------------------------------------


@pytest.fixture
def may_ship_rbac(kube: client.ApiClient, target: Target) -> Target:
    """The target's Role also manages RoleBindings, so only the guard can stop one."""
    rbac = client.RbacAuthorizationV1Api(kube)
    role = rbac.read_namespaced_role(target.account, target.namespace)
    role.rules.append(
        client.V1PolicyRule(api_groups=[RBAC], resources=["rolebindings"], verbs=["*"])
    )
    rbac.replace_namespaced_role(target.account, target.namespace, role)
    return target


def binding(name: str, role: str, *subjects: dict[str, str]) -> str:
    """A RoleBinding of `role`; the target's own Role, so RBAC alone would let it through."""
    return yaml.safe_dump(
        {
            "apiVersion": f"{RBAC}/v1",
            "kind": "RoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": role},
            "subjects": list(subjects),
        }
    )


@pytest.mark.parametrize("group", ["system:authenticated", "system:unauthenticated"])
def test_a_binding_to_a_broad_group_is_refused_before_anything_is_applied(
    kube: client.ApiClient, may_ship_rbac: Target, group: str
) -> None:
    may_ship_rbac.repo.commit(
        {
            f"{PATH_IN_REPO}/config.yaml": configmap("settings", {}),
            f"{PATH_IN_REPO}/rbac.yaml": binding(
                "everyone", may_ship_rbac.account, {"kind": "Group", "name": group}
            ),
        },
        "open the namespace",
    )

    message = refused(may_ship_rbac.run(), "validate")

    assert f"{PATH_IN_REPO}/rbac.yaml document 1: RoleBinding/everyone" in message
    assert group in message
    nothing_applied(kube, may_ship_rbac)


def test_a_binding_to_another_namespace_needs_the_configuration(
    kube: client.ApiClient, may_ship_rbac: Target
) -> None:
    monitoring = {"kind": "ServiceAccount", "name": "prometheus", "namespace": "monitoring"}
    may_ship_rbac.repo.commit(
        {f"{PATH_IN_REPO}/rbac.yaml": binding("metrics", may_ship_rbac.account, monitoring)},
        "let prometheus read",
    )

    message = refused(may_ship_rbac.run(), "validate")
    assert "allowedSubjectNamespaces" in message and "'monitoring'" in message
    nothing_applied(kube, may_ship_rbac)

    allowed = may_ship_rbac.run("apply", "--allow-subjects-from", "monitoring")
    assert allowed.code == EXIT_OK, allowed.explain()
    rbac = client.RbacAuthorizationV1Api(kube)
    live = rbac.read_namespaced_role_binding("metrics", may_ship_rbac.namespace)
    assert [(s.kind, s.namespace) for s in live.subjects] == [("ServiceAccount", "monitoring")]


# --- YAML bombs and deep nesting ----------------------------------------------------------------


def test_a_bomb_by_bytes_is_refused_naming_the_file_within_the_jobs_memory(
    kube: client.ApiClient, target: Target
) -> None:
    target.repo.commit(
        {
            f"{PATH_IN_REPO}/config.yaml": configmap("settings", {}),
            f"{PATH_IN_REPO}/bomb.yaml": bytes_bomb(),
        },
        "9 KB that expand to a gigabyte",
    )

    measured = run_measured(target)

    message = refused(measured.run, "render")
    assert f"{PATH_IN_REPO}/bomb.yaml: refused, a document expands to over" in message
    assert measured.peak_rss_kib < JOB_MEMORY_LIMIT_KIB, measured.peak_rss_kib
    nothing_applied(kube, target)


def test_a_bomb_in_a_kustomize_resource_is_refused_before_kustomize_expands_it(
    kube: client.ApiClient, target: Target
) -> None:
    target.repo.commit(
        {
            f"{PATH_IN_REPO}/kustomization.yaml": "resources: [config.yaml, bomb.yaml]\n",
            f"{PATH_IN_REPO}/config.yaml": configmap("settings", {}),
            f"{PATH_IN_REPO}/bomb.yaml": bytes_bomb(),
        },
        "a bomb for kustomize",
    )

    measured = run_measured(target)

    message = refused(measured.run, "render")
    assert f"{PATH_IN_REPO}/bomb.yaml: refused" in message and "goroutine" not in message
    assert measured.peak_rss_kib < JOB_MEMORY_LIMIT_KIB, measured.peak_rss_kib
    nothing_applied(kube, target)


def test_nesting_too_deep_for_python_is_permanent(kube: client.ApiClient, target: Target) -> None:
    # 500 levels: libyaml reads it, but copying it for the API server would recurse too deep.
    target.repo.commit({f"{PATH_IN_REPO}/deep.yaml": nested(depth=500)}, "deep")

    message = refused(target.run(), "render")

    assert f"{PATH_IN_REPO}/deep.yaml: refused, it nests deeper than" in message
    nothing_applied(kube, target)


# --- a fetch that hangs -------------------------------------------------------------------------


@pytest.fixture
def stalling_git() -> Iterator[str]:
    """An HTTP "Git server" that accepts connections and never answers; yields a unique URL."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/stall-{uuid.uuid4().hex}.git"
    finally:
        stop.set()
        thread.join(timeout=5)
        for connection in held:
            connection.close()
        server.close()


def processes_naming(text: str) -> list[str]:
    """Command lines of live processes that contain `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


def test_a_fetch_that_times_out_leaves_no_git_process_behind(
    kube: client.ApiClient, target: Target, stalling_git: str
) -> None:
    target.env["HOOKSYNC_GIT_TIMEOUT_SECONDS"] = "3"

    run = target.run("apply", "--clone-url", stalling_git)

    assert run.code == EXIT_TRANSIENT, run.explain()
    assert run.summary["failed_step"] == "fetch"
    assert "git fetch took longer than 3s" in run.summary["message"]
    assert processes_naming(stalling_git) == []
    nothing_applied(kube, target)
