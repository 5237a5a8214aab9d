"""Converge: a preview shows, per object, what server-side apply would change, and an apply
what it did; Secret values never show, nor the fields another field manager owns.

Each test runs `hooksync-job` the way a Job does (`world.converge.Target`) and reads the
diffs back from its log with `hooksync.diffs`, as the receiver does. Fixtures (`target`,
`git`, `rollouts`) are in conftest.py.
"""

from __future__ import annotations

import base64

import pytest
import yaml
from kubernetes import client
from kubernetes.dynamic import DynamicClient

from hooksync import diffs
from hooksync.diffs import ObjectDiff
from hooksync.jobspec import EXIT_OK
from jobimage.objectdiff import HIDDEN, HIDDEN_CHANGED
from world.converge import PATH_IN_REPO, Run, Target
from world.manifests import configmap, deployment, shop_files
from world.rollouts import RolloutStandIn

pytestmark = pytest.mark.cluster


def preview(target: Target, sha: str) -> tuple[Run, dict[str, ObjectDiff]]:
    run = target.run("preview", sha=sha)
    assert run.code == EXIT_OK and run.result == "success", run.explain()
    found = diffs.from_log(run.stderr.splitlines())
    return run, {diff.object: diff for diff in found}


def changed_lines(text: str) -> list[str]:
    """The added and removed lines of a unified diff, without its file headers."""
    return [
        line
        for line in text.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++ ", "--- "))
    ]


def test_a_changed_deployment_shows_exactly_the_changed_field(
    target: Target, rollouts: RolloutStandIn
) -> None:
    target.repo.commit(shop_files("v1"), "main")
    target.converge()
    head = target.repo.commit(
        {f"{PATH_IN_REPO}/deployment.yaml": deployment("web", replicas=3)}, "scale", "feature"
    )

    run, found = preview(target, head)
    assert found["Deployment/web"].would == "change"
    text = found["Deployment/web"].text
    assert text.startswith("--- Deployment/web (live)\n+++ Deployment/web (after apply)\n")
    assert changed_lines(text) == ["-  replicas: 1", "+  replicas: 3"]
    # Server-populated fields and defaults are no part of it, not even as context.
    for server_field in (
        "status",
        "managedFields",
        "resourceVersion",
        "uid",
        "generation",
        "creationTimestamp",
        "progressDeadlineSeconds",
        "strategy",
    ):
        assert server_field not in text, server_field
    assert found["ConfigMap/settings"] == ObjectDiff("ConfigMap/settings", "unchanged")
    assert found["Service/web"] == ObjectDiff("Service/web", "unchanged")
    assert run.counts["configured"] == 1 and run.counts["unchanged"] == 2


def test_a_new_object_shows_its_manifest_a_pruned_one_its_name_in_a_stable_order(
    target: Target, rollouts: RolloutStandIn
) -> None:
    target.repo.commit(shop_files("v1"), "main")
    target.converge()
    head = target.repo.commit(
        {
            f"{PATH_IN_REPO}/service.yaml": None,
            f"{PATH_IN_REPO}/extra.yaml": configmap("extra", {"colour": "teal"}),
            f"{PATH_IN_REPO}/deployment.yaml": deployment("web", image="registry.local/web:2"),
        },
        "a pull request",
        branch="feature",
    )

    first, found = preview(target, head)
    assert list(found) == ["ConfigMap/extra", "ConfigMap/settings", "Deployment/web", "Service/web"]
    created = found["ConfigMap/extra"]
    assert created.would == "create"
    lines = created.text.splitlines()
    assert lines[:2] == [
        "--- ConfigMap/extra (not in the cluster)",
        "+++ ConfigMap/extra (after apply)",
    ]
    body = [line for line in lines[2:] if not line.startswith("@@")]
    assert body and all(line.startswith("+") for line in body)
    manifest = yaml.safe_load("\n".join(line[1:] for line in body))
    assert manifest["kind"] == "ConfigMap" and manifest["data"] == {"colour": "teal"}
    assert manifest["metadata"]["name"] == "extra"
    assert found["Service/web"] == ObjectDiff("Service/web", "prune")
    assert changed_lines(found["Deployment/web"].text) == [
        "-      - image: registry.local/web:1",
        "+      - image: registry.local/web:2",
    ]

    # The same head again: the same lines in the same order, word for word.
    again, _ = preview(target, head)
    assert diffs.from_log(again.stderr.splitlines()) == diffs.from_log(first.stderr.splitlines())


