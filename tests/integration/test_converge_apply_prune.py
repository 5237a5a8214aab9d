"""Converge: apply, no-op, edit and prune; what prune spares; a render with no objects; objects
outside the namespace; the branch head wins over an older commit.

Each test runs `hooksync-job` the way a Job does (`world.converge.Target`: a subprocess as
the target's ServiceAccount, fetching over token-protected HTTP; or a real Job under the
process kubelet) and asserts what it leaves behind: objects, resourceVersions, the
inventory, the summary and the exit code. Fixtures (`target`, `git`, `rollouts`,
`other_namespace`) are in conftest.py.
"""

from __future__ import annotations

import pytest
import yaml
from kubernetes import client

from hooksync.inventory import inventory_labels
from hooksync.jobspec import EXIT_OK, EXIT_PERMANENT
from hooksync.names import PRUNE, PRUNE_DISABLED
from world.converge import (
    PATH_IN_REPO,
    Target,
    changed_between,
    configmap_data,
    inventory_key,
    inventory_of,
    live_objects,
)
from world.manifests import configmap, service, shop_files
from world.rollouts import RolloutStandIn

pytestmark = pytest.mark.cluster


def test_apply_creates_then_noop_then_changes_one_then_prunes_one(
    kube: client.ApiClient, target: Target, rollouts: RolloutStandIn
) -> None:
    first_sha = target.repo.commit(shop_files("v1"), "first")

    first = target.run()
    assert first.code == EXIT_OK, first.explain()
    assert first.result == "success" and first.summary["sha"] == first_sha
    assert first.counts["created"] == 3 and first.counts["pruned"] == 0
    after_first = live_objects(kube, target.namespace)
    assert after_first.names() == {
        ("ConfigMap", "settings"), ("Service", "web"), ("Deployment", "web"),
        inventory_key(target),
    }  # fmt: skip
    labels = inventory_labels(target.name, target.namespace)
    for key, obj in after_first.objects.items():
        if key != inventory_key(target):
            assert labels.items() <= obj["metadata"]["labels"].items(), key
    sha, recorded = inventory_of(kube, target)
    assert sha == first_sha
    assert recorded == ["ConfigMap/settings", "Deployment/web", "Service/web"]

    # Same head again: nothing to do, and nothing written, inventory included.
    again = target.run()
    assert again.code == EXIT_OK, again.explain()
    assert again.result == "no-op" and again.summary["sha"] == first_sha
    assert changed_between(after_first, live_objects(kube, target.namespace)) == set()

    # One object edited in Git: exactly that object changes (and the inventory records it).
    edit_sha = target.repo.commit(
        {f"{PATH_IN_REPO}/config.yaml": configmap("settings", {"version": "v2"})}, "edit"
    )
    edited = target.run()
    assert edited.code == EXIT_OK, edited.explain()
    assert edited.counts["configured"] == 1 and edited.counts["unchanged"] == 2
    assert edited.summary["objects"] == ["ConfigMap/settings"]
    after_edit = live_objects(kube, target.namespace)
    assert changed_between(after_first, after_edit) == {
        ("ConfigMap", "settings"), inventory_key(target)
    }  # fmt: skip
    assert configmap_data(kube, target.namespace, "settings") == {"version": "v2"}
    assert inventory_of(kube, target)[0] == edit_sha

    # A file removed from Git: its object is pruned, and nothing else moves.
    prune_sha = target.repo.commit({f"{PATH_IN_REPO}/service.yaml": None}, "drop the service")
    pruned = target.run()
    assert pruned.code == EXIT_OK, pruned.explain()
    assert pruned.counts["pruned"] == 1 and pruned.counts["unchanged"] == 2
    assert pruned.summary["objects"] == ["-Service/web"]
    after_prune = live_objects(kube, target.namespace)
    assert changed_between(after_edit, after_prune) == {("Service", "web"), inventory_key(target)}
    assert ("Service", "web") not in after_prune.names()
    sha, recorded = inventory_of(kube, target)
    assert sha == prune_sha and recorded == ["ConfigMap/settings", "Deployment/web"]


def test_prune_spares_other_targets_unlabelled_objects_and_prune_disabled(
    kube: client.ApiClient, target: Target, other_namespace: str
) -> None:
    # Run as admin here, so that only the engine's own rules (not RBAC) keep prune inside its
    # target: with the target's Role, a stray delete elsewhere would merely be forbidden.
    core = client.CoreV1Api(kube)
    ns = target.namespace
    target.repo.commit(
        {
            f"{PATH_IN_REPO}/old.yaml": configmap("old", {"k": "v"}) + "---\n" + service("old"),
            f"{PATH_IN_REPO}/kept.yaml": configmap("kept", {"k": "v"}, {PRUNE: PRUNE_DISABLED}),
            f"{PATH_IN_REPO}/stays.yaml": configmap("stays", {"k": "v"}),
        },
        "first",
    )
    target.converge()

    def create_configmap(namespace: str, name: str, labels: dict[str, str] | None) -> None:
        meta = client.V1ObjectMeta(name=name, labels=labels)
        core.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata=meta))

    def create_service(namespace: str, name: str, labels: dict[str, str] | None) -> None:
        spec = client.V1ServiceSpec(ports=[client.V1ServicePort(port=80)])
        meta = client.V1ObjectMeta(name=name, labels=labels)
        core.create_namespaced_service(namespace, client.V1Service(metadata=meta, spec=spec))

    # Another target's objects and hand-made ones beside ours...
    other_labels = inventory_labels("another", ns)
    create_configmap(ns, "another-config", other_labels)
    create_service(ns, "another-web", other_labels)
    create_configmap(ns, "hand-made", None)
    create_service(ns, "hand-made", None)
    # ...and, elsewhere, namesakes of what is about to be pruned, even with this target's labels.
    own_labels = inventory_labels(target.name, ns)
    create_configmap(other_namespace, "old", own_labels)
    create_service(other_namespace, "old", own_labels)
    create_configmap(other_namespace, "kept", None)
    before = live_objects(kube, ns)
    elsewhere = live_objects(kube, other_namespace)

    target.repo.commit(
        {f"{PATH_IN_REPO}/old.yaml": None, f"{PATH_IN_REPO}/kept.yaml": None}, "drop old and kept"
    )
    run = target.run(kubeconfig=target.admin_kubeconfig)
    assert run.code == EXIT_OK, run.explain()
    assert run.counts["pruned"] == 2
    assert sorted(run.summary["objects"]) == ["-ConfigMap/old", "-Service/old"]
    after = live_objects(kube, ns)
    assert changed_between(before, after) == {
        ("ConfigMap", "old"), ("Service", "old"), inventory_key(target)
    }  # fmt: skip
    assert ("ConfigMap", "kept") in after.names()
    assert changed_between(elsewhere, live_objects(kube, other_namespace)) == set()
    assert inventory_of(kube, target)[1] == ["ConfigMap/stays"]


