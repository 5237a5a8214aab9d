"""A fleet: many targets, each with its own namespace, repository and ServiceAccount.

The local control plane with the process kubelet, one Git server holding a repository per
target (one ConfigMap each), the GitHub stand-in taking the statuses, and one receiver with its
leader (CronJob reconcile, status reporting) for `--targets` targets (1,000 by default), every
one on `resync: "~15m"`. Measures, in order:

- the receiver's start (process to /healthz) and the time until every resync CronJob exists;
  its memory (RSS) idle, and at its peak during the wave;
- how the fleet's ~15m CronJobs spread over the minutes of the hour;
- the status page (`GET /`, first page) and `/metrics`: time (median of 5) and size, with no run
  yet and again once every target has run;
- dispatch: signed pushes of each repository's head at `--rate` per second (20) for
  `--push-seconds` (10), spread over the fleet: request -> 202, median and p99; then the time
  until every Job they started has finished;
- a full resync wave: "sync now" for every target at once, then until every resync Job has
  ended: Jobs per minute, the API server's request rate (apiserver_request_total from its
  /metrics) and the wall time until all finish.

    .venv/bin/python -m bench.fleet_bench [--targets 1000] [--rate 20] [--push-seconds 10]
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import dataclasses
import datetime
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml
from kubernetes import client, config, watch

from bench.figures import percentile
from bench.load import paced
from hooksync import names
from hooksync.config import Config, parse_config
from hooksync.schedule import parse, resolve
from hooksync.times import parse_rfc3339
from receiver import jobview
from receiver.jobapi import JobApi, job_selector
from receiver.kept import unreported_job
from receiver.metrics import ReceiverMetrics
from receiver.pages import status as statuspage
from receiver.reporting import history
from receiver.reporting import records as target_records
from receiver.reporting.records import TargetRecord
from world import webhooks
from world.cluster import LocalCluster
from world.controlplane import ControlPlane, run_kubectl
from world.githosts import GitHubStandIn
from world.gitserver import GitServer
from world.receiver import ReceiverProcess
from world.stack import POD_SECURITY_BASELINE

JOBS_NAMESPACE = "hooksync-fleet"
SECRET = "fleet-webhook-secret"
SYNC_TOKEN = "fleet-sync-token"
SETUP_THREADS = 8
PAGE_GOAL_SECONDS = 0.100
RUNNING_SHARE = 10  # of the targets in the page's in-process cost, one in this many is running
# How often the bench looks at the Jobs' ends, which a watch keeps (JobEnds): listing every Job
# instead, megabytes at fleet size, was a load of its own on the API server.
POLL_SECONDS = 1.0


def name_of(index: int) -> str:
    return f"f{index:04d}"


def receiver_config(targets: int, clone_url: Callable[[str], str], api_url: str) -> dict[str, Any]:
    return {
        "namespace": JOBS_NAMESPACE,
        "jobImage": "ghcr.io/hooksync/hooksync-job:dev",
        "publicURL": "http://127.0.0.1:1",
        "github": {"apiURL": api_url},
        "jobTTLSeconds": 3600,
        "targets": [
            {
                "name": name_of(i),
                "provider": "github",
                "repo": f"acme/{name_of(i)}",
                "cloneURL": clone_url(f"acme/{name_of(i)}"),
                "branch": "main",
                "path": "deploy",
                "namespace": f"fleet-{name_of(i)}",
                "serviceAccount": f"hooksync-{name_of(i)}",
                "gitSecret": f"hooksync-{name_of(i)}-git",
                "resync": "~15m",
                "previews": False,
                "timeoutSeconds": 120,
            }
            for i in range(targets)
        ],
    }


def create_target(api: client.ApiClient, index: int, git_token: str) -> None:
    """The target's namespace, its ServiceAccount and git Secret, and a Role to converge."""
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    name = name_of(index)
    namespace, account = f"fleet-{name}", f"hooksync-{name}"
    core.create_namespace({"metadata": {"name": namespace, "labels": POD_SECURITY_BASELINE}})
    core.create_namespaced_service_account(JOBS_NAMESPACE, {"metadata": {"name": account}})
    core.create_namespaced_secret(
        JOBS_NAMESPACE, {"metadata": {"name": f"{account}-git"}, "stringData": {"token": git_token}}
    )
    rule = {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}
    rbac.create_namespaced_role(namespace, {"metadata": {"name": "converge"}, "rules": [rule]})
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "converge"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "converge",
            },
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": JOBS_NAMESPACE}],
        },
    )


