"""The receiver's Prometheus metrics. Label values are bounded: providers, events, outcomes,
reasons and target names from the configuration; never SHAs or delivery ids.

The one exception is `hooksync_last_applied_info{target, sha}`: an Info keeps one series per
target, and recording a new SHA replaces the old series rather than adding one, so a scrape
always shows at most one SHA per target. (Each SHA still starts a new series in Prometheus'
storage, about one per deploy, which is the price of being able to alert on and join by it.)
Time since the last success is `time() - hooksync_last_success_timestamp_seconds`.
"""

from __future__ import annotations

import functools
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

KNOWN_EVENTS = frozenset({"push", "pull_request", "ping", "merge_request", "tag_push", "other"})


class ReceiverMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.deliveries = Counter(
            "hooksync_deliveries_total",
            "Webhook deliveries by provider, event and outcome.",
            ["provider", "event", "outcome"],
            registry=r,
        )
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
        self.request_seconds = Histogram(
            "hooksync_request_duration_seconds",
            "Time to answer a webhook delivery.",
            ["provider"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
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
        self.converge_seconds = Histogram(
            "hooksync_converge_duration_seconds",
            "Wall time of converge Jobs, from start to completion.",
            ["target", "mode"],
            buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800),
            registry=r,
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
        # Labelled children are looked up once: labels() takes a lock and builds a key each
        # time, which the intake path would pay on every delivery. Keys are label values,
        # so these stay as small as the label sets.
        self._deliveries: dict[tuple[str, str, str], Any] = {}
        self._requests: dict[str, Any] = {}
        self.leader = Gauge(
            "hooksync_leader",
            "1 while this replica is the leader that watches Jobs and reports statuses.",
            registry=r,
        )

    def count_delivery(self, provider: str, event: str, outcome: str) -> None:
        """One delivery of `event` (a header value, labelled by `event_label`) and its outcome."""
        key = (provider, self.event_label(event), outcome)
        child = self._deliveries.get(key)
        if child is None:
            child = self._deliveries[key] = self.deliveries.labels(*key)
        child.inc()

    def observe_request(self, provider: str, seconds: float) -> None:
        child = self._requests.get(provider)
        if child is None:
            child = self._requests[provider] = self.request_seconds.labels(provider)
        child.observe(seconds)

    @staticmethod
    @functools.lru_cache(maxsize=256)  # header values repeat; the labels are a fixed few
    def event_label(event: str) -> str:
        """A GitHub event name as is, a GitLab one in the same words ("Push Hook" -> push)."""
        name = event.strip().lower().removesuffix(" hook").replace(" ", "_")
        return name if name in KNOWN_EVENTS else "other"