SECRET_VALUES = ("first-s3cret-value-Q7", "second-s3cret-value-Z9", "brand-new-s3cret-K2")


def secret(name: str, values: dict[str, str], encoded: dict[str, str] | None = None) -> str:
    """A Secret with `values` as stringData, and `encoded` base64-encoded as data."""
    document = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}}
    document["stringData"] = values
    if encoded:
        document["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in encoded.items()}
    return yaml.safe_dump(document)


def assert_no_secret_value(run: Run) -> None:
    output = run.stdout + run.stderr
    for value in SECRET_VALUES:
        assert value not in output, value
        assert base64.b64encode(value.encode()).decode() not in output, value


def test_a_secret_change_shows_which_keys_changed_never_a_value(
    target: Target, rollouts: RolloutStandIn
) -> None:
    files = shop_files("v1") | {
        f"{PATH_IN_REPO}/secret.yaml": secret(
            "db", {"password": SECRET_VALUES[0], "user": "app"}, {"old": "gone-soon"}
        )
    }
    target.repo.commit(files, "main")
    assert_no_secret_value(target.converge())
    head = target.repo.commit(
        {
            f"{PATH_IN_REPO}/secret.yaml": secret(
                "db", {"password": SECRET_VALUES[1], "user": "app", "added": "x"}
            ),
            f"{PATH_IN_REPO}/new-secret.yaml": secret("api", {"token": SECRET_VALUES[2]}),
        },
        "rotate",
        "feature",
    )

    run, found = preview(target, head)
    assert_no_secret_value(run)
    assert found["Secret/db"].would == "change"
    # (A key is removed only when it was set in `data`: the API server keeps no stringData,
    # so server-side apply cannot tell that it should remove a key once set there.)
    assert changed_lines(found["Secret/db"].text) == [
        f"-  old: {HIDDEN}",
        f"-  password: {HIDDEN}",
        f"+  added: {HIDDEN}",
        f"+  password: {HIDDEN_CHANGED}",
    ], found["Secret/db"].text
    assert found["Secret/api"].would == "create"
    assert f"+  token: {HIDDEN}" in found["Secret/api"].text.splitlines()

    # The apply itself logs what it changed, with the values hidden the same way.
    target.repo.commit(
        {f"{PATH_IN_REPO}/secret.yaml": secret("db", {"password": SECRET_VALUES[1]})}, "apply"
    )
    applied = target.converge()
    assert_no_secret_value(applied)
    outcomes = {o.object: o for o in diffs.outcomes_from_log(applied.stderr.splitlines())}
    assert outcomes["Secret/db"].outcome == "configured"
    assert f"+  password: {HIDDEN_CHANGED}" in outcomes["Secret/db"].text.splitlines()


def test_a_field_another_manager_owns_is_left_out(
    kube: client.ApiClient, target: Target, rollouts: RolloutStandIn
) -> None:
    target.repo.commit(shop_files("v1"), "main")
    target.converge()
    # Another controller adds its own key and annotation to the ConfigMap, and sets a field
    # of the Deployment that Git leaves out, each with a server-side apply of its own.
    dynamic = DynamicClient(kube)
    for api_version, kind, name, change in (
        (
            "v1",
            "ConfigMap",
            "settings",
            {
                "metadata": {"annotations": {"other.example/seen": "yes"}},
                "data": {"injected": "by-the-other"},
            },
        ),
        ("apps/v1", "Deployment", "web", {"spec": {"minReadySeconds": 7}}),
    ):
        body = {"apiVersion": api_version, "kind": kind, "metadata": {"name": name}}
        body["metadata"] |= change.pop("metadata", {})
        dynamic.resources.get(api_version=api_version, kind=kind).server_side_apply(
            body=body | change,
            name=name,
            namespace=target.namespace,
            field_manager="other-controller",
        )
    head = target.repo.commit(shop_files("v2"), "v2", "feature")

    run, found = preview(target, head)
    text = found["ConfigMap/settings"].text
    assert changed_lines(text) == ["-  version: v1", "+  version: v2"]
    assert "injected" not in text and "other.example" not in text
    assert found["Deployment/web"] == ObjectDiff("Deployment/web", "unchanged")
    assert run.counts["configured"] == 1