def configmap(index: int) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings"},
            "data": {"target": name_of(index)},
        }
    )


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def apiserver_requests(plane: ControlPlane) -> float:
    """The sum of apiserver_request_total over every label set, from the API server."""
    text = run_kubectl(plane, "get", "--raw", "/metrics").stdout
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("apiserver_request_total{")
    )


def flowcontrol_waits(text: str) -> dict[str, tuple[float, float]]:
    """Pure: from the API server's /metrics text, each API Priority and Fairness level's
    (requests, seconds spent waiting in its queues), summed over flow schemas and verbs."""
    found: dict[str, list[float]] = {}
    for line in text.splitlines():
        for suffix, slot in (("_count{", 0), ("_sum{", 1)):
            name = "apiserver_flowcontrol_request_wait_duration_seconds" + suffix
            if line.startswith(name) and 'priority_level="' in line:
                level = line.split('priority_level="', 1)[1].split('"', 1)[0]
                found.setdefault(level, [0.0, 0.0])[slot] += float(line.rsplit(" ", 1)[1])
    return {level: (counts[0], counts[1]) for level, counts in found.items()}


def flowcontrol_summary(
    before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]
) -> str:
    """Pure: the waits between two readings, per priority level, busiest first."""
    parts = []
    for level, (count, seconds) in after.items():
        count -= before.get(level, (0.0, 0.0))[0]
        seconds -= before.get(level, (0.0, 0.0))[1]
        if count > 0:
            parts.append(
                (seconds, f"{level} {count:.0f} requests, {seconds / count * 1000:.0f} ms")
            )
    return "; ".join(text for _, text in sorted(parts, reverse=True)) or "none"


def timed_get(
    url: str, headers: dict[str, str] | None = None, repeats: int = 5
) -> tuple[float, int]:
    """Median seconds of `repeats` GETs, and the body's size."""
    seconds, size = [], 0
    with httpx.Client(timeout=120) as http:
        for _ in range(repeats):
            started = time.perf_counter()
            answer = http.get(url, headers=headers or {})
            seconds.append(time.perf_counter() - started)
            answer.raise_for_status()
            size = len(answer.content)
    return statistics.median(seconds), size


def page_inputs(api: client.ApiClient, jobs: JobApi, config: Config) -> str:
    """What the status page would read if the receiver did not keep its objects in step (as
    while a watch is broken): each read, timed alone from this process, and how many items it
    returned; then the render of those very inputs, in CPU time. Last, for comparison, the list
    of every kept Job, which the page made before it read the recent runs from their Lease."""
    first = statuspage.page_targets(config, 1)
    selector = job_selector(mode="resync")
    selector += f",{names.TARGET} in ({','.join(t.name for t in first)})"
    parts = []
    found: dict[str, Any] = {}
    for label, call in (
        ("records", lambda: target_records.load(api, JOBS_NAMESPACE)),
        ("unreported Jobs", lambda: jobs.list_jobs(job_selector(unreported=True))),
        ("recent runs", lambda: history.load(api, JOBS_NAMESPACE)),
        ("CronJobs", lambda: jobs.list_cronjobs(selector)),
        ("(every kept Job)", lambda: jobs.list_jobs(job_selector())),
    ):
        started = time.perf_counter()
        found[label] = call()
        took = (time.perf_counter() - started) * 1000
        parts.append(f"{label} {len(found[label])} in {took:.0f} ms")
    inputs = statuspage.StatusInputs(
        records=found["records"],
        jobs=found["unreported Jobs"],
        cronjobs=found["CronJobs"],
        runs=found["recent runs"],
    )
    now = datetime.datetime.now(datetime.UTC)
    started = time.thread_time()
    statuspage.render(config, inputs, now, lambda job: None)
    parts.append(f"render {(time.thread_time() - started) * 1000:.0f} ms CPU")
    # The receiver keeps each ended Job's record worked out as the Job arrives (receiver.kept).
    worked_out = {jobview.name_of(job): unreported_job(job) for job in inputs.jobs}
    started = time.thread_time()
    statuspage.render(
        config, dataclasses.replace(inputs, worked_out=worked_out), now, lambda job: None
    )
    took = (time.thread_time() - started) * 1000
    parts.append(f"{took:.0f} ms with each Job worked out as it arrived, as the receiver does")
    return ", ".join(parts)


