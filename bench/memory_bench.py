"""Receiver memory under sustained intake: idle, after 50,000 and after 100,000 deliveries.

The receiver process (`--no-background`, 50 targets) gets signed GitHub pushes for a branch no
target follows, each with its own delivery id: every one is verified, parsed and routed, and
answered 200 without an API call (its kubeconfig points at a closed port). The load comes from
a few raw keep-alive HTTP/1.1 connections (asyncio streams, pre-encoded requests), so the client
costs little. Measured: VmRSS and VmHWM from /proc/<pid>/status, idle before the first request
and after each count, and the growth from the first count to the second.

Baseline, in the same run: the same requests against a minimal Starlette app (reads the body,
answers JSON) on the same uvicorn settings. Goal: the receiver grows less than 10 MB between
the 50,000th and the 100,000th delivery.

    .venv/bin/python -m bench.memory_bench [--first 50000] [--second 100000]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.figures import Memory, goal, memory, ratio
from bench.load import FloodResult, flood, raw_request
from world import webhooks
from world.controlplane import free_port
from world.receiver import ReceiverProcess

SECRET = "bench-memory-secret"
TARGETS = 50
GOAL_GROWTH_MB = 10.0
SETTLE_SECONDS = 2.0
FIXTURE = (
    Path(__file__).resolve().parents[1]
    / "tests/fixtures/webhooks/github/push/with-new-branch.payload.json"
)

FLOOR_APP = """
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

async def hook(request):
    await request.body()
    return JSONResponse({"status": "ignored", "reason": "floor"})

async def healthz(request):
    return PlainTextResponse("ok\\n")

app = Starlette(routes=[Route("/hooks/github", hook, methods=["POST"]),
                        Route("/healthz", healthz, methods=["GET"])])
uvicorn.run(app, host="127.0.0.1", port=int(__import__("sys").argv[1]), log_level="warning",
            access_log=False, log_config=None)
"""

FAKE_KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: 'https://127.0.0.1:9'}
users:
- name: u
  user: {token: x}
contexts:
- name: c
  context: {cluster: c, user: u}
current-context: c
"""


def receiver_config() -> dict[str, Any]:
    return {
        "namespace": "hooksync",
        "jobImage": "ghcr.io/hooksync/hooksync-job:dev",
        "publicURL": "http://127.0.0.1:1",
        "targets": [
            {"name": f"t{i:02d}", "provider": "github", "repo": f"acme/app-{i:02d}",
             "branch": "main", "namespace": f"app-{i:02d}", "serviceAccount": "deployer",
             "resync": ""}
            for i in range(TARGETS)
        ],
    }  # fmt: skip


def body() -> bytes:
    """GitHub's documented push payload (7 KB) when the fixture is there, else a small one."""
    try:
        document = json.loads(FIXTURE.read_text())
    except OSError:
        return webhooks.as_body(
            webhooks.github_push_payload(
                "acme/app-00", webhooks.random_sha(), ref="refs/heads/not-followed"
            )
        )
    document["ref"] = "refs/heads/not-followed"
    document["repository"]["full_name"] = "acme/app-00"
    document["repository"]["name"] = "app-00"
    return json.dumps(document).encode()


def requests(port: int) -> Any:
    """request(i): a signed push with delivery id i, from pre-encoded parts."""
    payload = body()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-Hub-Signature-256": webhooks.github_signature(payload, SECRET),
        "X-GitHub-Delivery": "@@",
    }
    encoded = raw_request(webhooks.GITHUB_PATH, headers, payload, f"127.0.0.1:{port}")
    head, tail = encoded.split(b"@@")

    def request(index: int) -> bytes:
        return b"%b00000000-0000-4000-8000-%012x%b" % (head, index, tail)

    return request


@dataclass
class Run:
    server: str
    pid: int
    samples: dict[str, Memory | None] = field(default_factory=dict)
    floods: list[FloodResult] = field(default_factory=list)


def sample(run: Run, label: str) -> None:
    time.sleep(SETTLE_SECONDS)  # let in-flight work and its garbage settle
    run.samples[label] = memory(run.pid)
    print(f"  {run.server:<8} {label:<14} {run.samples[label]}", flush=True)


def shifted(request: Any, offset: int, index: int) -> bytes:
    return bytes(request(offset + index))


