"""Soak: mixed deliveries at a steady rate for a long while, on the whole delivery path.

DeliveryStack (receiver process with its leader and status reporting, Jobs under the process
kubelet, Git over HTTP, the GitHub stand-in). Deliveries go out at a steady rate (5/s) in a
fixed rotation: valid pushes of new commits (expected 202), byte-for-byte replays of a recent
valid delivery, same delivery id (expected 200), deliveries with a bad or missing signature
(expected 401) and signed but malformed ones (expected 400).

Checks: no answer other than the expected one; the receiver's VmRSS sampled every minute stays
flat (first/last/max; flat = under 10 MB of growth); every SHA answered 202 is accounted for,
either on a Job that still exists or ended with a final commit status, and after a settling
time every one has a final status; the namespace ends at the last pushed commit.

    .venv/bin/python -m bench.soak_bench [--minutes 10] [--rate 5]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.figures import Memory, goal, memory, percentile
from bench.load import paced
from bench.marker_app import app, marker_now
from receiver.jobapi import JobApi, job_selector
from receiver.jobview import job_shas
from world import webhooks
from world.cluster import LocalCluster
from world.stack import WEBHOOK_SECRET, DeliveryStack

# Per second at the default rate: 1 valid, 2 replays, 1 bad signature, 1 malformed.
ROTATION = ("valid", "duplicate", "bad-signature", "duplicate", "malformed")
EXPECTED = {"valid": 202, "duplicate": 200, "bad-signature": 401, "malformed": 400}
REPLAY_AGE = (1.0, 90.0)  # replay deliveries answered this long ago (seconds): Jobs still exist
FLAT_MB = 10.0
SAMPLE_SECONDS = 60.0


@dataclass
class Sent:
    kind: str
    status: int
    seconds: float
    sha: str = ""
    text: str = ""


class Soak:
    """Builds and sends the deliveries; remembers the valid ones for replays and accounting."""

    def __init__(self, stack: DeliveryStack) -> None:
        self.stack = stack
        self.receiver = stack.receivers[0]
        self.sender = webhooks.Sender("127.0.0.1", self.receiver.port)
        self.accepted: list[tuple[float, webhooks.Delivery]] = []  # (answered at, delivery)
        self.markers: dict[str, str] = {}  # sha -> ConfigMap marker
        self.commit_seconds: list[float] = []
        self.random = random.Random(7)  # reproducible replays
        self._lock = threading.Lock()

    def send(self, index: int) -> Sent:
        kind = ROTATION[index % len(ROTATION)]
        if kind == "duplicate":
            replay = self._replayable()
            if replay is None:  # nothing old enough yet: send a valid one instead
                kind = "valid"
            else:
                return self._record(kind, self.sender.send(replay), replay.sha)
        if kind == "valid":
            return self._valid(index)
        if kind == "bad-signature":
            return self._record(kind, self.sender.send(self._bad_signature(index)))
        return self._record(kind, self.sender.send(self._malformed(index)))

    def _valid(self, index: int) -> Sent:
        marker = f"soak-{index}-{uuid.uuid4().hex[:6]}"
        started = time.perf_counter()
        sha = self.stack.commit(app(marker), f"soak {index}")
        with self._lock:
            self.commit_seconds.append(time.perf_counter() - started)
            self.markers[sha] = marker
        delivery = webhooks.github_push(self.stack.repo_name, sha, secret=WEBHOOK_SECRET)
        answer = self.sender.send(delivery)
        if answer.status == 202:
            with self._lock:
                self.accepted.append((time.monotonic(), delivery))
        return self._record("valid", answer, sha)

    def _replayable(self) -> webhooks.Delivery | None:
        now = time.monotonic()
        with self._lock:
            choices = [d for at, d in self.accepted if REPLAY_AGE[0] <= now - at <= REPLAY_AGE[1]]
            return self.random.choice(choices) if choices else None

    def _bad_signature(self, index: int) -> webhooks.Delivery:
        sha = webhooks.random_sha()
        delivery = webhooks.github_push(self.stack.repo_name, sha, secret=WEBHOOK_SECRET)
        headers = dict(delivery.headers)
        variant = index // len(ROTATION) % 3
        if variant == 0:  # signed with another secret
            wrong = webhooks.github_signature(delivery.body, "not-the-secret")
            headers["X-Hub-Signature-256"] = wrong
        elif variant == 1:  # no signature at all
            del headers["X-Hub-Signature-256"]
        else:  # the signature of a different body
            headers["X-Hub-Signature-256"] = webhooks.github_signature(b"{}", WEBHOOK_SECRET)
        return replace(delivery, headers=headers)

    def _malformed(self, index: int) -> webhooks.Delivery:
        variant = index // len(ROTATION) % 3
        if variant == 0:  # not JSON
            body = b'{"ref": "refs/heads/main", "after": '
        else:
            document = webhooks.github_push_payload(self.stack.repo_name, webhooks.ZERO_SHA)
            document["after"] = "not-a-sha"
            body = json.dumps(document).encode()
        headers = {
            "Content-Type": "application/json",
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": webhooks.github_signature(body, WEBHOOK_SECRET),
        }
        if variant == 2:  # a valid body, but no event name
            body = webhooks.as_body(
                webhooks.github_push_payload(self.stack.repo_name, webhooks.random_sha())
            )
            headers["X-Hub-Signature-256"] = webhooks.github_signature(body, WEBHOOK_SECRET)
            del headers["X-GitHub-Event"]
        return webhooks.Delivery(webhooks.GITHUB_PATH, body, headers)

    @staticmethod
    def _record(kind: str, answer: webhooks.Answer, sha: str = "") -> Sent:
        return Sent(
            kind, answer.status, answer.seconds, sha, answer.body[:200].decode(errors="replace")
        )


class MemorySampler:
    """VmRSS of one process now and every `every` seconds, until stopped."""

    def __init__(self, pid: int, every: float = SAMPLE_SECONDS) -> None:
        self.pid = pid
        self.every = every
        self.samples: list[tuple[float, Memory]] = []
        self.backlog: list[tuple[float, int]] = []
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def start(self) -> MemorySampler:
        self.take()
        self._thread.start()
        return self

    def take(self) -> None:
        value = memory(self.pid)
        if value is not None:
            self.samples.append((time.monotonic() - self.started, value))

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.take()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.take()


def apply_jobs(stack: DeliveryStack) -> list[dict[str, Any]]:
    listing = JobApi(stack.api, stack.jobs_namespace, timeout=(5, 60))
    return listing.list_jobs(job_selector(mode="apply"))


def account(stack: DeliveryStack, shas: list[str]) -> dict[str, list[str]]:
    """Each SHA: 'final' (a final status), 'on a Job' (no final status yet), or 'missing'."""
    on_jobs = {sha for job in apply_jobs(stack) for sha in job_shas(job)}
    result: dict[str, list[str]] = defaultdict(list)
    for sha in shas:
        if stack.final_status(sha) is not None:
            result["final"].append(sha)
        elif sha in on_jobs:
            result["on a Job"].append(sha)
        else:
            result["missing"].append(sha)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench.soak_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=5.0, help="deliveries per second")
    parser.add_argument("--settle", type=float, default=300.0,
                        help="seconds to wait afterwards for every final status")  # fmt: skip
    args = parser.parse_args(argv)
    count = max(len(ROTATION), round(args.rate * args.minutes * 60))

    with tempfile.TemporaryDirectory(prefix="hooksync-bench-") as scratch:
        print("starting the local cluster and the delivery stack...", flush=True)
        with LocalCluster() as cluster:
            stack = DeliveryStack(cluster, Path(scratch) / "stack")
            soak: Soak | None = None
            try:
                stack.start()
                soak = Soak(stack)
                warm = soak.send(0)  # the first valid push: first fetch, first apply
                if warm.status != 202:
                    raise SystemExit(f"warm-up push answered {warm.status}: {warm.text}")
                stack.wait_final_status(warm.sha, timeout=120)
                process = stack.receivers[0].process
                assert process is not None
                sampler = MemorySampler(process.pid)
                backlog: list[tuple[float, int, int]] = []  # (minute, accepted, not final)
                stop_backlog = threading.Event()

                def watch_backlog() -> None:
                    while not stop_backlog.wait(SAMPLE_SECONDS):
                        assert soak is not None
                        shas = [d.sha for _, d in list(soak.accepted)]
                        waiting = sum(1 for s in shas if stack.final_status(s) is None)
                        backlog.append(
                            ((time.monotonic() - sampler.started) / 60, len(shas), waiting)
                        )

                watcher = threading.Thread(target=watch_backlog, daemon=True)
                print(f"soak: {count} deliveries at {args.rate:g}/s for {args.minutes:g} min "
                      f"(rotation {', '.join(ROTATION)})", flush=True)  # fmt: skip
                sampler.start()
                watcher.start()
                started = time.perf_counter()
                try:
                    calls = paced(args.rate, count, lambda i: soak.send(i + 1), workers=8)
                finally:
                    stop_backlog.set()
                    sampler.stop()
                    watcher.join(timeout=30)
                elapsed = time.perf_counter() - started
                shas = [d.sha for _, d in soak.accepted]
                at_end = account(stack, shas)
                jobs_at_end = len(apply_jobs(stack))
                print(f"  load done in {elapsed:.0f} s; waiting up to {args.settle:.0f} s for "
                      "every final status...", flush=True)  # fmt: skip
                settle_started = time.monotonic()
                deadline = settle_started + args.settle
                while time.monotonic() < deadline:
                    if all(stack.final_status(sha) is not None for sha in shas):
                        break
                    time.sleep(1.0)
                settled_after = time.monotonic() - settle_started
                settled = account(stack, shas)
                last_marker = soak.markers.get(shas[-1]) if shas else None
                live = marker_now(stack)
                finals = Counter(
                    "included" if str(s.get("description", "")).startswith("included in")
                    else str(s.get("state"))
                    for s in (stack.final_status(sha) for sha in settled["final"]) if s
                )  # fmt: skip
                log = stack.receivers[0].log()
                commit_seconds = list(soak.commit_seconds)
            finally:
                if soak is not None:
                    soak.sender.close()
                stack.stop()

    sent = [c.value for c in calls if c.error is None]
    failures = Counter(type(c.error).__name__ for c in calls if c.error is not None)
    by_kind: dict[str, Counter[int]] = defaultdict(Counter)
    seconds: dict[str, list[float]] = defaultdict(list)
    unexpected: list[Sent] = []
    for item in sent:
        by_kind[item.kind][item.status] += 1
        seconds[item.kind].append(item.seconds)
        if item.status != EXPECTED[item.kind]:
            unexpected.append(item)
    lateness = [c.lateness for c in calls]
    rss = [m.rss_mb for _, m in sampler.samples]
    growth = rss[-1] - rss[0] if rss else float("nan")
    levels: Counter[str] = Counter()
    for line in log.splitlines():
        try:
            levels[str(json.loads(line).get("level", "?"))] += 1
        except (ValueError, AttributeError):
            levels["not JSON"] += 1

    print(f"\nsoak: {len(calls)} deliveries at {args.rate:g}/s over {elapsed / 60:.1f} min; "
          "whole delivery path")  # fmt: skip
    print(f"{'kind':<15} {'expected':>8}  {'answers':<28} {'p50 ms':>8} {'p99 ms':>8}")
    for kind in EXPECTED:
        answers = ", ".join(f"{s}: {n}" for s, n in sorted(by_kind[kind].items()))
        print(f"{kind:<15} {EXPECTED[kind]:>8}  {answers:<28} "
              f"{percentile(seconds[kind], 50) * 1000:8.1f} "
              f"{percentile(seconds[kind], 99) * 1000:8.1f}")  # fmt: skip
    window = int(min(60.0, elapsed / 2) * args.rate)
    for label, part in (("first", calls[:window]), ("last", calls[-window:])):
        dispatched = [c.value.seconds for c in part
                      if c.error is None and c.value.kind in ("valid", "duplicate")]  # fmt: skip
        print(f"valid+duplicate answers in the {label} {window / args.rate:.0f} s: "
              f"p50 {percentile(dispatched, 50) * 1000:.1f} ms, "
              f"p99 {percentile(dispatched, 99) * 1000:.1f} ms")  # fmt: skip
    if failures:
        print(f"requests that got no answer: {dict(failures)}")
    for item in unexpected[:10]:
        print(f"  unexpected: {item.kind} answered {item.status}: {item.text}")
    print(f"load generator: start lateness p99 {percentile(lateness, 99) * 1000:.0f} ms; "
          f"commit p50 {percentile(commit_seconds, 50) * 1000:.0f} ms, "
          f"p99 {percentile(commit_seconds, 99) * 1000:.0f} ms")  # fmt: skip
    samples = ", ".join(f"{t / 60:.1f} min {m.rss_mb:.1f}" for t, m in sampler.samples)
    print(f"receiver VmRSS (MB): {samples}")
    if rss:
        print(f"  first {rss[0]:.1f} MB, last {rss[-1]:.1f} MB, max {max(rss):.1f} MB, "
              f"growth {growth:+.1f} MB; VmHWM at the end "
              f"{sampler.samples[-1][1].hwm_mb:.1f} MB")  # fmt: skip
    for minute, accepted, waiting in backlog:
        print(f"  at {minute:4.1f} min: {accepted} SHAs accepted, {waiting} without a final "
              "status yet")  # fmt: skip
    print(f"apply Jobs in the Jobs' namespace when the load stopped: {jobs_at_end} "
          "(each dispatch lists its target's)")  # fmt: skip
    print(f"202'd SHAs: {len(shas)}; when the load stopped: "
          f"{ {k: len(v) for k, v in at_end.items()} }")  # fmt: skip
    print(f"  after {settled_after:.0f} s more: { {k: len(v) for k, v in settled.items()} }; "
          f"final states {dict(finals)}")  # fmt: skip
    for sha in settled.get("missing", [])[:5]:
        print(f"  missing: {sha} (no final status, on no Job)")
    print(f"namespace at the last pushed commit: {live == last_marker and live is not None}")
    print(f"receiver log lines by level: {dict(levels)}")

    all_expected = not unexpected and not failures
    print(goal("every answer was the expected one", all_expected))
    print(goal(f"receiver memory flat (under {FLAT_MB:.0f} MB growth; {growth:+.1f} MB)",
               growth < FLAT_MB))  # fmt: skip
    accounted = not at_end.get("missing") and not settled.get("missing")
    print(goal("every 202'd SHA on a Job or with a final status", accounted))
    everything_final = len(settled.get("final", [])) == len(shas)
    print(goal(f"every 202'd SHA with a final status within {args.settle:.0f} s of the end",
               everything_final))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
