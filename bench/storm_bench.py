"""A push storm: 200 pushes to one target within 10 s, on the whole delivery path.

DeliveryStack: Git over HTTP, the GitHub stand-in, the receiver process (with its leader and
status reporting), and Jobs that really run `hooksync-job` under the process kubelet. The app is
one ConfigMap whose data changes with every commit. All 200 commits are made on main first,
then their push webhooks go out at 20/s. Measured: the apply Jobs created in all, the most
apply Jobs unfinished (running or waiting) at a time and the most running at a time (a watch on
the Jobs' namespace), and the time from the first push until the namespace holds the last
commit's ConfigMap and every pushed SHA has a final commit status.

Baseline, in the same run: one push of one new commit, timed to the same end (ConfigMap and
final status); the median of a few. Goals (design rule 2): at most 2 apply Jobs at a time and
at most 3 in all.

    .venv/bin/python -m bench.storm_bench [--pushes 200] [--rate 20]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.figures import goal, median, percentile, ratio
from bench.jobwatch import JobCensus
from bench.load import Call, paced
from bench.marker_app import app, marker_now
from hooksync import names
from receiver.jobapi import JobApi, job_selector
from receiver.jobview import annotations_of
from world.cluster import LocalCluster
from world.stack import DeliveryStack

SETTLE_TIMEOUT = 900.0
MAX_AT_A_TIME = 2
MAX_IN_ALL = 3


@dataclass
class Settling:
    settled: bool
    finals: dict[str, dict[str, object]]
    live_after: float | None  # seconds until the ConfigMap held the last commit's marker
    final_after: float | None  # seconds until every SHA had a final status


def wait_settled(
    stack: DeliveryStack, shas: list[str], marker: str, timeout: float, since: float
) -> Settling:
    """Until the ConfigMap holds `marker` and each of `shas` has a final status."""
    finals: dict[str, dict[str, object]] = {}
    live_after = final_after = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for sha in shas:
            if sha not in finals:
                status = stack.final_status(sha)
                if status is not None:
                    finals[sha] = status
        if final_after is None and len(finals) == len(shas):
            final_after = time.perf_counter() - since
        if live_after is None and marker_now(stack) == marker:
            live_after = time.perf_counter() - since
        if live_after is not None and final_after is not None:
            return Settling(True, finals, live_after, final_after)
        time.sleep(0.1)
    return Settling(False, finals, live_after, final_after)


def converge_results(stack: DeliveryStack, jobs: set[str]) -> Counter[str]:
    """What the named Jobs' converges said (their summaries, as the reporter saved them)."""
    listing = JobApi(stack.api, stack.jobs_namespace, timeout=(5, 30))
    results: Counter[str] = Counter()
    for job in listing.list_jobs(job_selector()):
        if job["metadata"]["name"] in jobs:
            summary = annotations_of(job).get(names.SUMMARY)
            results[json.loads(summary).get("result", "?") if summary else "no summary"] += 1
    return results


