"""Which commit statuses a Job's state calls for (pure): pending when it is created, a final
state for every SHA it stood for when it ends (design rule 4: every pending status ends)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hooksync import names
from hooksync.summary import RunSummary
from receiver import jobview
from receiver.jobview import (
    annotation_list,
    is_finished,
    is_suspended,
    job_shas,
    labels_of,
    name_of,
    waits_for,
)

GITHUB_DESCRIPTION_LIMIT = 140
GITLAB_DESCRIPTION_LIMIT = 255

PENDING, SUCCESS, FAILURE = "pending", "success", "failure"


@dataclass(frozen=True)
class StatusReport:
    """One commit status to post: on `sha`, under `context`."""

    sha: str
    state: str  # pending | success | failure (the provider's own words are chosen on posting)
    context: str
    description: str


def context_for(mode: names.Mode, target: str) -> str:
    kind = "preview" if mode == "preview" else "deploy"
    return f"hooksync/{kind}: {target}"


def pending_reports(job: Mapping[str, Any]) -> list[StatusReport]:
    """Pending statuses for SHAs on an unfinished Job that have not had one yet."""
    if is_finished(job):
        return []
    labels = labels_of(job)
    mode, target = jobview.mode_of(job), labels.get(names.TARGET, "")
    if mode == "resync":
        return []  # a resync reports only what it changed, once it has changed it
    done = set(annotation_list(job, names.REPORTED_PENDING))
    if is_suspended(job):
        description = f"queued behind {waits_for(job) or 'the running deploy'}"
    elif mode == "preview":
        description = "checking what this commit would change"
    else:
        description = "deploying the branch head"
    context = context_for(mode, target)
    return [
        StatusReport(sha, PENDING, context, description) for sha in job_shas(job) if sha not in done
    ]


def final_reports(
    job: Mapping[str, Any], summary: RunSummary | None, failure_reason: str | None
) -> list[StatusReport]:
    """The final statuses once a Job has ended.

    `summary` is the Job's termination summary (None when the pod never wrote one);
    `failure_reason` is what the Job's Failed condition says, for that case.
    """
    labels = labels_of(job)
    mode, target = jobview.mode_of(job), labels.get(names.TARGET, "")
    context = context_for(mode, target)
    shas = job_shas(job)
    verb = "preview" if mode == "preview" else "apply"
    failed = jobview.failure_reason(job) is not None

    if summary is None or summary.result in ("failure", "lease-held") or failed:
        if summary is not None and summary.result == "failure":
            message = summary.message
        else:
            message = f"{verb} failed: {failure_reason or 'the Job ended without a summary'}"
        targets = shas or ([summary.sha] if summary and summary.sha else [])
        return [StatusReport(sha, FAILURE, context, message) for sha in targets]

    applied = summary.sha
    if mode == "resync":
        changed = any(summary.counts.get(k, 0) for k in ("created", "configured", "pruned"))
        if not applied or not (changed or summary.counts.get("drifted", 0)):
            return []  # nothing changed: nothing to say
        return [StatusReport(applied, SUCCESS, context, summary.message)]

    reports = []
    for sha in shas:
        if mode == "preview" or sha == applied or not applied:
            reports.append(StatusReport(sha, SUCCESS, context, summary.message))
        else:
            reports.append(StatusReport(sha, SUCCESS, context, f"included in {applied[:7]}"))
    if applied and applied not in shas and mode != "preview":
        # The head moved on after these events: it is what got deployed, say so on it too.
        reports.append(StatusReport(applied, SUCCESS, context, summary.message))
    # The deployed commit first: the host paces writes (GitHub about one a second), and after
    # a burst of pushes the head is the commit people look at.
    return sorted(reports, key=lambda report: report.sha != applied)


def carried_shas(jobs: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Which unreported apply Job stands for each SHA, from the leader's listing."""
    return {
        sha: name_of(job)
        for job in jobs
        if labels_of(job).get(names.MODE) == "apply"
        for sha in job_shas(job)
    }


def owned_reports(
    job: Mapping[str, Any], reports: Sequence[StatusReport], carried: Mapping[str, str]
) -> list[StatusReport]:
    """The final reports that are `job`'s to post.

    A run that deployed the branch head whose push is on another Job (folded into the one
    waiting behind it) leaves that SHA to the other Job: one final status per SHA, and no
    "pending" from the other Job after this one's "success".
    """
    name = name_of(job)
    own = set(job_shas(job))
    return [r for r in reports if r.sha in own or carried.get(r.sha, name) == name]


def reports_at_exit(job: Mapping[str, Any], reports: Sequence[StatusReport]) -> list[StatusReport]:
    """The final reports a Job may post as soon as its pod exits 0, before it is Complete: those
    of the commits it stands for itself, not yet posted.

    A SHA is folded only into a waiting Job, by compare-and-swap, so a running Job's own SHAs
    are its alone for good. A newer head it deployed beyond them may meanwhile have been taken
    by the Job waiting behind, which the leader's listing may not show yet: that one waits for
    Complete, and `owned_reports` over a fresh listing.
    """
    own = set(job_shas(job))
    already = set(annotation_list(job, names.REPORTED_FINAL))
    return [r for r in reports if r.sha in own and r.sha not in already]


def shorten(text: str, limit: int) -> str:
    """`text` in at most `limit` characters, cut at a word boundary with an ellipsis.

    Limits count characters (code points), as both hosts do, so a multi-byte UTF-8 character
    is never split.
    """
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:") + "…"
