"""Intake throughput and latency: signed GitHub pushes for a branch no target follows.

Measured with wrk at concurrency 32 against four servers in the same run:
  hooksync   the real receiver process (`python -m receiver.cli --no-background`)
  floor      a Starlette endpoint on the same uvicorn settings that answers 200 without
             reading the body: what the framework costs before any work
  bare       the floor plus only the essential work: read the body, check its HMAC-SHA256,
             check it is JSON (simdjson, as hooksync reads it); no field checks, routing,
             metrics or answer reasons
  go-hmac    a compiled peer doing the same HMAC-SHA256 check (bench/gohmac, Go net/http)
for the 7 KB fixture and a padded 1 MB body. Prints requests/s, p50/p99, errors, the receiver's
peak RSS, and the ratios. Run by hand: `.venv/bin/python -m bench.intake_bench [--seconds N]`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from world.controlplane import free_port
from world.webhooks import github_signature

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests/fixtures/webhooks/github/push/with-new-branch.payload.json"
SECRET = "bench-secret"

FLOOR_APP = """
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def hook(request):
    return JSONResponse({"status": "ignored"})

app = Starlette(routes=[Route("/hooks/github", hook, methods=["POST"])])
"""

BARE_APP = """
import hashlib, hmac, simdjson
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

KEY = {secret!r}.encode()

async def hook(request):
    body = await request.body()
    expected = "sha256=" + hmac.new(KEY, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, request.headers.get("x-hub-signature-256", "")):
        return JSONResponse({{"error": "bad signature"}}, status_code=401)
    simdjson.Parser().parse(body)
    return JSONResponse({{"status": "ignored"}})

app = Starlette(routes=[Route("/hooks/github", hook, methods=["POST"])])
"""

WRK_SCRIPT = """
wrk.method = "POST"
local f = io.open("{body}", "rb")
wrk.body = f:read("*all")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-GitHub-Event"] = "push"
wrk.headers["X-GitHub-Delivery"] = "bench-delivery"
wrk.headers["X-Hub-Signature-256"] = "{signature}"

