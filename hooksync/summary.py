"""The JSON summary a Job writes to its termination message, and the receiver reads back.

Kubernetes keeps at most 4096 bytes of a termination message, so `to_json` trims name lists
until the document fits rather than letting the kubelet cut it mid-JSON.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

from hooksync.names import MODES, Mode

MAX_BYTES = 4096
Result = Literal["success", "no-op", "failure", "lease-held"]
RESULTS: tuple[Result, ...] = get_args(Result)
COUNT_KEYS = ("created", "configured", "unchanged", "pruned", "drifted")
# The converge's steps, in pipeline order; a failed run names the one that failed.
STEPS = (
    "namespace",
    "fetch",
    "inventory",
    "decrypt",
    "render",
    "validate",
    "observe",
    "preview",
    "apply",
    "prune",
    "health",
    "record",
)


@dataclass
class RunSummary:
    """What one converge did: result, the SHA it converged, counts and a one-line message."""

    result: Result
    sha: str | None = None
    mode: Mode = "apply"
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNT_KEYS, 0))
    drifted: list[str] = field(default_factory=list)
    objects: list[str] = field(default_factory=list)
    message: str = ""
    failed_step: str | None = None  # one of STEPS, for a failure inside the pipeline

    def to_json(self) -> str:
        """Serialise within MAX_BYTES, dropping object names and shortening the message first."""
        data = asdict(self)
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        while len(text.encode()) > MAX_BYTES and (data["objects"] or data["drifted"]):
            key = "objects" if data["objects"] else "drifted"
            data[key] = data[key][: len(data[key]) // 2]
            text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        if len(text.encode()) > MAX_BYTES:
            overflow = len(text.encode()) - MAX_BYTES + 16
            message = data["message"].encode()[: max(0, len(data["message"].encode()) - overflow)]
            data["message"] = message.decode(errors="ignore") + "…"
            text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        return text

    @classmethod
    def from_json(cls, text: str) -> RunSummary | None:
        """Parse a termination message; None when it is not a summary (a log tail, say)."""
        try:
            data: Any = json.loads(text)
        except (ValueError, TypeError):
            return None
        if not isinstance(data, dict) or data.get("result") not in RESULTS:
            return None
        raw_counts = data.get("counts")
        counts: dict[str, Any] = raw_counts if isinstance(raw_counts, dict) else {}
        mode = data.get("mode", "apply")
        return cls(
            result=data["result"],
            sha=data.get("sha") if isinstance(data.get("sha"), str) else None,
            mode=mode if mode in MODES else "apply",
            counts={k: int(v) for k, v in counts.items() if isinstance(v, int)},
            drifted=[str(x) for x in data.get("drifted") or [] if isinstance(x, str)],
            objects=[str(x) for x in data.get("objects") or [] if isinstance(x, str)],
            message=str(data.get("message", "")),
            failed_step=data["failed_step"] if data.get("failed_step") in STEPS else None,
        )