@pytest.mark.parametrize(
    "emptiness",
    [
        pytest.param(
            {f"{PATH_IN_REPO}/empty.yaml": "---\n# nothing yet\n---\n\n"}, id="empty-docs"
        ),
        pytest.param({f"{PATH_IN_REPO}/README.md": "manifests go here\n"}, id="no-yaml"),
    ],
)
def test_render_with_zero_objects_prunes_nothing(
    kube: client.ApiClient,
    target: Target,
    rollouts: RolloutStandIn,
    emptiness: dict[str, str | bytes | None],
) -> None:
    target.repo.commit(shop_files(), "first")
    target.converge()
    before = live_objects(kube, target.namespace)

    everything_gone: dict[str, str | bytes | None] = dict.fromkeys(shop_files())
    target.repo.commit(everything_gone | emptiness, "empty the folder")
    run = target.run()
    assert run.code == EXIT_OK, run.explain()
    assert run.counts["pruned"] == 0
    after = live_objects(kube, target.namespace)
    assert after.names() == before.names()
    assert changed_between(before, after) - {inventory_key(target)} == set()

    # The objects stay prunable: once Git has objects again, the ones it dropped go.
    target.repo.commit(
        {f"{PATH_IN_REPO}/config.yaml": configmap("settings", {"version": "v1"})}, "one back"
    )
    back = target.run()
    assert back.code == EXIT_OK, back.explain()
    assert sorted(back.summary["objects"]) == ["-Deployment/web", "-Service/web"]
    assert live_objects(kube, target.namespace).names() == {
        ("ConfigMap", "settings"), inventory_key(target)
    }  # fmt: skip


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        pytest.param(
            yaml.safe_dump(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "sneaky-ns"}}
            ),
            "Namespace is cluster-scoped",
            id="namespace",
        ),
        pytest.param(
            yaml.safe_dump(
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRole",
                    "metadata": {"name": "sneaky-role"},
                    "rules": [],
                }
            ),
            "ClusterRole is cluster-scoped",
            id="clusterrole",
        ),
        pytest.param(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "elsewhere", "namespace": "kube-system"},
                }
            ),
            "is in namespace 'kube-system'",
            id="foreign-namespace",
        ),
    ],
)
def test_object_outside_the_namespace_fails_permanently_and_applies_nothing(
    kube: client.ApiClient, target: Target, bad: str, expected: str
) -> None:
    target.repo.commit({f"{PATH_IN_REPO}/config.yaml": configmap("settings", {"v": "1"})}, "ok")
    target.converge()
    before = live_objects(kube, target.namespace)

    target.repo.commit(
        {
            f"{PATH_IN_REPO}/config.yaml": configmap("settings", {"v": "2"}),
            f"{PATH_IN_REPO}/fresh.yaml": configmap("fresh", {"v": "2"}),
            f"{PATH_IN_REPO}/zz-bad.yaml": bad,
        },
        "bad",
    )
    run = target.run()
    assert run.code == EXIT_PERMANENT, run.explain()
    assert run.result == "failure"
    assert expected in run.summary["message"] and "zz-bad.yaml" in run.summary["message"]
    assert changed_between(before, live_objects(kube, target.namespace)) == set()
    names = {ns.metadata.name for ns in client.CoreV1Api(kube).list_namespace().items}
    assert "sneaky-ns" not in names
    roles = client.RbacAuthorizationV1Api(kube).list_cluster_role().items
    assert "sneaky-role" not in {role.metadata.name for role in roles}


def test_apply_converges_the_branch_head_not_an_older_commit(
    kube: client.ApiClient, target: Target
) -> None:
    older = target.repo.commit(
        {f"{PATH_IN_REPO}/config.yaml": configmap("settings", {"version": "older"})}, "older"
    )
    newest = target.repo.commit(
        {f"{PATH_IN_REPO}/config.yaml": configmap("settings", {"version": "newest"})}, "newest"
    )
    # The Job for the older push starts only now; its args carry no SHA, so it takes the head.
    run = target.run()
    assert run.code == EXIT_OK, run.explain()
    assert run.summary["sha"] == newest != older
    assert configmap_data(kube, target.namespace, "settings") == {"version": "newest"}
    assert inventory_of(kube, target)[0] == newest

    # Even handed the older SHA, an apply converges the head: an old event cannot roll back.
    stale = target.run("apply", sha=older)
    assert stale.code == EXIT_OK, stale.explain()
    assert stale.summary["sha"] == newest
    assert configmap_data(kube, target.namespace, "settings") == {"version": "newest"}
    assert inventory_of(kube, target)[0] == newest
