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


def samples_of(
    metrics: ReceiverMetrics, family_name: str, *labels: str
) -> dict[tuple[str, ...], float]:
    """{(sample name, values of `labels` in that order): value} for one family's samples."""
    text = generate_latest(metrics.registry).decode()
    return {
        (sample.name, *(sample.labels[name] for name in labels if name in sample.labels)): (
            sample.value
        )
        for family in text_string_to_metric_families(text)
        if family.name == family_name
        for sample in family.samples
    }


def test_deliveries_are_counted_by_provider_event_label_and_outcome():
    metrics = ReceiverMetrics()
    for _ in range(3):
        metrics.count_delivery("github", "push", "ignored")
    metrics.count_delivery("github", "push", "dispatched")
    metrics.count_delivery("gitlab", "Push Hook", "ignored")
    assert samples_of(metrics, "hooksync_deliveries", "provider", "event", "outcome") == {
        ("hooksync_deliveries_total", "github", "push", "dispatched"): 1,
        ("hooksync_deliveries_total", "github", "push", "ignored"): 3,
        ("hooksync_deliveries_total", "gitlab", "push", "ignored"): 1,
    }


def test_request_durations_fall_in_the_first_bucket_at_or_above_them():
    metrics = ReceiverMetrics()
    for seconds in (0.0004, 0.001, 0.0011, 0.3, 60.0):
        metrics.observe_request("github", seconds)
    metrics.observe_request("gitlab", 0.002)
    samples = samples_of(metrics, "hooksync_request_duration_seconds", "provider", "le")
    bucket = "hooksync_request_duration_seconds_bucket"
    # Buckets count every observation at or below their bound ("le"), as Prometheus reads them.
    assert samples[(bucket, "github", "0.001")] == 2
    assert samples[(bucket, "github", "0.0025")] == 3
    assert samples[(bucket, "github", "0.25")] == 3
    assert samples[(bucket, "github", "0.5")] == 4
    assert samples[(bucket, "github", "10.0")] == 4
    assert samples[(bucket, "github", "+Inf")] == 5
    assert samples[("hooksync_request_duration_seconds_count", "github")] == 5
    assert samples[("hooksync_request_duration_seconds_sum", "github")] == pytest.approx(60.3025)
    assert samples[(bucket, "gitlab", "0.001")] == 0
    assert samples[(bucket, "gitlab", "0.0025")] == 1
    assert samples[("hooksync_request_duration_seconds_count", "gitlab")] == 1


def test_no_delivery_yet_means_no_series():
    metrics = ReceiverMetrics()
    assert samples_of(metrics, "hooksync_deliveries") == {}
    assert samples_of(metrics, "hooksync_request_duration_seconds") == {}


def test_converge_durations_are_one_histogram_per_mode_and_one_gauge_per_target():
    """At fleet size a histogram per target would be most of every scrape."""
    metrics = ReceiverMetrics()
    metrics.converge_seconds.labels("shop", "apply").observe(3)
    metrics.converge_seconds.labels("docs", "apply").observe(7)
    metrics.converge_seconds.labels("shop", "resync").observe(1)
    counts = samples_of(metrics, "hooksync_converge_duration_seconds", "target", "mode")
    count = "hooksync_converge_duration_seconds_count"
    assert counts[(count, "apply")] == 2 and counts[(count, "resync")] == 1
    latest = samples_of(metrics, "hooksync_last_converge_duration_seconds", "target", "mode")
    name = "hooksync_last_converge_duration_seconds"
    assert latest == {
        (name, "shop", "apply"): 3,
        (name, "docs", "apply"): 7,
        (name, "shop", "resync"): 1,
    }


def test_a_thousand_targets_cost_a_few_samples_each():
    metrics = ReceiverMetrics()
    for index in range(1000):
        target = f"t{index}"
        for mode in ("apply", "resync"):
            metrics.jobs_created.labels(target, mode).inc()
            metrics.converges.labels(target, mode, "success").inc()
            metrics.converge_seconds.labels(target, mode).observe(3)
        metrics.last_applied.labels(target).info({"sha": "a" * 40})
        metrics.last_success.labels(target).set(1)
    lines = [
        line for line in generate_latest(metrics.registry).decode().splitlines() if line[:1] != "#"
    ]
    assert not [line for line in lines if line.split("{")[0].endswith("_created")]
    assert len(lines) < 9 * 1000


def test_the_served_text_holds_exactly_the_registrys_samples_at_fleet_size():
    """/metrics writes the per-target lines itself; they must read as prometheus_client's."""
    metrics = ReceiverMetrics()
    for index in range(300):
        target = f"t{index}"
        metrics.jobs_created.labels(target, "apply").inc()
        metrics.jobs_created.labels(target, "apply").inc()
        metrics.jobs_coalesced.labels(target).inc(3)
        metrics.converges.labels(target, "resync", "no-op").inc()
        metrics.converge_seconds.labels(target, "resync").observe(0.5)
        metrics.last_applied.labels(target).info({"sha": "a" * 40})
        metrics.last_applied.labels(target).info({"sha": "b" * 40})
        metrics.last_success.labels(target).set(1.7e9)
    metrics.count_delivery("github", "push", "dispatched")
    metrics.leader.set(1)

    def samples(text: bytes) -> set[tuple[object, ...]]:
        return {
            (family.name, family.type, s.name, tuple(sorted(s.labels.items())), s.value)
            for family in text_string_to_metric_families(text.decode())
            for s in family.samples
        }

    served = samples(metrics.exposition())
    assert served == samples(generate_latest(metrics.registry))
    assert ("hooksync_jobs_created", "counter", "hooksync_jobs_created_total",
            (("mode", "apply"), ("target", "t7")), 2.0) in served  # fmt: skip
    assert len([s for s in served if s[2] == "hooksync_last_applied_info"]) == 300