def single_push(stack: DeliveryStack, label: str) -> float:
    """Commit, push, and time until the ConfigMap and the final status are there."""
    marker = f"{label}-{uuid.uuid4().hex[:8]}"
    sha = stack.commit(app(marker), label)
    started = time.perf_counter()
    answer = stack.push_event(sha)
    if answer.status_code != 202:
        raise SystemExit(f"{label}: push answered {answer.status_code}: {answer.text}")
    settling = wait_settled(stack, [sha], marker, 120, started)
    if not settling.settled:
        raise SystemExit(f"{label}: not settled after 120 s; statuses {stack.statuses(sha)}")
    final = settling.finals[sha]
    if final.get("state") != "success":
        raise SystemExit(f"{label}: final status {final}")
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench.storm_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--pushes", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="pushes per second")
    parser.add_argument("--single-runs", type=int, default=3, help="baseline runs (median)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="hooksync-bench-") as scratch:
        print("starting the local cluster and the delivery stack...", flush=True)
        with LocalCluster() as cluster:
            stack = DeliveryStack(cluster, Path(scratch) / "stack")
            try:
                stack.start()
                single_push(stack, "warm-up")  # first fetch, first apply, first statuses
                singles = [single_push(stack, f"single-{i}") for i in range(args.single_runs)]
                print(f"  single push -> settled: {', '.join(f'{s:.2f} s' for s in singles)}")

                print(f"committing {args.pushes} changes on main...", flush=True)
                started = time.monotonic()
                storm_id = uuid.uuid4().hex[:8]
                markers = [f"storm-{storm_id}-{n}" for n in range(args.pushes)]
                shas = [stack.commit(app(m), f"storm {n}") for n, m in enumerate(markers)]
                print(f"  {time.monotonic() - started:.1f} s", flush=True)

                census = JobCensus(stack.api, stack.jobs_namespace).start()
                try:
                    print(f"storm: {args.pushes} pushes at {args.rate:g}/s...", flush=True)
                    storm_started = time.perf_counter()
                    census_started = time.monotonic()
                    # Pushes go out from a thread, so the namespace is watched from the start.
                    calls: list[Call] = []
                    sent_after: list[float] = []

                    def storm() -> None:
                        calls.extend(
                            paced(args.rate, args.pushes, lambda i: stack.push_event(shas[i]))
                        )
                        sent_after.append(time.perf_counter() - storm_started)

                    pushing = threading.Thread(target=storm, name="storm", daemon=True)
                    pushing.start()
                    settling = wait_settled(stack, shas, markers[-1], SETTLE_TIMEOUT, storm_started)
                    pushing.join(timeout=120)
                    sent = sent_after[0] if sent_after else float("nan")
                    settle = time.perf_counter() - storm_started
                    posted = Counter(
                        str(status.get("state")) for sha in shas for status in stack.statuses(sha)
                    )
                    time.sleep(1.0)  # let the watch see the last Job's final state
                finally:
                    census.stop()
                final_marker = marker_now(stack)
                results = converge_results(stack, {j.name for j in census.created})
            finally:
                stack.stop()

    answers = Counter(
        str(c.value.status_code) if c.error is None else type(c.error).__name__ for c in calls
    )
    latencies = [c.seconds for c in calls if c.error is None]
    finals = settling.finals
    states = Counter(
        "success (included in a later SHA)"
        if str(f.get("description", "")).startswith("included in") else str(f.get("state"))
        for f in finals.values()
    )  # fmt: skip
    created = census.created
    storm_jobs = [j for j in created if set(j.shas) & set(shas)]
    single = median(singles)

    def at(moment: float | None) -> str:
        return "-" if moment is None else f"{moment - census_started:6.1f} s"

    def after(seconds: float | None) -> str:
        return "not within the timeout" if seconds is None else f"{seconds:.2f} s"

    print(f"\nstorm: {args.pushes} pushes of {args.pushes} commits to one target at "
          f"{args.rate:g}/s; whole delivery path (receiver, Jobs, statuses)")  # fmt: skip
    print(f"pushes sent in {sent:.1f} s; answers {dict(answers)}; "
          f"answer p50 {percentile(latencies, 50) * 1000:.0f} ms, "
          f"p99 {percentile(latencies, 99) * 1000:.0f} ms")  # fmt: skip
    print(f"apply Jobs created in all: {len(created)}, {len(storm_jobs)} of them standing for "
          "storm SHAs (times from the first push):")  # fmt: skip
    for job in created:
        print(f"  {job.name:<36} seen {at(job.first_seen)}  runs {at(job.released)}  "
              f"ends {at(job.ended)}  pods failed {job.pods_failed} succeeded "
              f"{job.pods_succeeded}  SHAs {len(job.shas)}")  # fmt: skip
    print(f"  their converge results: {dict(results)}")
    print(
        f"most apply Jobs unfinished at a time: {census.peak_unfinished}; "
        f"most running at a time: {census.peak_running}; watch restarts: {census.errors}"
    )
    print(f"final statuses: {len(finals)}/{len(shas)} SHAs {dict(states)}; "
          f"statuses posted on storm SHAs in all: {dict(posted)}")  # fmt: skip
    print(f"last commit live (ConfigMap) after {after(settling.live_after)}; every SHA final "
          f"after {after(settling.final_after)}; ConfigMap at the last commit at the end: "
          f"{final_marker == markers[-1]}")  # fmt: skip
    if settling.settled:
        print(f"storm settled in {settle:.2f} s (first push -> last commit live, every SHA final)")
    else:
        print(f"storm NOT settled after {SETTLE_TIMEOUT:.0f} s")
    print(f"single push -> settled (baseline, median of {len(singles)}): {single:.2f} s")
    print(f"ratio storm-settle / single-push: "
          f"{ratio(settle, single) if settling.settled else 'n/a'}")  # fmt: skip
    print(goal(f"at most {MAX_AT_A_TIME} apply Jobs at a time (saw {census.peak_unfinished})",
               census.peak_unfinished <= MAX_AT_A_TIME))  # fmt: skip
    print(goal(f"at most {MAX_IN_ALL} apply Jobs in all (saw {len(created)})",
               len(created) <= MAX_IN_ALL))  # fmt: skip
    print(goal("every pushed SHA has a final status and the last commit is live",
               settling.settled))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