def load(run: Run, port: int, first: int, second: int, connections: int) -> None:
    request = requests(port)
    sample(run, "idle")
    done = 0
    for label, upto in ((f"after {first:,}", first), (f"after {second:,}", second)):
        result = flood(
            "127.0.0.1", port, upto - done, functools.partial(shifted, request, done), connections
        )
        done = upto
        run.floods.append(result)
        print(f"  {run.server:<8} {result.sent:,} sent at {result.per_second:,.0f}/s; "
              f"answers {result.statuses}, errors {result.errors}", flush=True)  # fmt: skip
        sample(run, label)


def wait_healthy(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the floor app exited at start-up")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the floor app did not come up")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench.memory_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--first", type=int, default=50_000, help="deliveries before sample 2")
    parser.add_argument("--second", type=int, default=100_000, help="deliveries before sample 3")
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args(argv)
    if args.second <= args.first:
        parser.error("--second must be larger than --first")
    runs: list[Run] = []

    with tempfile.TemporaryDirectory(prefix="hooksync-bench-") as scratch:
        root = Path(scratch)
        kubeconfig = root / "kubeconfig"
        kubeconfig.write_text(FAKE_KUBECONFIG)
        print(f"receiver ({TARGETS} targets, --no-background), then the Starlette floor; "
              f"{args.connections} keep-alive connections", flush=True)  # fmt: skip
        receiver = ReceiverProcess(
            root, receiver_config(), kubeconfig,
            env={"HOOKSYNC_GITHUB_WEBHOOK_SECRET": SECRET}, args=["--no-background"],
        )  # fmt: skip
        try:
            receiver.start()
            assert receiver.process is not None
            run = Run("hooksync", receiver.process.pid)
            runs.append(run)
            load(run, receiver.port, args.first, args.second, args.connections)
        finally:
            receiver.stop()

        port = free_port()
        (root / "floor_app.py").write_text(FLOOR_APP)
        floor = subprocess.Popen(
            [sys.executable, str(root / "floor_app.py"), str(port)],
            cwd=root, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_healthy(port, floor)
            run = Run("floor", floor.pid)
            runs.append(run)
            load(run, port, args.first, args.second, args.connections)
        finally:
            floor.terminate()
            try:
                floor.wait(10)
            except subprocess.TimeoutExpired:
                floor.kill()
                floor.wait()

    return report(runs, args.first, args.second, args.connections)


def report(runs: list[Run], first: int, second: int, connections: int) -> int:
    labels = ["idle", f"after {first:,}", f"after {second:,}"]
    print(f"\nmemory: signed pushes for an unfollowed branch (answered 200, no API calls), "
          f"unique delivery ids, {connections} keep-alive connections")  # fmt: skip
    header = " ".join(f"{label:>16}" for label in labels)
    print(f"{'server':<9} {'':<6} {header} {'growth':>10}")
    growth: dict[str, float] = {}
    for run in runs:
        for kind in ("rss_mb", "hwm_mb"):
            values = [getattr(run.samples.get(label), kind, float("nan")) for label in labels]
            delta = values[2] - values[1]
            if kind == "rss_mb":
                growth[run.server] = delta
            name = "VmRSS" if kind == "rss_mb" else "VmHWM"
            cells = " ".join(f"{v:13.1f} MB" for v in values)
            print(f"{run.server:<9} {name:<6} {cells} {delta:+7.1f} MB")
    for run in runs:
        rates = " and ".join(f"{f.per_second:,.0f}/s" for f in run.floods)
        print(f"{run.server} answered {rates}")
    ours, floor = growth.get("hooksync", float("nan")), growth.get("floor", float("nan"))
    print(
        f"RSS growth from the {first:,}th to the {second:,}th delivery: hooksync "
        f"{ours:+.1f} MB, floor {floor:+.1f} MB, difference {ours - floor:+.1f} MB"
    )
    ends = [run.samples.get(labels[2]) for run in runs]
    if len(ends) == 2 and ends[0] is not None and ends[1] is not None:
        size = ratio(ends[0].rss_mb, ends[1].rss_mb)
        grew = ratio(ours, floor) if abs(floor) >= 0.5 else "n/a (the floor grew < 0.5 MB)"
        print(f"ratio hooksync/floor: VmRSS after {second:,} {size}, growth {grew}")
    unexpected = {
        run.server: {s: n for f in run.floods for s, n in f.statuses.items() if s != 200}
        for run in runs
    }
    errors = {run.server: sum(f.errors for f in run.floods) for run in runs}
    print(f"answers other than 200: {unexpected}; connection errors: {errors}")
    print(goal(f"growth between the {first:,}th and the {second:,}th delivery under "
               f"{GOAL_GROWTH_MB:.0f} MB ({ours:+.1f} MB)", ours < GOAL_GROWTH_MB))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
