"""Which targets an event reaches, and in which mode; or, when none, why not.

Pure: an event and the configured targets in, the Jobs it asks for and a one-line reason out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from hooksync.config import Target
from hooksync.names import Mode
from hooksync.providers import Provider
from receiver.intake.events import Event, PingEvent, PreviewEvent, PushEvent

APPLY: Final = "apply"
PREVIEW: Final = "preview"


@dataclass(frozen=True, kw_only=True)
class JobRequest:
    """One Job to start: `target` in `mode`, prompted by commit `sha` on `ref`.

    For apply the Job converges the branch head as fetched when it runs (a webhook is a nudge);
    `sha` is then only what to report on. For preview `sha` is the exact commit checked, and
    `ref` is the provider's read-only ref for the PR/MR head, which a fork's commits reach too.
    """

    target: Target
    mode: Mode
    sha: str
    ref: str
    delivery_id: str | None = None
    pr_number: int | None = None


@dataclass(frozen=True)
class Routing:
    """The Jobs one event asks for; `reason` says in one line what was decided, or why nothing.

    `suspended` names the targets the event would have reached but that are suspended; with
    no requests, it means every target the event reached is suspended.
    """

    requests: tuple[JobRequest, ...]
    reason: str
    suspended: tuple[str, ...] = ()


def route(event: Event, targets: Sequence[Target]) -> Routing:
    """Match `event` against `targets`.

    A branch push reaches every target of the same provider and repository that follows the
    branch. A tag push, or a deletion, reaches none: targets follow branches, and Git (not an
    event) says what a branch holds. A PR/MR reaches targets of the same repository whose
    branch is its base branch, that have previews on, and, for forks, previewsFromForks.
    A suspended target is reached by nothing: it is named in `suspended` instead.
    """
    if isinstance(event, PushEvent):
        return _route_push(event, targets)
    if isinstance(event, PreviewEvent):
        return _route_preview(event, targets)
    if isinstance(event, PingEvent):
        zen = f": {event.zen}" if event.zen else ""
        return Routing((), f"ping from {event.provider}{zen}")
    return Routing((), event.reason)


def _route_push(event: PushEvent, targets: Sequence[Target]) -> Routing:
    if event.deleted:
        return Routing((), f"{event.ref} of {event.repo} was deleted; nothing to deploy")
    if event.branch is None:
        return Routing(
            (), f"tag {event.tag} of {event.repo} deploys nothing: targets follow branches"
        )
    every = _following(event.provider, event.repo, event.branch, targets)
    if not every:
        return Routing((), f"no target follows {event.repo} branch {event.branch}")
    followers, suspended = _active(every)
    if not followers:
        return Routing((), _suspended_reason(suspended), suspended)
    requests = tuple(
        JobRequest(
            target=target,
            mode=APPLY,
            sha=event.after,
            ref=event.ref,
            delivery_id=event.delivery_id,
        )
        for target in followers
    )
    return Routing(requests, _routed(requests, suspended), suspended)


def _route_preview(event: PreviewEvent, targets: Sequence[Target]) -> Routing:
    change = _change_name(event)
    every = _following(event.provider, event.repo, event.base_branch, targets)
    if not every:
        return Routing((), f"no target follows {event.repo} branch {event.base_branch} ({change})")
    followers, suspended = _active(every)
    if not followers:
        return Routing((), f"{_suspended_reason(suspended)} ({change})", suspended)
    previewing = [target for target in followers if target.previews]
    if not previewing:
        return Routing((), f"previews are off for target {_names(followers)} ({change})")
    allowed = [t for t in previewing if t.previews_from_forks] if event.is_fork else previewing
    if not allowed:
        source = event.head_repo or "a deleted repository"
        return Routing(
            (),
            f"{change} comes from fork {source}; target {_names(previewing)} does not preview "
            "forks (previewsFromForks: false)",
        )
    requests = tuple(
        JobRequest(
            target=target,
            mode=PREVIEW,
            sha=event.head_sha,
            ref=_head_ref(event),
            delivery_id=event.delivery_id,
            pr_number=event.number,
        )
        for target in allowed
    )
    return Routing(requests, _routed(requests, suspended), suspended)


def _following(
    provider: Provider, repo: str, branch: str, targets: Sequence[Target]
) -> list[Target]:
    return [
        target
        for target in targets
        if target.provider == provider and target.repo_matches(repo) and target.branch == branch
    ]


def _head_ref(event: PreviewEvent) -> str:
    # Both hosts keep the head of every PR/MR, forks included, under these refs.
    if event.provider == "gitlab":
        return f"refs/merge-requests/{event.number}/head"
    return f"refs/pull/{event.number}/head"


def _change_name(event: PreviewEvent) -> str:
    if event.provider == "gitlab":
        return f"merge request !{event.number}"
    return f"pull request #{event.number}"


def _active(targets: Sequence[Target]) -> tuple[list[Target], tuple[str, ...]]:
    """The targets that are not suspended, and the names of those that are."""
    return [t for t in targets if not t.suspend], tuple(t.name for t in targets if t.suspend)


def _suspended_reason(suspended: Sequence[str]) -> str:
    return f"target {', '.join(suspended)} is suspended (suspend: true); no Job started"


def _routed(requests: Sequence[JobRequest], suspended: Sequence[str] = ()) -> str:
    first = requests[0]
    reason = f"{first.mode} {first.sha[:7]} for target {_names([r.target for r in requests])}"
    if suspended:
        reason += f"; target {', '.join(suspended)} is suspended"
    return reason


def _names(targets: Sequence[Target]) -> str:
    return ", ".join(target.name for target in targets)
