"""The receiver's Prometheus metrics. Label values are bounded: providers, events, outcomes,
reasons and target names from the configuration; never SHAs or delivery ids.

The one exception is `hooksync_last_applied_info{target, sha}`: an Info keeps one series per
target, and recording a new SHA replaces the old series rather than adding one, so a scrape
always shows at most one SHA per target. (Each SHA still starts a new series in Prometheus'
storage, about one per deploy, which is the price of being able to alert on and join by it.)
Time since the last success is `time() - hooksync_last_success_timestamp_seconds`.

Sized for a fleet of a thousand targets: per target there are counters and gauges, one sample
each; the converge duration's distribution is kept per mode only, with each target's latest
duration as a gauge beside it (a histogram per target would be 14 samples per target and mode,
most of a scrape at fleet size); and no `_created` series (prometheus_client's default adds one
per labelled child, doubling every counter).
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import itertools
from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

# Process-wide in prometheus_client; the receiver's metrics are its only ones.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped upstream

KNOWN_EVENTS = frozenset({"push", "pull_request", "ping", "merge_request", "tag_push", "other"})
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class ReceiverMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # The two metrics every delivery updates, kept by the intake itself (see IntakeTally).
        self.intake = IntakeTally(REQUEST_BUCKETS)
        r.register(self.intake)
        self.rejected = Counter(
            "hooksync_deliveries_rejected_total",
            "Deliveries refused, by provider and reason.",
            ["provider", "reason"],
            registry=r,
        )
        self.signature_failures = Counter(
            "hooksync_signature_failures_total",
            "Deliveries whose signature or token did not verify.",
            ["provider"],
            registry=r,
        )
        self.jobs_created = Counter(
            "hooksync_jobs_created_total",
            "Jobs created, by target and mode.",
            ["target", "mode"],
            registry=r,
        )
        self.jobs_coalesced = Counter(
            "hooksync_pushes_coalesced_total",
            "Pushes folded into a waiting apply Job instead of a new Job.",
            ["target"],
            registry=r,
        )
        self.converges = Counter(
            "hooksync_converges_total",
            "Finished converge Jobs by target, mode and result.",
            ["target", "mode", "result"],
            registry=r,
        )
        self.converge_seconds = ConvergeDurations(
            Histogram(
                "hooksync_converge_duration_seconds",
                "Wall time of converge Jobs, from start to completion, by mode.",
                ["mode"],
                buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800),
                registry=r,
            ),
            Gauge(
                "hooksync_last_converge_duration_seconds",
                "Wall time of each target's latest finished converge Job, by mode.",
                ["target", "mode"],
                registry=r,
            ),
        )
        self.last_applied = Info(
            "hooksync_last_applied",
            "The SHA most recently applied to each target.",
            ["target"],
            registry=r,
        )
        self.last_success = Gauge(
            "hooksync_last_success_timestamp_seconds",
            "Unix time of each target's last successful converge (time since = now - this).",
            ["target"],
            registry=r,
        )
        self.statuses = Counter(
            "hooksync_commit_statuses_total",
            "Commit statuses posted to the Git host, by provider and outcome.",
            ["provider", "outcome"],
            registry=r,
        )
        self.leader = Gauge(
            "hooksync_leader",
            "1 while this replica is the leader that watches Jobs and reports statuses.",
            registry=r,
        )

    def count_delivery(self, provider: str, event: str, outcome: str) -> None:
        """One delivery of `event` (a header value, labelled by `event_label`) and its outcome."""
        self.intake.count(provider, self.event_label(event), outcome)

    def observe_request(self, provider: str, seconds: float) -> None:
        self.intake.observe(provider, seconds)

    @staticmethod
    @functools.lru_cache(maxsize=256)  # header values repeat; the labels are a fixed few
    def event_label(event: str) -> str:
        """A GitHub event name as is, a GitLab one in the same words ("Push Hook" -> push)."""
        name = event.strip().lower().removesuffix(" hook").replace(" ", "_")
        return name if name in KNOWN_EVENTS else "other"


class ConvergeDurations:
    """How long converges take: `labels(target, mode).observe(seconds)` adds to the mode's
    histogram and sets the target's latest duration."""

    def __init__(self, histogram: Histogram, latest: Gauge) -> None:
        self.histogram = histogram
        self.latest = latest

    def labels(self, target: str, mode: str) -> _TargetDuration:
        return _TargetDuration(self, target, mode)


@dataclasses.dataclass(frozen=True)
class _TargetDuration:
    durations: ConvergeDurations
    target: str
    mode: str

    def observe(self, seconds: float) -> None:
        self.durations.histogram.labels(self.mode).observe(seconds)
        self.durations.latest.labels(self.target, self.mode).set(seconds)


class IntakeTally(Collector):
    """`hooksync_deliveries_total` and `hooksync_request_duration_seconds`, kept as plain
    numbers and turned into samples only when scraped.

    Every delivery updates both, so they are the intake's one metrics cost. The metric
    objects of prometheus_client take a lock on each update, for threads; here every update
    and every scrape runs on the event loop's thread (intake and /metrics are coroutines), so
    none is needed.
    """

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self._bounds = tuple(sorted(buckets))
        self._deliveries: dict[tuple[str, str, str], int] = {}
        # provider -> observations per bucket (the last is above every bound), and their sum
        self._buckets: dict[str, list[int]] = {}
        self._sums: dict[str, float] = {}

    def count(self, provider: str, event: str, outcome: str) -> None:
        key = (provider, event, outcome)
        self._deliveries[key] = self._deliveries.get(key, 0) + 1

    def observe(self, provider: str, seconds: float) -> None:
        counts = self._buckets.get(provider)
        if counts is None:
            counts = self._buckets[provider] = [0] * (len(self._bounds) + 1)
            self._sums[provider] = 0.0
        counts[bisect.bisect_left(self._bounds, seconds)] += 1  # the first bound >= seconds
        self._sums[provider] += seconds

    def collect(self) -> Iterator[Metric]:
        deliveries = CounterMetricFamily(
            "hooksync_deliveries",
            "Webhook deliveries by provider, event and outcome.",
            labels=["provider", "event", "outcome"],
        )
        for key, total in sorted(self._deliveries.items()):
            deliveries.add_metric(list(key), total)
        yield deliveries
        durations = HistogramMetricFamily(
            "hooksync_request_duration_seconds",
            "Time to answer a webhook delivery.",
            labels=["provider"],
        )
        for provider, counts in sorted(self._buckets.items()):
            cumulative = list(itertools.accumulate(counts))
            bounds = [repr(float(bound)) for bound in self._bounds] + ["+Inf"]  # as Go writes them
            durations.add_metric(
                [provider], list(zip(bounds, cumulative, strict=True)), self._sums[provider]
            )
        yield durations
