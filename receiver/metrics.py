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
most of a scrape at fleet size); no `_created` series (prometheus_client's default adds one
per labelled child, doubling every counter); and the per-target families keep their exposition
lines written (`TargetFamily`), so a scrape joins strings rather than formatting samples.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import itertools
import threading
from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
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
        self.jobs_created = TargetFamily(
            "hooksync_jobs_created", "counter", "Jobs created, by target and mode.",
            ("target", "mode"), r,
        )  # fmt: skip
        self.jobs_coalesced = TargetFamily(
            "hooksync_pushes_coalesced", "counter",
            "Pushes folded into a waiting apply Job instead of a new Job.", ("target",), r,
        )  # fmt: skip
        self.converges = TargetFamily(
            "hooksync_converges", "counter", "Finished converge Jobs by target, mode and result.",
            ("target", "mode", "result"), r,
        )  # fmt: skip
        self.converge_seconds = ConvergeDurations(
            Histogram(
                "hooksync_converge_duration_seconds",
                "Wall time of converge Jobs, from start to completion, by mode.",
                ["mode"],
                buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800),
                registry=r,
            ),
            TargetFamily(
                "hooksync_last_converge_duration_seconds", "gauge",
                "Wall time of each target's latest finished converge Job, by mode.",
                ("target", "mode"), r,
            ),
        )  # fmt: skip
        self.last_applied = TargetFamily(
            "hooksync_last_applied", "info", "The SHA most recently applied to each target.",
            ("target",), r,
        )  # fmt: skip
        self.last_success = TargetFamily(
            "hooksync_last_success_timestamp_seconds", "gauge",
            "Unix time of each target's last successful converge (time since = now - this).",
            ("target",), r,
        )  # fmt: skip
        self._per_target = (
            self.jobs_created, self.jobs_coalesced, self.converges,
            self.converge_seconds.latest, self.last_applied, self.last_success,
        )  # fmt: skip
        self.statuses = Counter(
            "hooksync_commit_statuses_total",
            "Commit statuses posted to the Git host, by provider and outcome.",
            ["provider", "outcome"],
            registry=r,
        )
        self.host_writes = Counter(
            "hooksync_host_writes_total",
            "Preview comments and deployments written to the Git host, by provider, kind "
            "(comment, deployment) and outcome (posted, retry, failed).",
            ["provider", "kind", "outcome"],
            registry=r,
        )
        self.leader = Gauge(
            "hooksync_leader",
            "1 while this replica is the leader that watches Jobs and reports statuses.",
            registry=r,
        )

    def exposition(self) -> bytes:
        """The text /metrics serves: what prometheus_client writes for the metrics whose size
        does not grow with the fleet, then the per-target families' lines, kept written."""
        fixed = [c for c in self.registry._collector_to_names if c not in self._per_target]
        head = generate_latest(_Only(fixed))
        return head + "".join(family.text() for family in self._per_target).encode()

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


class _Only(CollectorRegistry):
    """A registry view over some of another registry's collectors, for one exposition."""

    def __init__(self, collectors: list[Collector]) -> None:
        super().__init__(auto_describe=False)
        self._only = collectors

    def collect(self) -> Iterator[Metric]:
        for collector in self._only:
            yield from collector.collect()


def _number(value: float) -> str:
    """A sample value as the text format reads it (Python's repr, but +Inf, -Inf and NaN)."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class TargetFamily(Collector):
    """A metric with a series per target (a counter, gauge or info), kept as its exposition
    lines: an update rewrites its own series' line, a scrape joins the lines. At a thousand
    targets that is a few thousand strings joined instead of as many samples formatted.

    `labels(...)` gives `inc`, `set` and `info` as prometheus_client's children do; it also
    collects like any collector, so parsers and tests read it alike.
    """

    def __init__(
        self,
        name: str,
        kind: str,
        documentation: str,
        labelnames: tuple[str, ...],
        registry: CollectorRegistry,
    ) -> None:
        self.name, self.kind, self.documentation = name, kind, documentation
        self.labelnames = labelnames
        self.sample = {"counter": f"{name}_total", "info": f"{name}_info"}.get(kind, name)
        self._values: dict[tuple[str, ...], float] = {}
        self._extra: dict[tuple[str, ...], dict[str, str]] = {}
        self._lines: dict[tuple[str, ...], str] = {}
        self._lock = threading.Lock()
        registry.register(self)

    def labels(self, *values: str) -> _Series:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: want labels {self.labelnames}, got {values}")
        return _Series(self, tuple(str(v) for v in values))

    def _update(self, key: tuple[str, ...], value: float, extra: dict[str, str] | None) -> None:
        with self._lock:
            self._values[key] = value
            if extra is not None:
                self._extra[key] = dict(extra)
            pairs = [*zip(self.labelnames, key, strict=True), *self._extra.get(key, {}).items()]
            labels = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)
            self._lines[key] = f"{self.sample}{{{labels}}} {_number(value)}\n"

    def text(self) -> str:
        with self._lock:
            if not self._lines:
                return ""
            lines = "".join(self._lines.values())
        kind = "gauge" if self.kind == "info" else self.kind
        help_text = self.documentation.replace("\\", "\\\\").replace("\n", "\\n")
        name = self.sample if self.kind != "counter" else self.name + "_total"
        return f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n{lines}"

    def collect(self) -> Iterator[Metric]:
        family = Metric(self.name, self.documentation, self.kind)
        with self._lock:
            for key, value in self._values.items():
                labels = dict(zip(self.labelnames, key, strict=True)) | self._extra.get(key, {})
                family.add_sample(self.sample, labels, value)
        yield family


@dataclasses.dataclass(frozen=True)
class _Series:
    family: TargetFamily
    key: tuple[str, ...]

    def inc(self, amount: float = 1) -> None:
        with self.family._lock:
            value = self.family._values.get(self.key, 0.0) + amount
        self.family._update(self.key, value, None)

    def set(self, value: float) -> None:
        self.family._update(self.key, float(value), None)

    def info(self, value: dict[str, str]) -> None:
        self.family._update(self.key, 1.0, value)


class ConvergeDurations:
    """How long converges take: `labels(target, mode).observe(seconds)` adds to the mode's
    histogram and sets the target's latest duration."""

    def __init__(self, histogram: Histogram, latest: TargetFamily) -> None:
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