class JobEnds:
    """Each of hooksync's Jobs in the fleet's namespace, its mode and when it ended, kept by a
    watch: one stream, where listing every Job on each look (megabytes at fleet size) loaded
    the API server the bench measures. The stream restarts (with a fresh list) when it ends."""

    def __init__(self, api: client.ApiClient) -> None:
        self.batch = client.BatchV1Api(api)
        self.modes: dict[str, str] = {}
        self.ends: dict[str, float] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.stream: watch.Watch | None = None
        self.thread = threading.Thread(target=self._follow, name="job-ends", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.stopping.set()
        if self.stream is not None:
            self.stream.stop()
        self.thread.join(timeout=10)

    def tally(self, mode: str, only: set[str] | None = None) -> tuple[int, int, list[float]]:
        """(Jobs of `mode`, or just those named `only`; how many ended; their end times as
        epoch seconds)."""
        with self.lock:
            seen = [n for n, m in self.modes.items() if m == mode and (only is None or n in only)]
            ended = [self.ends[name] for name in seen if name in self.ends]
        return len(seen), len(ended), ended

    def _follow(self) -> None:
        while not self.stopping.is_set():
            self.stream = watch.Watch()
            try:
                for event in self.stream.stream(
                    self.batch.list_namespaced_job,
                    JOBS_NAMESPACE,
                    label_selector=job_selector(),
                    timeout_seconds=300,
                    deserialize=False,
                ):
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        self._saw(event["object"])
            except Exception:  # the stream broke: start again from a fresh list
                time.sleep(1)

    def _saw(self, job: dict[str, Any]) -> None:
        metadata = job.get("metadata") or {}
        name = str(metadata.get("name") or "")
        status = job.get("status") or {}
        ended = [
            c
            for c in status.get("conditions") or []
            if c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        ]
        with self.lock:
            self.modes[name] = str((metadata.get("labels") or {}).get(names.MODE) or "")
            if ended:
                stamp = status.get("completionTime") or ended[0].get("lastTransitionTime")
                when = parse_rfc3339(stamp)
                if when is not None:
                    self.ends[name] = when


def wait_all_ended(ends: JobEnds, mode: str, expected: int, timeout: float) -> float:
    """Seconds until `expected` Jobs of `mode` have ended (or the timeout)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        count, ended, _ = ends.tally(mode)
        if count >= expected and ended >= count:
            break
        time.sleep(POLL_SECONDS)
    return time.monotonic() - started


def page_costs(targets: int) -> tuple[float, int, float, int]:
    """CPU seconds (median of 5) and size of the status page's HTML and of the /metrics text
    for `targets` targets, built in this process: the receiver's own share of a page view,
    whatever the API server and a busy machine add. Every target has a record and has run an
    apply and a resync; one in RUNNING_SHARE has a resync Job running (not reported yet), and
    the recent runs' Lease holds its twenty."""
    document = receiver_config(
        1, lambda repo: f"https://git.example/{repo}.git", "https://api.github.com"
    )
    base = parse_config(yaml.safe_dump(document))
    config = dataclasses.replace(
        base,
        targets=tuple(
            dataclasses.replace(base.targets[0], name=name_of(i), namespace=f"fleet-{name_of(i)}")
            for i in range(targets)
        ),
    )
    sha = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
    ends = {"apply": "2025-03-10T11:00:05Z", "resync": "2025-03-10T12:00:05Z"}
    jobs: list[dict[str, Any]] = []
    records: dict[str, TargetRecord] = {}
    metrics = ReceiverMetrics()
    for i in range(targets):
        name = name_of(i)
        for mode in ends:
            metrics.jobs_created.labels(name, mode).inc()
            metrics.converges.labels(name, mode, "success").inc()
            metrics.converge_seconds.labels(name, mode).observe(3)
        if i % RUNNING_SHARE == 0:
            labels = {names.MANAGED_BY: names.MANAGED_BY_VALUE, names.TARGET: name}
            jobs.append(
                {
                    "metadata": {
                        "name": f"hooksync-{name}-resync-29000000",
                        "creationTimestamp": "2025-03-10T12:29:00Z",
                        "labels": {**labels, names.MODE: "resync"},
                        "annotations": {},
                    },
                    "spec": {},
                    "status": {"startTime": "2025-03-10T12:29:01Z", "active": 1},
                }
            )
        records[name] = TargetRecord(
            target=name,
            result="no-op",
            finished=ends["resync"],
            job=f"hooksync-{name}-resync-6113728",
            mode="resync",
            message="ok",
            drifted=0,
            applied_sha=sha,
            applied_at=ends["apply"],
        )
        metrics.last_applied.labels(name).info({"sha": sha})
        metrics.last_success.labels(name).set(1.7e9)
    runs = [
        history.Run(
            job=f"hooksync-{name_of(i)}-resync-6113728",
            target=name_of(i),
            mode="resync",
            state="succeeded",
            result="no-op",
            commit="",
            more_commits=0,
            created=f"2025-03-10T12:{i:02d}:00Z",
            message="ok",
        )
        for i in range(history.KEPT)
    ]
    cronjobs = [
        {"metadata": {"labels": {names.TARGET: t.name}}, "spec": {"schedule": t.resync_schedule}}
        for t in config.targets[: statuspage.PAGE_SIZE]
    ]
    inputs = statuspage.StatusInputs(records=records, jobs=jobs, cronjobs=cronjobs, runs=runs)
    now = datetime.datetime(2025, 3, 10, 12, 30, tzinfo=datetime.UTC)

    def cpu(work: Callable[[], str | bytes]) -> tuple[float, int]:
        seconds, size = [], 0
        for _ in range(5):
            started = time.thread_time()
            size = len(work())
            seconds.append(time.thread_time() - started)
        return statistics.median(seconds), size

    page, page_size = cpu(lambda: statuspage.render(config, inputs, now, lambda job: None))
    scrape, scrape_size = cpu(metrics.exposition)
    return page, page_size, scrape, scrape_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench.fleet_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0, help="pushes per second")
    parser.add_argument("--push-seconds", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=3600.0, help="for each drain and wave")
    args = parser.parse_args(argv)
    n = args.targets
    figures: list[tuple[str, str]] = []

    def note(label: str, value: str) -> None:
        figures.append((label, value))
        print(f"  {label}: {value}", flush=True)

    page, page_size, scrape, scrape_size = page_costs(max(n, 1000))
    note(
        f"status page built in process, {max(n, 1000)} targets, 1 in {RUNNING_SHARE} running",
        f"{page * 1000:.0f} ms CPU, {page_size / 1024:.0f} KiB",
    )
    note(
        f"/metrics text built in process, {max(n, 1000)} targets",
        f"{scrape * 1000:.0f} ms CPU, {scrape_size / 1024:.0f} KiB",
    )
    spread = collections.Counter(
        minute for i in range(n) for minute in parse(resolve("~15m", name_of(i))).minutes
    )
    average = sum(spread.values()) / 60
    note(
        "~15m: resync Jobs starting per minute of the hour",
        f"average {average:.1f}, most {max(spread.values())} "
        f"({max(spread.values()) / average:.2f}x the average)",
    )

    git_token = secrets.token_hex(16)
    host_token = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="hooksync-fleet-") as scratch:
        root = Path(scratch)
        print(f"starting the local cluster, Git server and GitHub stand-in ({n} targets)...")
        with (
            LocalCluster() as cluster,
            GitServer(root / "git", token=git_token) as git,
            GitHubStandIn(host_token) as host,
        ):
            api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
            api.configuration.connection_pool_maxsize = 16
            client.CoreV1Api(api).create_namespace({"metadata": {"name": JOBS_NAMESPACE}})
            started = time.monotonic()
            heads: dict[str, str] = {}

            def set_up(index: int) -> None:
                create_target(api, index, git_token)
                repo = git.create_repo(f"acme/{name_of(index)}")
                heads[name_of(index)] = repo.commit({"deploy/settings.yaml": configmap(index)}, "1")
                host.add_repo(f"acme/{name_of(index)}")

            with concurrent.futures.ThreadPoolExecutor(SETUP_THREADS) as pool:
                list(pool.map(set_up, range(n)))
            print(f"  set up {n} targets in {time.monotonic() - started:.0f} s", flush=True)

            (root / "receiver").mkdir()
            document = receiver_config(n, git.url, host.api_url)
            fleet_config = parse_config(yaml.safe_dump(document))
            receiver = ReceiverProcess(
                root / "receiver",
                document,
                cluster.kubeconfig,
                env={
                    "HOOKSYNC_GITHUB_WEBHOOK_SECRET": SECRET,
                    "HOOKSYNC_GITHUB_TOKEN": host_token,
                    "HOOKSYNC_SYNC_TOKEN": SYNC_TOKEN,
                    "HOOKSYNC_LINK_KEY": secrets.token_hex(32),
                    "POD_NAME": "receiver-0",
                },
            )
            jobs = JobApi(api, JOBS_NAMESPACE, timeout=(5, 120))
            ends = JobEnds(api)
            ends.start()
            try:
                started = time.monotonic()
                receiver.start(timeout=300)
                note("receiver start, process to /healthz", f"{time.monotonic() - started:.1f} s")
                while len(jobs.list_cronjobs(job_selector(mode="resync"))) < n:
                    if time.monotonic() - started > args.timeout:
                        break
                    time.sleep(1)
                note(f"receiver start to {n} CronJobs", f"{time.monotonic() - started:.1f} s")
                assert receiver.process is not None
                pid = receiver.process.pid
                note("receiver memory, idle", f"{rss_mib(pid):.0f} MiB RSS")

                def pages(when: str) -> None:
                    seconds, size = timed_get(f"{receiver.url}/")
                    note(f"status page, {when}", f"{seconds * 1000:.0f} ms, {size / 1024:.0f} KiB")
                    note(f"  its inputs, {when}", page_inputs(api, jobs, fleet_config))
                    seconds, size = timed_get(f"{receiver.url}/metrics")
                    note(f"/metrics, {when}", f"{seconds * 1000:.0f} ms, {size / 1024:.0f} KiB")

                pages("no run yet")

                # Dispatch: each repository's head, spread over the fleet by a stride.
                count = max(1, round(args.rate * args.push_seconds))
                stride = max(1, n // max(1, min(n, count)))
                order = [name_of((i * stride + i // n) % n) for i in range(count)]
                deliveries = [
                    webhooks.github_push(f"acme/{name}", heads[name], secret=SECRET)
                    for name in order
                ]
                sender = webhooks.Sender("127.0.0.1", receiver.port)
                try:
                    calls = paced(args.rate, count, lambda i: sender.send(deliveries[i]))
                finally:
                    sender.close()
                codes = collections.Counter(
                    str(c.value.status) if c.error is None else type(c.error).__name__
                    for c in calls
                )
                ok = [c.seconds for c in calls if c.error is None and c.value.status in (200, 202)]
                note(
                    f"dispatch at {args.rate:g}/s, {count} pushes over {len(set(order))} targets",
                    f"answers {dict(codes)} (200: the head's Job exists already); "
                    f"p50 {percentile(ok, 50) * 1000:.1f} ms, "
                    f"p99 {percentile(ok, 99) * 1000:.1f} ms",
                )
                applies = len(jobs.list_jobs(job_selector(mode="apply")))
                drain = wait_all_ended(ends, "apply", applies, args.timeout)
                note(f"the {applies} apply Jobs pushed, until all ended", f"{drain:.0f} s")

                # The resync wave: sync now for every target at once.
                peak = rss_mib(pid)
                before = apiserver_requests(cluster.control_plane)
                metrics_text = run_kubectl(cluster.control_plane, "get", "--raw", "/metrics").stdout
                waits_before = flowcontrol_waits(metrics_text)
                started = time.monotonic()
                headers = {"Authorization": f"Bearer {SYNC_TOKEN}"}
                answers: collections.Counter[int] = collections.Counter()
                started_jobs: set[str] = set()
                with httpx.Client(base_url=receiver.url, timeout=60, headers=headers) as http:
                    for i in range(n):
                        answer = http.post(f"/targets/{name_of(i)}/sync")
                        answers[answer.status_code] += 1
                        if answer.status_code == 202:
                            started_jobs.add(str(answer.json().get("job")))
                requested = time.monotonic() - started
                ended_at: list[float] = []
                # Only the wave's own Jobs: a CronJob may fire during it too.
                while time.monotonic() - started < args.timeout:
                    total, ended, ended_at = ends.tally("resync", started_jobs)
                    peak = max(peak, rss_mib(pid))
                    if ended >= len(started_jobs):
                        break
                    time.sleep(POLL_SECONDS)
                wave = time.monotonic() - started
                requests = apiserver_requests(cluster.control_plane) - before
                metrics_text = run_kubectl(cluster.control_plane, "get", "--raw", "/metrics").stdout
                waits = flowcontrol_waits(metrics_text)
                total, ended, ended_at = ends.tally("resync", started_jobs)
                per_minute = collections.Counter(int(stamp // 60) for stamp in ended_at)
                note("wave: sync-now answers", f"{dict(answers)} in {requested:.1f} s")
                note(
                    f"wave: {total} resync Jobs, until all ended",
                    f"{wave:.0f} s ({ended} ended)",
                )
                note(
                    "wave: Jobs per minute",
                    f"{ended / wave * 60:.0f} on average, "
                    f"{max(per_minute.values()) if per_minute else 0} in the busiest minute",
                )
                note(
                    "wave: API server requests",
                    f"{requests:.0f} in all, {requests / wave:.0f}/s, "
                    f"{requests / max(1, ended):.0f} per Job",
                )
                note("receiver memory, peak during the wave", f"{peak:.0f} MiB RSS")
                # Queueing in API Priority and Fairness: wide LISTs wait here when the API server
                # is saturated.
                note(
                    "wave: mean wait in API priority queues",
                    flowcontrol_summary(waits_before, waits),
                )
                pages("just after the wave")
                # The page lists the Jobs the leader has not reported yet: once it has caught up
                # with the wave, that is only what still runs.
                started = time.monotonic()
                behind = len(jobs.list_jobs(job_selector(unreported=True)))
                while behind and time.monotonic() - started < args.timeout:
                    time.sleep(5)
                    behind = len(jobs.list_jobs(job_selector(unreported=True)))
                note(
                    "leader: every Job reported, after the wave's end",
                    f"{time.monotonic() - started:.0f} s ({behind} left)",
                )
                pages("once every Job is reported")
            finally:
                ends.close()
                receiver.stop()
                api.close()

    print(f"\nfleet of {n} targets, local control plane with the process kubelet")
    for label, value in figures:
        print(f"{label:<58} {value}")
    page_ms = [v for label, v in figures if label.startswith("status page")]
    print(f"goal: status page under {PAGE_GOAL_SECONDS * 1000:.0f} ms: see {page_ms}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
