"""The cheap resync: at the applied head with nothing changed it fetches nothing and changes
nothing; an object another writer edited or deleted, or a new head, takes the full path."""

from __future__ import annotations

import json

import pytest
from kubernetes import client

from hooksync.jobspec import EXIT_OK
from world.converge import (
    PATH_IN_REPO,
    Run,
    Target,
    changed_between,
    configmap_data,
    live_objects,
)
from world.manifests import configmap, shop_files
from world.rollouts import RolloutStandIn

pytestmark = pytest.mark.cluster

CHEAP = "nothing fetched"


def steps(run: Run) -> list[str]:
    """The pipeline steps the run logged, in order."""
    found = []
    for line in run.stderr.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "step" in record:
            found.append(str(record["step"]))
    return found


def settled(target: Target) -> Run:
    """A resync after the first apply: it records what the objects look like once the
    controllers have had their say, so the next one can be cheap."""
    run = target.run("resync")
    assert run.code == EXIT_OK, run.explain()
    assert run.result == "no-op", run.explain()
    return run


def test_a_resync_at_the_applied_head_with_nothing_changed_fetches_nothing(
    kube: client.ApiClient, target: Target, rollouts: RolloutStandIn
) -> None:
    sha = target.repo.commit(shop_files(), "first")
    target.converge()
    settled(target)
    before = live_objects(kube, target.namespace)

    run = target.run("resync")
    assert run.code == EXIT_OK, run.explain()
    assert run.result == "no-op" and run.summary["sha"] == sha
    assert CHEAP in run.summary["message"], run.explain()
    assert "head" in steps(run) and "fetch" not in steps(run) and "render" not in steps(run)
    assert run.counts["unchanged"] == 3
    # Nothing written, the inventory included.
    assert changed_between(before, live_objects(kube, target.namespace)) == set()


def test_an_object_edited_by_another_writer_at_the_same_head_is_repaired(
    kube: client.ApiClient, target: Target, rollouts: RolloutStandIn
) -> None:
    target.repo.commit(shop_files("v1"), "first")
    target.converge()
    settled(target)
    core = client.CoreV1Api(kube)
    core.patch_namespaced_config_map(
        "settings", target.namespace, {"data": {"version": "edited by hand"}}
    )

    run = target.run("resync")
    assert run.code == EXIT_OK, run.explain()
    assert run.result == "success", run.explain()
    assert run.summary["drifted"] == ["ConfigMap/settings"]
    assert "fetch" in steps(run)
    assert configmap_data(kube, target.namespace, "settings") == {"version": "v1"}
    # The repair recorded the repaired object: the next resync is cheap again.
    again = target.run("resync")
    assert again.result == "no-op" and CHEAP in again.summary["message"], again.explain()


def test_an_object_deleted_by_another_writer_at_the_same_head_is_recreated(
    kube: client.ApiClient, target: Target, rollouts: RolloutStandIn
) -> None:
    target.repo.commit(shop_files("v1"), "first")
    target.converge()
    settled(target)
    client.CoreV1Api(kube).delete_namespaced_config_map("settings", target.namespace)

    run = target.run("resync")
    assert run.code == EXIT_OK, run.explain()
    assert run.result == "success" and run.summary["drifted"] == ["ConfigMap/settings"]
    assert configmap_data(kube, target.namespace, "settings") == {"version": "v1"}


def test_a_new_head_takes_the_full_path(
    kube: client.ApiClient, target: Target, rollouts: RolloutStandIn
) -> None:
    target.repo.commit(shop_files("v1"), "first")
    target.converge()
    settled(target)
    new = target.repo.commit(
        {f"{PATH_IN_REPO}/config.yaml": configmap("settings", {"version": "v2"})}, "second"
    )

    run = target.run("resync")
    assert run.code == EXIT_OK, run.explain()
    assert run.result == "success" and run.summary["sha"] == new
    assert "fetch" in steps(run) and CHEAP not in run.summary["message"]
    assert configmap_data(kube, target.namespace, "settings") == {"version": "v2"}
