"""Health of any kind by its status (jobimage.health), and how plan.health_of picks the rule."""

from __future__ import annotations

from typing import Any

import pytest

from jobimage.health import READY, TERMINAL_REASONS, current, pod_health
from jobimage.plan import health_of


def widget(generation: int = 2, status: dict[str, Any] | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "example.hooksync.dev/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": "shop", "generation": generation},
    }
    if status is not None:
        obj["status"] = status
    return obj


def condition(kind: str, status: str, reason: str = "", message: str = "", **extra: Any) -> Any:
    return {"type": kind, "status": status, "reason": reason, "message": message, **extra}


def test_an_object_without_status_is_current() -> None:
    assert current(widget(status=None)) == READY
    assert current(widget(status={})) == READY
    assert health_of({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}) == READY


def test_an_unobserved_generation_is_waited_for_whatever_the_conditions_say() -> None:
    stale = widget(3, {"observedGeneration": 2, "conditions": [condition("Ready", "True")]})
    health = current(stale)
    assert not health.ready and not health.failed
    assert "observe generation 3" in health.reason
    # A Stalled left from the old generation does not fail the spec that may fix it.
    stalled = widget(3, {"observedGeneration": 2, "conditions": [condition("Stalled", "True")]})
    assert not current(stalled).failed


def test_a_condition_stamped_with_an_older_generation_is_stale() -> None:
    ready = condition("Ready", "True", observedGeneration=1)
    health = current(widget(2, {"conditions": [ready]}))
    assert not health.ready and "from generation 1" in health.reason
    fresh = condition("Ready", "True", observedGeneration=2)
    assert current(widget(2, {"conditions": [fresh]})) == READY


def test_ready_true_at_the_observed_generation_is_current() -> None:
    status = {"observedGeneration": 2, "conditions": [condition("Ready", "True", "Done")]}
    assert current(widget(2, status)) == READY


@pytest.mark.parametrize("state", ["False", "Unknown"])
def test_ready_not_true_with_a_passing_reason_is_waited_for(state: str) -> None:
    ready = condition("Ready", state, "Provisioning", "creating the volume")
    health = current(widget(2, {"observedGeneration": 2, "conditions": [ready]}))
    assert not health.ready and not health.failed
    assert health.reason == f"Ready={state}: Provisioning: creating the volume"


@pytest.mark.parametrize("reason", sorted(TERMINAL_REASONS))
def test_ready_false_with_a_terminal_reason_fails_with_its_message(reason: str) -> None:
    ready = condition("Ready", "False", reason, "issuer acme-prod not found")
    health = current(widget(2, {"observedGeneration": 2, "conditions": [ready]}))
    assert health.failed and not health.ready
    assert health.reason == f"not ready: {reason}: issuer acme-prod not found"


def test_stalled_fails_with_its_message_even_beside_ready() -> None:
    conditions = [
        condition("Ready", "True"),
        condition("Stalled", "True", "QuotaExceeded", "no quota left for 3 widgets"),
    ]
    health = current(widget(2, {"observedGeneration": 2, "conditions": conditions}))
    assert health.failed
    assert health.reason == "stalled: QuotaExceeded: no quota left for 3 widgets"
    # Stalled=False is no failure.
    calm = [condition("Stalled", "False"), condition("Ready", "True")]
    assert current(widget(2, {"conditions": calm})) == READY


def test_reconciling_without_ready_is_waited_for_and_other_conditions_are_not() -> None:
    busy = widget(2, {"conditions": [condition("Reconciling", "True", "", "rolling out")]})
    assert current(busy).reason == "reconciling: rolling out"
    done = widget(2, {"conditions": [condition("Reconciling", "False")]})
    assert current(done) == READY
    unrelated = widget(2, {"conditions": [condition("AbleToScale", "False", "BackoffBoth")]})
    assert current(unrelated) == READY


def test_an_object_being_deleted_is_not_current() -> None:
    obj = widget(1, {})
    obj["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert not current(obj).ready


def test_malformed_statuses_are_read_without_error() -> None:
    for status in (
        {"conditions": "Ready"},
        {"conditions": [None, 3, {"status": "True"}]},
        {"observedGeneration": "2"},
        {"observedGeneration": True},
    ):
        assert current(widget(2, status)) == READY
    assert current({"status": ["not", "a", "mapping"]}) == READY


def test_health_of_reads_custom_resources_by_their_conditions() -> None:
    stalled = widget(1, {"conditions": [condition("Stalled", "True", "", "broken")]})
    assert health_of(stalled).failed
    # The built-in workloads keep their own rules: a Deployment's Ready condition means nothing.
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "generation": 1},
        "spec": {"replicas": 1},
        "status": {"observedGeneration": 1, "conditions": [condition("Ready", "True")]},
    }
    assert health_of(deployment).reason == "0 of 1 replicas updated"


def test_a_bare_pod_is_current_once_ready_or_succeeded_and_fails_once_failed() -> None:
    def pod(phase: str, ready: str = "False", **status: Any) -> dict[str, Any]:
        conditions = [condition("Ready", ready, "PodCompleted" if phase == "Succeeded" else "")]
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p"},
            "status": {"phase": phase, "conditions": conditions, **status},
        }

    assert health_of(pod("Succeeded")) == READY
    assert health_of(pod("Running", "True")) == READY
    assert health_of(pod("Running")).reason == "pod Running, not ready"
    failed = pod_health(pod("Failed", message="OOMKilled"))
    assert failed.failed and failed.reason == "pod failed: OOMKilled"