done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d %d %f\\n", summary.requests,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50), latency:percentile(99), summary.duration))
end
"""


@dataclass
class Result:
    server: str
    payload: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int
    peak_rss_mb: float | None = None


def bodies(directory: Path) -> dict[str, Path]:
    document = json.loads(FIXTURE.read_text())
    document["ref"] = "refs/heads/not-followed"
    small = directory / "push-7k.json"
    small.write_bytes(json.dumps(document).encode())
    document["padding"] = "x" * (1024 * 1024 - len(small.read_bytes()) - 20)
    large = directory / "push-1m.json"
    large.write_bytes(json.dumps(document).encode())
    return {"7 KB": small, "1 MB": large}


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(url, data=b"{}", method="POST")  # noqa: S310
            urllib.request.urlopen(request, timeout=1)  # noqa: S310
            return
        except urllib.error.HTTPError:
            return  # any HTTP answer means it serves
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def start_receiver(directory: Path, port: int) -> subprocess.Popen[bytes]:
    config = directory / "config.yaml"
    config.write_text(
        "jobImage: img\npublicURL: http://127.0.0.1\nnamespace: hooksync\nmaxBodyBytes: 2097152\n"
        "targets:\n- {name: shop, provider: github, repo: Codertocat/Hello-World, branch: main,"
        " namespace: shop, serviceAccount: sa, resync: ''}\n"
    )
    kubeconfig = directory / "kubeconfig"
    # Intake of an unfollowed branch never calls the API server; an unreachable one is fine.
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\n"
        "clusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:9'}\n"
        "users:\n- name: u\n  user: {token: x}\n"
        "contexts:\n- name: c\n  context: {cluster: c, user: u}\n"
        "current-context: c\n"
    )
    env = dict(os.environ, HOOKSYNC_GITHUB_WEBHOOK_SECRET=SECRET)
    return subprocess.Popen(
        [sys.executable, "-m", "receiver.cli", "--config", str(config), "--kubeconfig",
         str(kubeconfig), "--host", "127.0.0.1", "--port", str(port), "--no-background"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def start_floor(directory: Path, port: int, module: str = "floor_app") -> subprocess.Popen[bytes]:
    (directory / "floor_app.py").write_text(FLOOR_APP)
    (directory / "bare_app.py").write_text(BARE_APP.format(secret=SECRET))
    return subprocess.Popen(
        [sys.executable, "-c",
         f"import uvicorn, {module}; uvicorn.run({module}.app, host='127.0.0.1', "
         f"port={port}, log_level='warning', access_log=False)"],
        cwd=directory, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def start_bare(directory: Path, port: int) -> subprocess.Popen[bytes]:
    return start_floor(directory, port, module="bare_app")


def start_go_peer(directory: Path, port: int) -> subprocess.Popen[bytes]:
    binary = directory / "gohmac"
    env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=mod")
    subprocess.run(
        ["go", "build", "-o", str(binary), "."], cwd=ROOT / "bench" / "gohmac", check=True, env=env
    )
    return subprocess.Popen(
        [str(binary), "-addr", f"127.0.0.1:{port}", "-secret", SECRET],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def peak_rss_mb(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(match.group(1)) / 1024 if match else None


def run_wrk(url: str, body: Path, seconds: int, directory: Path) -> tuple[float, float, float, int]:
    signature = github_signature(body.read_bytes(), SECRET)
    script = directory / f"wrk-{body.stem}.lua"
    script.write_text(WRK_SCRIPT.format(body=body, signature=signature))
    output = subprocess.run(
        ["wrk", "-t2", "-c32", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    match = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+) (\d+) ([\d.]+)", output)
    if not match:
        raise RuntimeError(f"wrk printed no result:\n{output}")
    requests, socket_errors, status_errors, p50, p99, duration_us = match.groups()
    rps = int(requests) / (float(duration_us) / 1e6)
    return rps, int(p50) / 1000, int(p99) / 1000, int(socket_errors) + int(status_errors)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=30)
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="hooksync-bench-") as folder:
        directory = Path(folder)
        payloads = bodies(directory)
        starters = {
            "hooksync": start_receiver,
            "floor": start_floor,
            "bare": start_bare,
            "go-hmac": start_go_peer,
        }
        for server, start in starters.items():
            port = free_port()
            process = start(directory, port)
            try:
                url = f"http://127.0.0.1:{port}/hooks/github"
                wait_http(url)
                for label, body in payloads.items():
                    rps, p50, p99, errors = run_wrk(url, body, args.seconds, directory)
                    rss = peak_rss_mb(process.pid) if server == "hooksync" else None
                    results.append(Result(server, label, rps, p50, p99, errors, rss))
                    print(f"  {server:<9} {label:<5} {rps:9.0f} req/s  p50 {p50:6.2f} ms  "
                          f"p99 {p99:6.2f} ms  errors {errors}", flush=True)  # fmt: skip
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(10)
    print_table(results)
    return 0


def print_table(results: list[Result]) -> None:
    by = {(r.server, r.payload): r for r in results}
    print("\nintake: signed pushes for an unfollowed branch, wrk -c32, this machine "
          f"({os.cpu_count()} cores)")  # fmt: skip
    print(f"{'payload':<7} {'server':<9} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
          f"{'peak RSS':>9}")  # fmt: skip
    for r in results:
        rss = f"{r.peak_rss_mb:.0f} MB" if r.peak_rss_mb else ""
        print(f"{r.payload:<7} {r.server:<9} {r.requests_per_second:9.0f} {r.p50_ms:8.2f} "
              f"{r.p99_ms:8.2f} {r.errors:7d} {rss:>9}")  # fmt: skip
    for payload in ("7 KB", "1 MB"):
        ours = by.get(("hooksync", payload))
        ratios = [
            f"hooksync/{server} = {ours.requests_per_second / other.requests_per_second:.2f}"
            for server in ("floor", "bare", "go-hmac")
            if ours and (other := by.get((server, payload)))
        ]
        bare, floor = by.get(("bare", payload)), by.get(("floor", payload))
        if bare and floor:
            ratios.append(
                f"bare/floor = {bare.requests_per_second / floor.requests_per_second:.2f}"
            )
        print(f"{payload}: " + ", ".join(ratios))
    small = by.get(("hooksync", "7 KB"))
    floor_small = by.get(("floor", "7 KB"))
    if small and floor_small:
        goals = [
            (">= 1000 verified deliveries/s (7 KB)", small.requests_per_second >= 1000),
            ("p99 < 50 ms (7 KB)", small.p99_ms < 50),
            (">= half the floor's req/s (7 KB)",
             small.requests_per_second >= 0.5 * floor_small.requests_per_second),
        ]  # fmt: skip
        for goal, met in goals:
            print(f"goal {goal}: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    sys.exit(main())
