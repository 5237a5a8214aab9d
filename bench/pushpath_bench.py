"""Where the time goes from a push to its commit status, step by step, next to Flux.

DeliveryStack (Git over HTTP, the GitHub stand-in, the receiver with its leader, Jobs run by the
process kubelet, the rollout stand-in) and the 20-object app of bench.e2e_bench. Each of the
pushes changes every object; the bench sends the signed webhook and follows the push with
watches on the Jobs, their pods and the app's ConfigMap (the moment each change was seen), the
Job's own log lines (`start` with the process's age, then one line per pipeline step, each with
its `time`), the receiver's log (`job ended`: when the leader learnt of the end) and the GitHub
stand-in's record of when each status arrived. It prints each step's median and p90.

Then, in the same run, the same measures of Flux (bench/flux.py: source-, kustomize- and
notification-controller as processes on the same control plane, a GitHub Receiver), with
Kustomization `wait: true` and `wait: false`, and side by side with hooksync: a 300-object
first apply and no-op, a 200-push storm, idle and peak memory. Without Flux's binaries
(`hack/build-flux`) that part is skipped with a note.

Goals (issue 19), judged against Flux's figures of the same run: POST -> change live median at
most Flux's; POST -> final status median at most 2x Flux's POST -> Ready without wait; the
Job's process start -> first API call under 0.25 s; Job complete -> status posted under 0.3 s
(medians).

    .venv/bin/python -m bench.pushpath_bench [--runs 20] [--quick] [--no-flux]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kubernetes import client

from bench import flux as fluxbench
from bench.e2e_bench import CONFIGMAPS, app
from bench.figures import goal, median, percentile
from bench.watches import Seen, Watches
from hooksync import names
from world.cluster import LocalCluster
from world.githosts import Call
from world.stack import DeliveryStack

RUN_TIMEOUT = 120.0
# A receiver's start on a machine busy with other work can take well over the usual 30 s.
START_SECONDS = 180.0
LIVE_CONFIGMAP = f"config-{CONFIGMAPS - 1}"


# -- one push, taken apart ------------------------------------------------------------------

# The breakdown's rows: (label, from mark, to mark).
STEPS = (
    ("POST -> webhook answered", "post", "answered"),
    ("answered -> Job seen", "answered", "job"),
    ("Job -> pod bound to the node", "job", "scheduled"),
    ("bound -> process started", "scheduled", "process"),
    ("process start -> arguments read", "process", "imported"),
    ("-> Lease held (imports, first API calls)", "imported", "lease"),
    ("-> fetch done (started with the process)", "lease", "fetch"),
    ("fetch -> render done", "fetch", "render"),
    ("render -> apply done (validate, observe)", "render", "apply"),
    ("apply -> health done (prune)", "apply", "health"),
    ("health -> converge done", "health", "done"),
    ("converge done -> pod seen ended", "done", "pod_ended"),
    ("pod ended -> Job seen Complete", "pod_ended", "complete"),
    ("Job Complete -> leader saw the end", "complete", "leader"),
    ("leader saw -> final status at the host", "leader", "status"),
)
TOTALS = (
    ("POST -> change live", "post", "live"),
    ("POST -> final status posted", "post", "status"),
    ("process start -> first API call done", "process", "lease"),
    ("Job Complete -> status posted (< 0: posted first)", "complete", "status"),
    ("pod ended -> status posted", "pod_ended", "status"),
)


@dataclass
class Push:
    """One push: its commit, the value that shows its change live, and when each step was seen."""

    sha: str
    live: str
    marks: dict[str, float] = field(default_factory=dict)

    def span(self, start: str, end: str) -> float:
        if start in self.marks and end in self.marks:
            return self.marks[end] - self.marks[start]
        return math.nan


def _json_lines(text: str) -> Iterator[dict[str, Any]]:
    """The structured log lines of `text` that carry a `time`."""
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                parsed = json.loads(line)
            except ValueError:
                continue
            if isinstance(parsed, dict) and isinstance(parsed.get("time"), str):
                yield parsed


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    return dict(obj.get("metadata") or {})


def _container_state(pod: dict[str, Any], key: str) -> bool:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return any(key in (s.get("state") or {}) for s in statuses)


def _condition(obj: dict[str, Any], kind: str) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == kind and c.get("status") == "True" for c in conditions)


def complete_job(job: dict[str, Any], sha: str) -> bool:
    return (_meta(job).get("annotations") or {}).get(names.SHA) == sha and _condition(
        job, "Complete"
    )


@dataclass
class PushPath:
    """Where one delivery stack's push path shows, whatever runs it.

    The Jobs and their pods in `jobs_namespace` (the pods' logs through the API), the app in
    `target_namespace`, where the change is live once ConfigMap `live_configmap` holds the
    push's value under `live_key`. `receiver_logs` gives every receiver's log text (the leader's
    has the `job ended` line), `status_calls` the Git host stand-in's record of requests.
    """

    api: client.ApiClient
    jobs_namespace: str
    target_namespace: str
    live_configmap: str
    live_key: str
    receiver_logs: Callable[[], list[str]]
    status_calls: Callable[[], list[Call]]

    @classmethod
    def of(cls, stack: DeliveryStack, live_configmap: str, live_key: str) -> PushPath:
        """The path of a stack whose receivers run as processes (world/stack.py)."""
        return cls(
            api=stack.api,
            jobs_namespace=stack.jobs_namespace,
            target_namespace=stack.target_namespace,
            live_configmap=live_configmap,
            live_key=live_key,
            receiver_logs=lambda: [receiver.log() for receiver in stack.receivers],
            status_calls=lambda: stack.host.calls,
        )


def take_apart(path: PushPath, watches: Watches, push: Push) -> None:
    """Fill `push.marks` from the watches, the Job's and receivers' logs and the host."""
    start = push.marks["post"]
    seen = watches.first(
        start, "job", lambda j: (_meta(j).get("annotations") or {}).get(names.SHA) == push.sha
    )
    if seen is None:
        return
    push.marks["job"] = seen.at
    name = _meta(seen.obj)["name"]

    def mine(obj: dict[str, Any]) -> bool:
        return bool((_meta(obj).get("labels") or {}).get("batch.kubernetes.io/job-name") == name)

    marks: list[tuple[str, str, Any]] = [
        ("complete", "job", lambda j: _meta(j)["name"] == name and _condition(j, "Complete")),
        ("scheduled", "pod", lambda p: mine(p) and bool((p.get("spec") or {}).get("nodeName"))),
        ("running", "pod", lambda p: mine(p) and _container_state(p, "running")),
        ("pod_ended", "pod", lambda p: mine(p) and _container_state(p, "terminated")),
        (
            "live",
            "configmap",
            lambda c: (
                _meta(c)["name"] == path.live_configmap
                and (c.get("data") or {}).get(path.live_key) == push.live
            ),
        ),
    ]
    for mark, kind, test in marks:
        if (event := watches.first(start, kind, test)) is not None:
            push.marks[mark] = event.at
    pods: list[Seen] = [e for e in watches.since(start, "pod") if mine(e.obj)]
    pod_name = _meta(pods[-1].obj).get("name") if pods else None
    if pod_name:
        text = client.CoreV1Api(path.api).read_namespaced_pod_log(
            pod_name, path.jobs_namespace, _request_timeout=10
        )
        for line in _json_lines(str(text)):
            step, when = line.get("step"), _epoch(str(line.get("time")))
            if step == "start":
                push.marks["imported"] = when
                if isinstance(line.get("process_seconds"), int | float):
                    push.marks["process"] = when - float(line["process_seconds"])
            elif step in ("lease", "fetch", "render", "apply", "health", "done", "skip"):
                push.marks.setdefault(step, when)
    # Only the leader logs a Job's end; after a change of leader, the first to learn of it.
    ended = [
        _epoch(str(line.get("time")))
        for log in path.receiver_logs()
        for line in _json_lines(log)
        if line.get("msg") == "job ended" and line.get("job") == name
    ]
    if ended:
        push.marks["leader"] = min(ended)
    for call in path.status_calls():
        body = call.body if isinstance(call.body, dict) else {}
        ours = call.method == "POST" and call.path.endswith(f"/statuses/{push.sha}")
        if ours and body.get("state") == "success" and call.at >= start:
            push.marks["status"] = call.at


def job_watches(path: PushPath) -> Watches:
    batch, core = client.BatchV1Api(path.api), client.CoreV1Api(path.api)
    return Watches(
        [
            ("job", batch.list_namespaced_job, (path.jobs_namespace,)),
            ("pod", core.list_namespaced_pod, (path.jobs_namespace,)),
            ("configmap", core.list_namespaced_config_map, (path.target_namespace,)),
        ]
    )


def push_once(
    stack: DeliveryStack,
    path: PushPath,
    watches: Watches,
    files: Mapping[str, str | None],
    live: str,
    before: str | None = None,
    timeout: float = RUN_TIMEOUT,
) -> Push:
    """Commit `files`, send the push webhook and wait for its final status, then take the push
    apart. `live` is the value ConfigMap `path.live_configmap` holds once the change is live."""
    sha = stack.commit(files, f"revision {live}")
    push = Push(sha, live)
    push.marks["post"] = time.time()
    answer = stack.push_event(sha, before=before)
    push.marks["answered"] = time.time()
    if answer.status_code != 202:
        raise SystemExit(f"push answered {answer.status_code}: {answer.text}")
    status = stack.wait_final_status(sha, timeout=timeout)
    if status.get("state") != "success":
        raise SystemExit(f"the deploy of {sha[:7]} failed: {status.get('description')}")
    # The status may go out before the Job controller marks the Job Complete; wait for that.
    with contextlib.suppress(TimeoutError):
        watches.wait(push.marks["post"], "job", lambda j: complete_job(j, sha), 30)
    time.sleep(0.3)  # the watches' last events
    take_apart(path, watches, push)
    return push


def breakdown(pushes: list[Push]) -> str:
    lines = [f"{'step':<44} {'median':>9} {'p90':>9}"]

    def row(label: str, start: str, end: str) -> str:
        values = [s for p in pushes if not math.isnan(s := p.span(start, end))]
        if not values:
            return f"{label:<44} {'-':>9} {'-':>9}"
        return f"{label:<44} {median(values):8.3f}s {percentile(values, 90):8.3f}s"

    lines += [row(*step) for step in STEPS]
    lines.append("")
    lines += [row(*total) for total in TOTALS]
    return "\n".join(lines)


def figure(pushes: list[Push], start: str, end: str) -> float:
    return median([s for p in pushes if not math.isnan(s := p.span(start, end))])


# -- main ---------------------------------------------------------------------------------


def hooksync_pushes(cluster: LocalCluster, scratch: Path, runs: int) -> tuple[list[Push], str]:
    stack = DeliveryStack(cluster, scratch / "stack", receiver_start_seconds=START_SECONDS)
    try:
        stack.start()
        path = PushPath.of(stack, LIVE_CONFIGMAP, "revision")
        watches = job_watches(path).start()
        try:
            tag = uuid.uuid4().hex[:6]
            # Creates the 20 objects; not measured.
            push_once(stack, path, watches, app(f"{tag}-create"), f"{tag}-create")
            pushes: list[Push] = []
            for run in range(runs):
                revision = f"{tag}-{run}"
                push = push_once(stack, path, watches, app(revision), revision)
                pushes.append(push)
                print(
                    f"  push {run + 1}: live {push.span('post', 'live'):.2f} s, "
                    f"status {push.span('post', 'status'):.2f} s",
                    flush=True,
                )
        finally:
            watches.stop()
    finally:
        stack.stop()
    return pushes, breakdown(pushes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench.pushpath_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="5 pushes, smaller storm")
    parser.add_argument("--no-flux", action="store_true", help="hooksync's breakdown only")
    args = parser.parse_args(argv)
    runs = 5 if args.quick else args.runs
    load_before = os.getloadavg()
    flux_dir = None if args.no_flux else fluxbench.built()
    with tempfile.TemporaryDirectory(prefix="hooksync-bench-") as scratch:
        print("starting the local cluster...", flush=True)
        with LocalCluster() as cluster:
            print(f"hooksync: {runs} pushes of the 20-object app...", flush=True)
            pushes, table = hooksync_pushes(cluster, Path(scratch), runs)
            side: fluxbench.SideBySide | None = None
            if flux_dir is not None:
                side = fluxbench.side_by_side(
                    cluster, Path(scratch), flux_dir, runs=runs, quick=args.quick
                )
    load_after = os.getloadavg()
    print(f"\npush path, hooksync, {len(pushes)} pushes, every one of 20 objects changed")
    print(table)
    ours_live = figure(pushes, "post", "live")
    ours_status = figure(pushes, "post", "status")
    ours_first_call = figure(pushes, "process", "lease")
    # The Job's end: its pod seen ended (the Job's Complete condition follows about a second
    # later, and the status no longer waits for it).
    ours_report = figure(pushes, "pod_ended", "status")
    print(
        goal(
            f"process start -> first API call under 0.25 s (median {ours_first_call:.3f} s)",
            ours_first_call < 0.25,
        )
    )
    print(
        goal(
            f"Job's end (pod ended) -> status posted under 0.3 s (median {ours_report:.3f} s)",
            ours_report < 0.3,
        )
    )
    if side is None:
        why = "--no-flux" if args.no_flux else "Flux not built; run hack/build-flux"
        print(f"Flux: skipped ({why})")
    else:
        print()
        print(side.table(ours_live, ours_status))
        print(
            goal(
                f"POST -> live median at most Flux's ({ours_live:.2f} s vs {side.live:.2f} s)",
                ours_live <= side.live,
            )
        )
        limit = 2 * side.ready_nowait
        print(
            goal(
                f"POST -> final status median at most 2x Flux's POST -> Ready without wait "
                f"({ours_status:.2f} s vs {limit:.2f} s)",
                ours_status <= limit,
            )
        )
    print(
        f"load average (1, 5, 15 min): before {' '.join(f'{x:.2f}' for x in load_before)}, "
        f"after {' '.join(f'{x:.2f}' for x in load_after)}; {os.cpu_count()} cores"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
