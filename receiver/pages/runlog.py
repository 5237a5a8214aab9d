"""A Job's log as the run page shows it: readable lines instead of JSON, and the diffs in it
as coloured HTML.

Pure: text in, escaped HTML out. Every value comes from a Job's log, which Git content
reaches (object names, messages), so all of it is escaped; colour comes from classes the
shared stylesheet styles, never from inline styles.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

from hooksync import diffs
from receiver.pages._html import e

# Fields every line of one run carries, shown once at the top of the page instead.
_SAME_FOR_THE_RUN: Final = frozenset(
    {"time", "level", "logger", "msg", "step", "target", "mode", "job", "diff", "event"}
)


@dataclass(frozen=True)
class LogLine:
    """One line of a Job's log, readable: `raw` is set for a line that is not a JSON object."""

    time: str = ""
    level: str = ""
    step: str = ""
    message: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    raw: str | None = None


def read_line(line: str) -> LogLine:
    """Pure: one log line, parsed; anything but a JSON object stays as it is."""
    try:
        entry: Any = json.loads(line)
    except ValueError:
        return LogLine(raw=line)
    if not isinstance(entry, dict):
        return LogLine(raw=line)
    if "msg" not in entry and "result" in entry:  # the summary the Job prints last
        return LogLine(
            step="summary",
            message=_text(entry.get("message", "")),
            fields={k: _text(entry[k]) for k in ("result", "mode", "sha") if entry.get(k)},
        )
    fields = {k: _text(v) for k, v in entry.items() if k not in _SAME_FOR_THE_RUN}
    if isinstance(entry.get("diff"), str) and entry["diff"]:
        fields["diff"] = f"{entry['diff'].count(chr(10))} lines, shown above"
    return LogLine(
        time=_clock(_text(entry.get("time", ""))),
        level=_text(entry.get("level", "")),
        step=_text(entry.get("step", "")),
        message=_text(entry.get("msg", "")),
        fields=fields,
    )


def log_html(text: str) -> str:
    """Pure: the log as one line each: time, step, message and fields; other lines as is.
    Each line is a block of its own (a whole-width colour) that still ends in a line break,
    so the text copies as lines."""
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        read = read_line(line)
        if read.raw is not None:
            rows.append(f"<span class='raw'>{e(read.raw)}\n</span>")
            continue
        level = " error" if read.level in ("error", "critical") else ""
        level = " warning" if read.level == "warning" else level
        fields = " ".join(
            f"<span class='field'>{e(k)}=<b>{e(v)}</b></span>" for k, v in read.fields.items()
        )
        rows.append(
            f"<span class='entry{level}'><span class='time'>{e(read.time)}</span> "
            f"<span class='step'>{e(read.step)}</span> "
            f"<span class='message'>{e(read.message)}</span> {fields}\n</span>"
        )
    return f"<pre class='log'>{''.join(rows)}</pre>" if rows else "<pre class='log'>(empty)</pre>"


def diff_html(text: str) -> str:
    """Pure: a unified diff, each line classed: file, hunk, add, del or context."""
    rows = []
    for line in text.splitlines():
        if line.startswith(("--- ", "+++ ")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        elif line.startswith("…"):
            kind = "cut"
        else:
            kind = "ctx"
        rows.append(f"<span class='{kind}'>{e(line)}\n</span>")
    return f"<pre class='diff'>{''.join(rows)}</pre>"


# What the page calls each preview verdict and each apply outcome.
WOULD_SAYS: Final = {
    "create": "would create",
    "change": "would change",
    "prune": "would prune",
    "unchanged": "unchanged",
}


def preview_html(found: list[diffs.ObjectDiff]) -> str:
    """Pure: a preview's diffs, one section per object that would change; the unchanged
    ones named in one line."""
    if not found:
        return "<p><small>no per-object diff in the log</small></p>"
    parts = []
    unchanged = [diff.object for diff in found if diff.would == "unchanged"]
    for diff in found:
        if diff.would == "unchanged":
            continue
        body = diff_html(diff.text) if diff.text else ""
        parts.append(
            f"<section class='object'><h4><code>{e(diff.object)}</code> "
            f"<span class='would {e(diff.would)}'>{e(WOULD_SAYS[diff.would])}</span></h4>"
            f"{body}</section>"
        )
    if unchanged:
        names = ", ".join(f"<code>{e(name)}</code>" for name in unchanged)
        parts.append(f"<p class='unchanged'>unchanged: {names}</p>")
    return "".join(parts)


def outcomes_html(found: list[diffs.ObjectOutcome]) -> str:
    """Pure: what an apply did to each object, with the diff of each one it changed."""
    if not found:
        return "<p><small>no per-object outcome in the log</small></p>"
    rows = []
    for outcome in found:
        said = outcome.outcome + (", drifted (reverted)" if outcome.drifted else "")
        classes = f"outcome {outcome.outcome}" + (" drifted" if outcome.drifted else "")
        body = diff_html(outcome.text) if outcome.text else ""
        rows.append(
            f"<tr><td><code>{e(outcome.object)}</code></td>"
            f"<td><span class='{e(classes)}'>{e(said)}</span></td><td>{body}</td></tr>"
        )
    return (
        "<table class='outcomes'><tr><th>object</th><th>outcome</th><th>change</th></tr>"
        f"{''.join(rows)}</table>"
    )


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _clock(stamp: str) -> str:
    """HH:MM:SS.mmm of an ISO time (the page shows the day once), else the text as it is."""
    date, sep, rest = stamp.partition("T")
    return rest[:12] if sep and len(date) == 10 else stamp
