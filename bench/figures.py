"""What the benchmarks print: percentiles, a process's memory, ratios and goal lines."""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank `q`-th percentile (0 < q <= 100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


def ratio(ours: float, baseline: float) -> str:
    if not baseline or math.isnan(baseline) or math.isnan(ours):
        return "n/a"
    return f"{ours / baseline:.2f}"


def goal(text: str, met: bool) -> str:
    return f"goal: {text}: {'met' if met else 'NOT met'}"


@dataclass(frozen=True)
class Memory:
    """VmRSS (resident now) and VmHWM (peak resident) of one process, in MiB."""

    rss_mb: float
    hwm_mb: float

    def __str__(self) -> str:
        return f"VmRSS {self.rss_mb:7.1f} MB  VmHWM {self.hwm_mb:7.1f} MB"


def memory(pid: int) -> Memory | None:
    """Read /proc/<pid>/status; None when the process is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    values = {}
    for key in ("VmRSS", "VmHWM"):
        match = re.search(rf"^{key}:\s+(\d+) kB", status, re.MULTILINE)
        values[key] = int(match.group(1)) / 1024 if match else math.nan
    return Memory(values["VmRSS"], values["VmHWM"])
