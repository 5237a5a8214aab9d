"""Metric labels stay bounded: event names fold into a fixed set, one SHA series per target."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from receiver.metrics import ReceiverMetrics


@pytest.mark.parametrize(
    ("event", "label"),
    [
        ("push", "push"),
        ("pull_request", "pull_request"),
        ("ping", "ping"),
        ("Push Hook", "push"),
        ("Merge Request Hook", "merge_request"),
        ("Tag Push Hook", "tag_push"),
        ("Pipeline Hook", "other"),
        ("workflow_run", "other"),
        ("", "other"),
        ("push" * 50, "other"),
    ],
)
def test_event_labels_are_github_and_gitlab_names_in_one_small_set(event: str, label: str):
    assert ReceiverMetrics.event_label(event) == label


def test_last_applied_keeps_one_series_per_target():
    metrics = ReceiverMetrics()
    for sha in ("a" * 40, "b" * 40, "c" * 40):
        metrics.last_applied.labels("shop").info({"sha": sha})
    metrics.last_applied.labels("docs").info({"sha": "d" * 40})
    text = generate_latest(metrics.registry).decode()
    samples = [
        sample
        for family in text_string_to_metric_families(text)
        if family.name == "hooksync_last_applied_info"
        for sample in family.samples
    ]
    assert sorted((s.labels["target"], s.labels["sha"]) for s in samples) == [
        ("docs", "d" * 40),
        ("shop", "c" * 40),
    ]
