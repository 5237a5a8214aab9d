"""The per-object diff: only hooksync's fields, Secret values hidden, unified YAML."""

from __future__ import annotations

import base64
from typing import Any

from hooksync.diffs import ObjectDiff
from jobimage.objectdiff import (
    HIDDEN,
    HIDDEN_CHANGED,
    LAST_APPLIED,
    object_diff,
    owned_fields,
    project,
)


def managed(manager: str, fields: dict[str, Any], operation: str = "Apply") -> dict[str, Any]:
    return {
        "manager": manager,
        "operation": operation,
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    }


DEPLOYMENT_FIELDS: dict[str, Any] = {
    "f:spec": {
        "f:replicas": {},
        "f:template": {
            "f:spec": {
                "f:containers": {
                    'k:{"name":"web"}': {".": {}, "f:image": {}, "f:name": {}},
                }
            }
        },
    }
}


def deployment(replicas: int, image: str, *, other: int = 0) -> dict[str, Any]:
    """A Deployment as the API server returns it: defaults, status, and another manager's
    minReadySeconds next to hooksync's fields."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "uid": "u-1",
            "resourceVersion": "41",
            "generation": 3,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "managedFields": [
                managed("hooksync", DEPLOYMENT_FIELDS),
                managed("other", {"f:spec": {"f:minReadySeconds": {}}}),
                managed("kube-controller-manager", {"f:status": {}}, "Update"),
            ],
        },
        "spec": {
            "replicas": replicas,
            "minReadySeconds": other,
            "progressDeadlineSeconds": 600,
            "template": {
                "spec": {
                    "containers": [
                        {"name": "sidecar", "image": "mesh:1"},
                        {"name": "web", "image": image, "imagePullPolicy": "IfNotPresent"},
                    ]
                }
            },
        },
        "status": {"replicas": replicas, "observedGeneration": 3},
    }


def changed_lines(text: str) -> list[str]:
    return [
        line
        for line in text.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++ ", "--- "))
    ]


def test_only_the_changed_field_hooksync_owns_shows() -> None:
    live = deployment(1, "web:1", other=0)
    answer = deployment(3, "web:1", other=9)  # the other manager's change is not ours
    answer["status"]["replicas"] = 7
    diff = object_diff("Deployment/web", {}, live, answer)
    assert diff.would == "change"
    assert changed_lines(diff.text) == ["-  replicas: 1", "+  replicas: 3"]
    assert diff.text.startswith("--- Deployment/web (live)\n+++ Deployment/web (after apply)\n")
    for hidden in ("minReadySeconds", "status", "progressDeadlineSeconds", "sidecar", "uid"):
        assert hidden not in diff.text


def test_list_items_are_found_by_key_and_shown_with_it() -> None:
    diff = object_diff("Deployment/web", {}, deployment(1, "web:1"), deployment(1, "web:2"))
    assert changed_lines(diff.text) == ["-      - image: web:1", "+      - image: web:2"]
    assert "        name: web" in diff.text.splitlines()[-1]


def test_the_same_fields_are_unchanged_with_no_text() -> None:
    live = deployment(2, "web:1")
    answer = deployment(2, "web:1", other=5)
    answer["metadata"]["resourceVersion"] = "99"
    assert object_diff("Deployment/web", {}, live, answer) == ObjectDiff(
        "Deployment/web", "unchanged"
    )


def test_a_field_hooksync_stops_setting_shows_as_removed() -> None:
    live = deployment(2, "web:1")
    answer = deployment(2, "web:1")
    del answer["spec"]["replicas"]
    answer["metadata"]["managedFields"][0]["fieldsV1"] = {
        "f:spec": {"f:template": DEPLOYMENT_FIELDS["f:spec"]["f:template"]}
    }
    diff = object_diff("Deployment/web", {}, live, answer)
    assert changed_lines(diff.text) == ["-  replicas: 2"]


def test_a_new_object_shows_its_manifest_all_added() -> None:
    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "extra"},
        "data": {"conf": "a = 1\nb = 2\n"},
    }
    diff = object_diff("ConfigMap/extra", manifest, None, manifest)
    assert diff.would == "create"
    lines = diff.text.splitlines()
    assert lines[0] == "--- ConfigMap/extra (not in the cluster)"
    assert lines[3:] == [
        "+apiVersion: v1",
        "+data:",
        "+  conf: |",
        "+    a = 1",
        "+    b = 2",
        "+kind: ConfigMap",
        "+metadata:",
        "+  name: extra",
    ]


def test_without_managed_fields_what_git_sets_is_compared() -> None:
    desired = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "data": {"k": "new"},
    }
    live = {**desired, "data": {"k": "old", "theirs": "x"}, "metadata": {"name": "c", "uid": "1"}}
    answer = {**desired, "data": {"k": "new", "theirs": "x"}, "metadata": {"name": "c"}}
    diff = object_diff("ConfigMap/c", desired, live, answer)
    assert changed_lines(diff.text) == ["-  k: old", "+  k: new"]
    assert "theirs" not in diff.text


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def secret(data: dict[str, str], fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "db",
            "annotations": {LAST_APPLIED: f'{{"data": {data}}}'},
            "managedFields": [managed("hooksync", fields)],
        },
        "data": {key: b64(value) for key, value in data.items()},
    }


def test_a_secret_shows_which_keys_changed_and_no_value() -> None:
    live = secret(
        {"password": "old-pass", "user": "app-user-7", "gone": "bye-8"},
        {
            "f:data": {"f:password": {}, "f:user": {}, "f:gone": {}},
            "f:metadata": {"f:annotations": {f"f:{LAST_APPLIED}": {}}},
        },
    )
    answer = secret(
        {"password": "new-pass", "user": "app-user-7", "added": "hi-9"},
        {
            "f:stringData": {"f:password": {}, "f:added": {}},
            "f:data": {"f:user": {}},
            "f:metadata": {"f:annotations": {f"f:{LAST_APPLIED}": {}}},
        },
    )
    diff = object_diff("Secret/db", {}, live, answer)
    # The annotation that copies the values reads the same hidden on both sides.
    assert sorted(changed_lines(diff.text)) == [
        f"+  added: {HIDDEN}",
        f"+  password: {HIDDEN_CHANGED}",
        f"-  gone: {HIDDEN}",
        f"-  password: {HIDDEN}",
    ]
    for value in ("old-pass", "new-pass", "app-user-7", "bye-8", "hi-9"):
        assert value not in diff.text and b64(value) not in diff.text, value


def test_a_new_secret_shows_its_keys_only() -> None:
    manifest = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "api", "annotations": {LAST_APPLIED: '{"stringData": "tok-123"}'}},
        "stringData": {"token": "tok-123"},
        "data": {"ca": b64("cert")},
    }
    diff = object_diff("Secret/api", manifest, None, manifest)
    assert f"+  token: {HIDDEN}" in diff.text.splitlines()
    assert f"+  ca: {HIDDEN}" in diff.text.splitlines()
    assert f"+    {LAST_APPLIED}: {HIDDEN}" in diff.text.splitlines()
    assert "stringData" not in diff.text
    for value in ("tok-123", "cert", b64("cert"), b64("tok-123")):
        assert value not in diff.text


def test_owned_fields_merge_every_apply_entry_of_the_manager() -> None:
    obj = {
        "metadata": {
            "managedFields": [
                managed("hooksync", {"f:data": {"f:a": {}}}),
                managed("hooksync", {"f:data": {"f:b": {}}}),
                managed("hooksync", {"f:data": {"f:c": {}}}, "Update"),
                managed("someone", {"f:data": {"f:d": {}}}),
            ]
        }
    }
    assert owned_fields(obj) == {"f:data": {"f:a": {}, "f:b": {}}}


def test_project_by_value_and_index() -> None:
    value = {"finalizers": ["a", "b", "c"], "args": ["x", "y"]}
    fields: dict[str, Any] = {"f:finalizers": {'v:"c"': {}, 'v:"a"': {}}, "f:args": {"i:1": {}}}
    assert project(value, fields) == {"finalizers": ["a", "c"], "args": ["y"]}
