"""Converge: the health of a custom resource, read from its status conditions. An apply waits
for a Widget whose Ready comes late, times out naming one whose Ready never comes, and fails
at once, with the controller's message, on one that is Stalled.

The Widget CRD is installed by the test; `world.widgets.WidgetController` writes the Widgets'
statuses as their spec asks. Each test first converges a Widget that becomes ready at once
(generation 1), then changes its spec: the new generation is what the apply has to wait for,
since an object its controller has not looked at yet (no status at all) counts as current.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from hooksync.jobspec import EXIT_OK, EXIT_PERMANENT
from world.converge import PATH_IN_REPO, Target, finished, inventory_of
from world.kubelet import wait_until
from world.widgets import (
    GROUP,
    PLURAL,
    VERSION,
    WidgetController,
    install_crd,
    widget,
    widget_role_rule,
)

pytestmark = pytest.mark.cluster

WIDGET_FILE = f"{PATH_IN_REPO}/widget.yaml"


@pytest.fixture(scope="module")
def widget_crd(kube: client.ApiClient) -> None:
    install_crd(kube)


@pytest.fixture
def widgets(
    kube: client.ApiClient, namespace: str, target: Target, widget_crd: None
) -> Iterator[WidgetController]:
    """The Widget controller for `namespace`, and the target's Role allowed to converge
    Widgets there (a real target's Role would name the kinds of its CRs the same way)."""
    rbac = client.RbacAuthorizationV1Api(kube)
    role = rbac.read_namespaced_role(target.account, namespace)
    role.rules.append(widget_role_rule())
    rbac.replace_namespaced_role(target.account, namespace, role)
    with WidgetController(kube, [namespace]) as controller:
        yield controller


def live_widget(kube: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    found: Any = client.CustomObjectsApi(kube).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name
    )
    return dict(found)


def ready_at(kube: client.ApiClient, namespace: str, name: str, generation: int) -> bool:
    status = live_widget(kube, namespace, name).get("status") or {}
    return status.get("observedGeneration") == generation and any(
        c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or []
    )


def converge_a_ready_widget(kube: client.ApiClient, target: Target) -> str:
    """Generation 1 of Widget `gadget`, converged and reported ready; its commit."""
    sha = target.repo.commit({WIDGET_FILE: widget("gadget", "ready")}, "a widget")
    target.converge()
    wait_until(lambda: ready_at(kube, target.namespace, "gadget", 1), timeout=30)
    return sha


def test_apply_waits_for_a_custom_resource_whose_ready_comes_late(
    kube: client.ApiClient, target: Target, widgets: WidgetController
) -> None:
    converge_a_ready_widget(kube, target)
    target.repo.commit(
        {WIDGET_FILE: widget("gadget", "late", size=2, delay_seconds=2)}, "a bigger widget"
    )
    run = finished(target.start())
    ended = time.monotonic()
    assert run.code == EXIT_OK, run.explain()
    assert run.result == "success" and run.counts["configured"] == 1
    # The controller first said Provisioning, then flipped Ready to True: the apply ended
    # only after the flip.
    flips = [w for w in widgets.written if w.name == "gadget" and w.generation == 2]
    assert [w.says("Ready", "True") for w in flips] == [False, True], flips
    assert flips[1].at < ended
    assert ready_at(kube, target.namespace, "gadget", 2)


def test_apply_times_out_naming_a_custom_resource_that_never_becomes_ready(
    kube: client.ApiClient, target: Target, widgets: WidgetController
) -> None:
    first = converge_a_ready_widget(kube, target)
    target.repo.commit({WIDGET_FILE: widget("gadget", "never", size=3)}, "a widget never made")
    target.timeout = 5
    run = target.run()
    assert run.code == EXIT_PERMANENT, run.explain()
    assert run.result == "failure"
    message = run.summary["message"]
    assert "not ready after 5s" in message and "Widget/gadget" in message, message
    assert "Provisioning: widget gadget of size 3 is being made" in message, message
    # What was applied stays recorded at the last SHA that converged, so the next run retries.
    sha, recorded = inventory_of(kube, target)
    assert sha == first and "Widget/gadget" in recorded


def test_apply_fails_at_once_with_the_message_of_a_stalled_custom_resource(
    kube: client.ApiClient, target: Target, widgets: WidgetController
) -> None:
    first = converge_a_ready_widget(kube, target)
    target.repo.commit({WIDGET_FILE: widget("gadget", "stalled", size=9)}, "too many widgets")
    target.timeout = 120
    run = target.run()
    assert run.code == EXIT_PERMANENT, run.explain()
    assert run.result == "failure"
    message = run.summary["message"]
    assert "Widget/gadget failed: stalled: QuotaExceeded: no quota left for widget gadget" in (
        message
    ), message
    # Failed on the controller's word, not by waiting out the timeout.
    assert "not ready after" not in message
    sha, recorded = inventory_of(kube, target)
    assert sha == first and "Widget/gadget" in recorded
