"""The receiver under hostile HTTP clients: memory, how soon stalled clients are cut off, and
whether a 413 reaches the sender.

Each scenario starts a fresh receiver process (`--no-background`, default limits, its
kubeconfig pointing at a closed port) on loopback, so VmHWM is that scenario's peak:

  slow-bodies  40 connections, each announcing a body just under maxBodyBytes (10 MiB) and
               sending it at 512 KiB/s without ever finishing; a connection that is cut off
               reconnects and starts again. Peak RSS.
  hostile-200  200 connections at once: 60 such slow bodies, 70 slowloris heads (one header
               line every 2 s, never finished) and 70 silent connections, each reconnecting
               when cut off. Meanwhile a signed push for a branch no target follows is sent on
               a new connection every 0.5 s (verified, parsed, routed, answered 200): its
               answer time and status. Peak RSS.
  stalled      one client of each kind that stalls: silent from the start, headers stopped
               half-way, body stopped half-way. Seconds until the receiver closes each
               (observed up to --stall-cap seconds).
  oversized    20 POSTs of maxBodyBytes + 1 MiB with urllib, as a Git host's client would
               send them: how many read the 413, and how many saw a reset instead.

A safety stop ends a scenario early if the receiver passes 2 GB. Loopback only; about four
minutes with the defaults.

    .venv/bin/python -m bench.hostile_bench [--seconds 30] [--stall-cap 75] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.figures import goal, median, memory, percentile
from bench.memory_bench import FAKE_KUBECONFIG
from world import webhooks
from world.receiver import ReceiverProcess

SECRET = "bench-hostile-secret"
MAX_BODY = 10 * 1024 * 1024
POD_LIMIT_MB = 512
SAFETY_STOP_MB = 2048
SLOW_BODY_RATE = 512 * 1024  # bytes a second, per connection
SLOWLORIS_PERIOD = 2.0
PROBE_PERIOD = 0.5
SCENARIOS = ("slow-bodies", "hostile-200", "stalled", "oversized")

CONFIG = {
    "namespace": "hooksync",
    "jobImage": "ghcr.io/hooksync/hooksync-job:dev",
    "publicURL": "http://127.0.0.1:1",
    "targets": [
        {
            "name": "shop",
            "provider": "github",
            "repo": "acme/shop",
            "branch": "main",
            "namespace": "shop",
            "serviceAccount": "deployer",
            "resync": "",
        },
    ],
}


# -- the attackers -----------------------------------------------------------------------------


@dataclass
class Tally:
    """What the attackers saw: connections opened, how each ended, answers read."""

    opened: int = 0
    closed_by_server: int = 0
    answers: Counter[str] = field(default_factory=Counter)


def _slow_body_head(port: int) -> bytes:
    return (
        f"POST /hooks/github HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: application/json\r\nX-GitHub-Event: push\r\n"
        f"X-Hub-Signature-256: sha256={'0' * 64}\r\n"
        f"Content-Length: {MAX_BODY - 1024}\r\n\r\n"
    ).encode()


async def _watch(reader: asyncio.StreamReader, tally: Tally) -> None:
    """Read until the server closes; count the status line of any answer."""
    data = b""
    try:
        while chunk := await reader.read(65536):
            data += chunk[: max(0, 200 - len(data))]
    except OSError:
        pass
    tally.closed_by_server += 1
    tally.answers[data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/") else "closed"] += 1


async def _attacker(port: int, kind: str, stop: asyncio.Event, tally: Tally) -> None:
    """One hostile client of `kind`; reconnects whenever the server cuts it off."""
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.2)
            continue
        tally.opened += 1
        watcher = asyncio.ensure_future(_watch(reader, tally))
        try:
            if kind == "slow-body":
                writer.write(_slow_body_head(port))
                piece = b"x" * (SLOW_BODY_RATE // 10)
                sent, total = 0, MAX_BODY - 1024 - 1  # never the last byte
                while sent < total and not watcher.done() and not stop.is_set():
                    writer.write(piece[: total - sent])
                    sent += min(len(piece), total - sent)
                    await asyncio.wait_for(writer.drain(), 30)
                    await asyncio.sleep(0.1)
            elif kind == "slowloris":
                writer.write(f"POST /hooks/github HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode())
                line = 0
                while not watcher.done() and not stop.is_set():
                    await asyncio.sleep(SLOWLORIS_PERIOD)
                    writer.write(f"X-Padding-{line}: {'a' * 20}\r\n".encode())
                    line += 1
                    await asyncio.wait_for(writer.drain(), 30)
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait([watcher, stopped], return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
        except (OSError, TimeoutError):
            pass
        finally:
            writer.close()
            if not watcher.done():
                watcher.cancel()
            else:
                await asyncio.sleep(0.05)  # reconnect, a little later


async def _attack(
    port: int, kinds: dict[str, int], seconds: float, should_stop: Callable[[], bool]
) -> Tally:
    tally = Tally()
    stop = asyncio.Event()
    tasks = [
        asyncio.ensure_future(_attacker(port, kind, stop, tally))
        for kind, count in kinds.items()
        for _ in range(count)
    ]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not should_stop():
        await asyncio.sleep(0.2)
    stop.set()
    if tasks:
        await asyncio.wait(tasks, timeout=10)
    for task in tasks:
        task.cancel()
    return tally


# -- measuring ---------------------------------------------------------------------------------


@dataclass
class Peak:
    """VmRSS sampled every 0.2 s, and VmHWM at the end (the kernel's own peak)."""

    pid: int
    samples: list[float] = field(default_factory=list)
    hwm_mb: float = float("nan")
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self._stop.wait(0.2):
            figure = memory(self.pid)
            if figure is None:
                return
            self.samples.append(figure.rss_mb)

    @property
    def over_safety_stop(self) -> bool:
        return bool(self.samples) and self.samples[-1] > SAFETY_STOP_MB

    def finish(self) -> None:
        self._stop.set()
        figure = memory(self.pid)
        if figure is not None:
            self.hwm_mb = figure.hwm_mb


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def receiver(root: Path) -> Iterator[tuple[ReceiverProcess, Peak]]:
    directory = Path(tempfile.mkdtemp(dir=root))
    kubeconfig = directory / "kubeconfig"
    kubeconfig.write_text(FAKE_KUBECONFIG)
    env = {"HOOKSYNC_GITHUB_WEBHOOK_SECRET": SECRET}
    process = ReceiverProcess(directory, CONFIG, kubeconfig, env=env, args=["--no-background"])
    process.start()
    assert process.process is not None
    peak = Peak(process.process.pid)
    sampler = threading.Thread(target=peak.run, daemon=True)
    sampler.start()
    try:
        yield process, peak
    finally:
        peak.finish()
        sampler.join()
        process.stop()


@dataclass
class Probe:
    """Signed pushes for an unfollowed branch, one new connection each, every 0.5 s."""

    port: int
    answers: list[tuple[int | str, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self._stop.wait(PROBE_PERIOD):
            delivery = webhooks.github_push(
                "acme/shop", webhooks.random_sha(), branch="other", secret=SECRET
            )
            started = time.perf_counter()
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            status: int | str
            try:
                connection.request("POST", webhooks.GITHUB_PATH, delivery.body, delivery.headers)
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as exc:
                status = type(exc).__name__
            finally:
                connection.close()
            self.answers.append((status, time.perf_counter() - started))

    def stop(self) -> None:
        self._stop.set()


def attack_scenario(root: Path, kinds: dict[str, int], seconds: float, probe: bool) -> str:
    with receiver(root) as (process, peak):
        idle = memory(peak.pid)
        prober = Probe(process.port)
        thread = threading.Thread(target=prober.run, daemon=True)
        if probe:
            thread.start()
        cpu, started = cpu_seconds(peak.pid), time.monotonic()
        tally = asyncio.run(_attack(process.port, kinds, seconds, lambda: peak.over_safety_stop))
        cpu_share = (cpu_seconds(peak.pid) - cpu) / (time.monotonic() - started)
        prober.stop()
        if probe:
            thread.join()
        alive = process.process is not None and process.process.poll() is None
    peak_rss = max(peak.samples, default=float("nan"))
    lines = [
        f"  peak VmRSS {peak_rss:.0f} MB, VmHWM {peak.hwm_mb:.0f} MB "
        f"(pod limit {POD_LIMIT_MB} MiB; "
        f"idle before the attack {idle.rss_mb if idle else float('nan'):.0f} MB)",
        f"  receiver CPU {cpu_share:.0%} of a core; machine load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
        f"  receiver alive at the end: {alive}"
        + ("; STOPPED EARLY at the safety limit" if peak.over_safety_stop else ""),
        f"  attacker connections opened {tally.opened}, closed by the receiver "
        f"{tally.closed_by_server}; what they read: {dict(tally.answers)}",
        "  "
        + goal(
            f"peak RSS under half the pod limit ({POD_LIMIT_MB // 2} MB)",
            peak.hwm_mb < POD_LIMIT_MB / 2,
        ),
    ]
    if probe:
        times = [seconds for _, seconds in prober.answers]
        statuses = Counter(str(status) for status, _ in prober.answers)
        slowest = max(times, default=float("nan"))
        lines.append(
            f"  verified deliveries during the attack: {len(times)}, answers {dict(statuses)}, "
            f"median {median(times) * 1000:.0f} ms, p99 {percentile(times, 99) * 1000:.0f} ms, "
            f"max {slowest * 1000:.0f} ms"
        )
        lines.append(
            "  "
            + goal(
                "every verified delivery answered 200 within 1 s",
                set(statuses) == {"200"} and slowest < 1.0,
            )
        )
    return "\n".join(lines)


# -- stalled clients ---------------------------------------------------------------------------


async def _stalled(port: int, kind: str, cap: float) -> float | None:
    """Seconds from the stall until the receiver closes the connection; None past `cap`."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if kind == "headers stopped half-way":
        writer.write(f"POST /hooks/github HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Git".encode())
    elif kind == "body stopped half-way":
        head = _slow_body_head(port).replace(
            f"Content-Length: {MAX_BODY - 1024}".encode(), b"Content-Length: 131072"
        )
        writer.write(head + b"x" * 65536)
    await writer.drain()
    stalled = time.monotonic()
    try:
        async with asyncio.timeout(cap):
            while await reader.read(65536):
                pass
        return time.monotonic() - stalled
    except TimeoutError:  # before OSError, which it subclasses
        return None
    except OSError:
        return time.monotonic() - stalled
    finally:
        writer.close()


def stalled_scenario(root: Path, cap: float) -> str:
    kinds = ("silent from the start", "headers stopped half-way", "body stopped half-way")

    async def all_kinds() -> list[float | None]:
        return await asyncio.gather(*(_stalled(process.port, kind, cap) for kind in kinds))

    with receiver(root) as (process, _):
        results = asyncio.run(all_kinds())
    return "\n".join(
        f"  {kind:<26} cut off after "
        + (f"{seconds:.1f} s" if seconds is not None else f"more than {cap:.0f} s (never)")
        for kind, seconds in zip(kinds, results, strict=True)
    )


# -- 413 readability ---------------------------------------------------------------------------


def oversized_scenario(root: Path, attempts: int = 20) -> str:
    body = b"x" * (MAX_BODY + 1024 * 1024)
    seen: Counter[str] = Counter()
    with receiver(root) as (process, _):
        for _ in range(attempts):
            request = urllib.request.Request(  # noqa: S310 (loopback)
                f"{process.url}{webhooks.GITHUB_PATH}",
                data=body,
                headers={"Content-Type": "application/json", "X-GitHub-Event": "push"},
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
                    seen[str(answer.status)] += 1
            except urllib.error.HTTPError as exc:
                exc.read()
                seen[str(exc.code)] += 1
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                seen[type(reason).__name__] += 1
    return f"  {seen['413']} of {attempts} read the 413; all outcomes: {dict(seen)}"


# -- main --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench.hostile_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each attack")
    parser.add_argument("--stall-cap", type=float, default=75.0, help="longest stall observed")
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, help="run just these")
    args = parser.parse_args(argv)
    chosen = args.only or SCENARIOS
    runs: dict[str, Callable[[Path], str]] = {
        "slow-bodies": lambda root: attack_scenario(
            root, {"slow-body": 40}, args.seconds, probe=False
        ),
        "hostile-200": lambda root: attack_scenario(
            root, {"slow-body": 60, "slowloris": 70, "silent": 70}, args.seconds, probe=True
        ),
        "stalled": lambda root: stalled_scenario(root, args.stall_cap),
        "oversized": oversized_scenario,
    }
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="hooksync-hostile-") as scratch:
        for name in chosen:
            print(f"{name} ...", flush=True)
            results[name] = runs[name](Path(scratch))
            print(results[name], flush=True)
    print("\nhostile clients against the receiver (defaults, loopback):")
    for name, text in results.items():
        print(f"{name}\n{text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
