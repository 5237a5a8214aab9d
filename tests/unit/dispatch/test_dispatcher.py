"""The Dispatcher's one pure rule: a new apply Job never takes a name an ended Job still holds."""

from __future__ import annotations

from typing import Any

from hooksync.names import job_name, waiting_job_name
from receiver.dispatch.dispatcher import name_past_ended

SHA = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"


def ended(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "status": {"conditions": [{"type": "Complete", "status": "True"}]},
    }


def test_a_free_name_is_kept() -> None:
    name = job_name("shop", "apply", SHA)
    assert name_past_ended([], name, "shop") == name
    # A Job that has not ended holds its name for a reason: dispatch meets 409 and looks again.
    assert name_past_ended([{"metadata": {"name": name}}], name, "shop") == name


def test_a_sha_pushed_again_is_named_after_the_ended_job_then_after_that_one() -> None:
    first = job_name("shop", "apply", SHA)
    second = waiting_job_name("shop", first)
    third = waiting_job_name("shop", second)
    assert name_past_ended([ended(first)], first, "shop") == second
    assert name_past_ended([ended(second), ended(first)], first, "shop") == third
