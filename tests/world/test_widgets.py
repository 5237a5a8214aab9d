"""The Widget controller's decisions: which status each behavior writes, and when."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from world.widgets import API_VERSION, status_for, widget


def live(manifest: str, generation: int = 1, status: Any = None) -> dict[str, Any]:
    obj: dict[str, Any] = yaml.safe_load(manifest)
    obj["metadata"]["generation"] = generation
    if status is not None:
        obj["status"] = status
    return obj


def states(status: dict[str, Any] | None) -> dict[str, str]:
    assert status is not None
    return {c["type"]: f"{c['status']}/{c['reason']}" for c in status["conditions"]}


def test_each_behavior_writes_its_conditions_at_the_generation_it_saw() -> None:
    ready = status_for(live(widget("w", "ready"), 3), 0)
    assert ready is not None and ready["observedGeneration"] == 3
    assert states(ready) == {"Ready": "True/Provisioned"}
    assert states(status_for(live(widget("w", "never")), 3600)) == {"Ready": "False/Provisioning"}
    stalled = status_for(live(widget("w", "stalled")), 0)
    assert states(stalled) == {"Stalled": "True/QuotaExceeded", "Ready": "False/QuotaExceeded"}


def test_late_flips_ready_after_its_delay() -> None:
    late = live(widget("w", "late", delay_seconds=2))
    assert states(status_for(late, 1.9)) == {"Ready": "False/Provisioning"}
    assert states(status_for(late, 2.0)) == {"Ready": "True/Provisioned"}


def test_nothing_is_written_when_the_status_is_already_there() -> None:
    obj = live(widget("w", "ready"))
    obj["status"] = status_for(obj, 0)
    assert status_for(obj, 0) is None


def test_a_widget_manifest_is_a_widget_and_refuses_unknown_behaviors() -> None:
    assert yaml.safe_load(widget("w", "ready"))["apiVersion"] == API_VERSION
    with pytest.raises(ValueError, match="behavior 'sometimes'"):
        widget("w", "sometimes")
