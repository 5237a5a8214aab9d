"""Webhook payloads turned into typed events: pushes, previews (PRs/MRs), pings, or ignored.

Pure: bytes and header values in, one event out. Every payload string that an event carries
has been checked here first (refs with hooksync.refs, SHAs, repository paths), and anything
malformed is refused with a reason that names the field.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import parse_qsl

from hooksync.providers import Provider
from hooksync.refs import (
    is_valid_branch_name,
    is_valid_ref_name,
    is_valid_repo_path,
    is_valid_sha,
)
from receiver.intake.errors import MalformedDelivery, UnsupportedContentType
from receiver.intake.jsonbody import JSONBody, Shape, json_kind

GITHUB: Final = "github"
GITLAB: Final = "gitlab"

# "synchronized" is Gitea's word: a Gitea webhook pointed at /hooks/github still gets previews.
GITHUB_PREVIEW_ACTIONS: Final = frozenset({"opened", "reopened", "synchronize", "synchronized"})
GITLAB_PREVIEW_ACTIONS: Final = frozenset({"open", "reopen"})

BRANCH_PREFIX: Final = "refs/heads/"
TAG_PREFIX: Final = "refs/tags/"

# What each parser reads of a body (see receiver.intake.jsonbody for how shapes are read).
_GITHUB_FIELDS: Final[dict[str, dict[str, Shape | None]]] = {
    "push": {
        "ref": None,
        "before": None,
        "after": None,
        "deleted": None,
        "repository": {"full_name": None},
        "commits": [{"id": None}],
    },
    "pull_request": {
        "action": None,
        "number": None,
        "repository": {"full_name": None},
        "pull_request": {
            "base": {"ref": None, "repo": {"full_name": None}},
            "head": {"sha": None, "repo": {"full_name": None}},
        },
    },
    "ping": {"zen": None, "hook_id": None},
}
_GITLAB_PUSH_FIELDS: Final[dict[str, Shape | None]] = {
    "ref": None,
    "before": None,
    "after": None,
    "project": {"path_with_namespace": None},
    "commits": [{"id": None}],
}
_GITLAB_MERGE_REQUEST_FIELDS: Final[dict[str, Shape | None]] = {
    "project": {"path_with_namespace": None},
    "object_attributes": {
        "action": None,
        "oldrev": None,
        "iid": None,
        "target_branch": None,
        "last_commit": {"id": None},
        "source_project_id": None,
        "target_project_id": None,
        "source": {"path_with_namespace": None},
    },
}

# GitLab System Hooks may lack object_kind; these header values say what the body is then.
_GITLAB_HEADER_KINDS: Final = {
    "Push Hook": "push",
    "Tag Push Hook": "tag_push",
    "Merge Request Hook": "merge_request",
}

_DELIVERY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


@dataclass(frozen=True, kw_only=True)
class PushEvent:
    """Commits pushed to a branch or a tag; exactly one of `branch` and `tag` is set.

    The parsers never return a deletion (they answer IgnoredEvent), so `deleted` is True only
    in events built by hand; routing drops those too.
    """

    provider: Provider
    repo: str
    ref: str
    after: str
    before: str
    branch: str | None = None
    tag: str | None = None
    commits: tuple[str, ...] = ()
    deleted: bool = False
    delivery_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class PreviewEvent:
    """A PR/MR into `base_branch` whose head commit `head_sha` should get a dry-run check."""

    provider: Provider
    repo: str
    base_branch: str
    head_sha: str
    head_repo: str | None
    number: int
    is_fork: bool
    action: str
    delivery_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class PingEvent:
    """GitHub's hello when a webhook is created: answered 200, starts nothing."""

    provider: Provider
    zen: str = ""
    hook_id: int | None = None
    delivery_id: str | None = None


@dataclass(frozen=True)
class IgnoredEvent:
    """A well-formed delivery that needs nothing done; `reason` goes into the 200 answer."""

    reason: str


Event = PushEvent | PreviewEvent | PingEvent | IgnoredEvent


def parse_github(
    event_name: str, body: bytes, content_type: str | None, delivery_id: str | None
) -> Event:
    """Turn a GitHub delivery (X-GitHub-Event, raw body, Content-Type) into an event.

    The body is JSON, or a form whose `payload` field holds the JSON; the signature must have
    been checked on the raw body before this is called. Raises UnsupportedContentType (415)
    or MalformedDelivery (400).
    """
    text: bytes | str = body
    what = "body"
    if body_format(GITHUB, content_type) == "form":
        text, what = _form_payload(body), "payload"
    else:
        _checked_utf8(body)
    if not event_name:
        raise MalformedDelivery("X-GitHub-Event header is missing")
    delivery = _delivery_id(delivery_id, "X-GitHub-Delivery")
    shape = _GITHUB_FIELDS.get(event_name)
    if shape is None:
        return IgnoredEvent(f"GitHub event {_show(event_name)} is not one hooksync acts on")
    doc = JSONBody(text, what).fields(shape)
    if event_name == "push":
        return _github_push(doc, delivery)
    if event_name == "pull_request":
        return _github_pull_request(doc, delivery)
    return _github_ping(doc, delivery)


def parse_gitlab(
    body: bytes,
    event_header: str | None,
    delivery_id: str | None,
    *,
    content_type: str | None = None,
) -> Event:
    """Turn a GitLab delivery (raw JSON body, X-Gitlab-Event, Content-Type) into an event.

    Routes on the body's `object_kind` (then `event_name`, then the header), so project,
    group and System Hooks all work. The token or signature must have been checked before
    this is called. Raises UnsupportedContentType (415) or MalformedDelivery (400).
    """
    body_format(GITLAB, content_type)
    document = JSONBody(_checked_utf8(body), "body")
    delivery = _delivery_id(delivery_id, "delivery id")
    kind = _gitlab_kind(document, event_header)
    if kind in ("push", "tag_push"):
        return _gitlab_push(document.fields(_GITLAB_PUSH_FIELDS), delivery)
    if kind == "merge_request":
        return _gitlab_merge_request(document.fields(_GITLAB_MERGE_REQUEST_FIELDS), delivery)
    return IgnoredEvent(f"GitLab event {_show(kind or event_header)} is not one hooksync acts on")


def body_format(provider: str, content_type: str | None) -> Literal["json", "form"]:
    """How a delivery's body is read, from its Content-Type; UnsupportedContentType (415)
    for any type the provider does not send.

    Both parsers check it after the signature, so a delivery that is not signed gets 401
    whatever its content type. GitHub sends JSON, or a form when the webhook is set to
    form-encoded; GitLab sends JSON, and a delivery without the header is read as JSON.
    """
    if provider == GITLAB and not content_type:
        return "json"
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type == "application/json":
        return "json"
    if provider == GITLAB:
        raise UnsupportedContentType(f"content type {_show(media_type)} is not application/json")
    if media_type == "application/x-www-form-urlencoded":
        return "form"
    raise UnsupportedContentType(
        f"content type {_show(media_type) if media_type else '(none)'} is not handled; "
        "set the GitHub webhook's content type to application/json"
    )


# GitHub


def _form_payload(body: bytes) -> str:
    """The `payload` field of a form-encoded GitHub delivery."""
    try:
        fields = parse_qsl(
            _utf8(body),
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=32,
        )
    except UnicodeDecodeError:
        raise MalformedDelivery("payload is not UTF-8 once percent-decoded") from None
    except ValueError:
        raise MalformedDelivery(
            "form body has too many fields; GitHub sends only payload"
        ) from None
    payloads = [value for name, value in fields if name == "payload"]
    if not payloads:
        raise MalformedDelivery("form body has no payload field")
    if len(payloads) > 1:
        raise MalformedDelivery(f"payload: the form field appears {len(payloads)} times")
    return payloads[0]


def _github_push(doc: dict[str, Any], delivery: str | None) -> Event:
    ref = _string(doc, "ref")
    kind = _ref_kind(ref, "ref")
    if kind is None:
        return IgnoredEvent(f"ref {_show(ref)} is neither a branch nor a tag")
    repo = _repo(doc, "repository.full_name", GITHUB)
    before = _sha(doc, "before")
    after = _sha(doc, "after")
    deleted = _optional_bool(doc, "deleted") or _is_zero(after)
    if deleted:
        return _deletion(kind, ref, repo)
    return _push_event(GITHUB, repo, ref, kind, before, after, _commit_ids(doc), delivery)


def _github_pull_request(doc: dict[str, Any], delivery: str | None) -> Event:
    action = _string(doc, "action")
    if action not in GITHUB_PREVIEW_ACTIONS:
        return IgnoredEvent(f"pull_request action {_show(action)} needs no preview")
    repo = _repo(doc, "repository.full_name", GITHUB)
    number = _positive_int(doc, "number")
    base_branch = _branch(doc, "pull_request.base.ref")
    head_sha = _sha(doc, "pull_request.head.sha")
    base_repo = _repo(doc, "pull_request.base.repo.full_name", GITHUB)
    # head.repo is null when the fork the PR comes from has been deleted: treat as a fork.
    head_repo = None
    if _optional(doc, "pull_request.head.repo") is not None:
        head_repo = _repo(doc, "pull_request.head.repo.full_name", GITHUB)
    # GitHub repository names ignore case, so a differently cased name is the same repository.
    is_fork = head_repo is None or head_repo.lower() != base_repo.lower()
    return PreviewEvent(
        provider=GITHUB,
        repo=repo,
        base_branch=base_branch,
        head_sha=head_sha,
        head_repo=head_repo,
        number=number,
        is_fork=is_fork,
        action=action,
        delivery_id=delivery,
    )


def _github_ping(doc: dict[str, Any], delivery: str | None) -> PingEvent:
    zen = _optional(doc, "zen")
    if zen is not None and not isinstance(zen, str):
        raise MalformedDelivery(f"zen: expected a string, got {json_kind(zen)}")
    hook_id = _optional(doc, "hook_id")
    if hook_id is not None and (isinstance(hook_id, bool) or not isinstance(hook_id, int)):
        raise MalformedDelivery(f"hook_id: expected a number, got {json_kind(hook_id)}")
    return PingEvent(provider=GITHUB, zen=zen or "", hook_id=hook_id, delivery_id=delivery)


# GitLab


def _gitlab_kind(document: JSONBody, event_header: str | None) -> str | None:
    for field in ("object_kind", "event_name"):
        value = document.fields({field: None}).get(field)
        if value is None:
            continue
        if not isinstance(value, str):
            raise MalformedDelivery(f"{field}: expected a string, got {json_kind(value)}")
        return value
    return _GITLAB_HEADER_KINDS.get(event_header or "")


def _gitlab_push(doc: dict[str, Any], delivery: str | None) -> Event:
    ref = _string(doc, "ref")
    kind = _ref_kind(ref, "ref")
    if kind is None:
        return IgnoredEvent(f"ref {_show(ref)} is neither a branch nor a tag")
    repo = _repo(doc, "project.path_with_namespace", GITLAB)
    before = _sha(doc, "before")
    after = _sha(doc, "after")
    if _is_zero(after):
        return _deletion(kind, ref, repo)
    return _push_event(GITLAB, repo, ref, kind, before, after, _commit_ids(doc), delivery)


def _gitlab_merge_request(doc: dict[str, Any], delivery: str | None) -> Event:
    action = _string(doc, "object_attributes.action")
    # `update` also fires for title or label edits; only `oldrev` says new commits arrived.
    oldrev = _optional(doc, "object_attributes.oldrev")
    if action == "update" and oldrev is not None:
        _sha(doc, "object_attributes.oldrev")
    elif action == "update":
        return IgnoredEvent("merge request update without new commits needs no preview")
    elif action not in GITLAB_PREVIEW_ACTIONS:
        return IgnoredEvent(f"merge request action {_show(action)} needs no preview")
    repo = _repo(doc, "project.path_with_namespace", GITLAB)
    number = _positive_int(doc, "object_attributes.iid")
    base_branch = _branch(doc, "object_attributes.target_branch")
    head_sha = _sha(doc, "object_attributes.last_commit.id")
    source_id = _positive_int(doc, "object_attributes.source_project_id")
    target_id = _positive_int(doc, "object_attributes.target_project_id")
    head_repo = None
    if _optional(doc, "object_attributes.source") is not None:
        head_repo = _repo(doc, "object_attributes.source.path_with_namespace", GITLAB)
    return PreviewEvent(
        provider=GITLAB,
        repo=repo,
        base_branch=base_branch,
        head_sha=head_sha,
        head_repo=head_repo,
        number=number,
        is_fork=source_id != target_id,
        action=action,
        delivery_id=delivery,
    )


# Shared by both providers


def _push_event(
    provider: Provider,
    repo: str,
    ref: str,
    kind: str,
    before: str,
    after: str,
    commits: tuple[str, ...],
    delivery: str | None,
) -> PushEvent:
    name = ref.removeprefix(BRANCH_PREFIX if kind == "branch" else TAG_PREFIX)
    return PushEvent(
        provider=provider,
        repo=repo,
        ref=ref,
        after=after,
        before=before,
        branch=name if kind == "branch" else None,
        tag=name if kind == "tag" else None,
        commits=commits,
        delivery_id=delivery,
    )


def _deletion(kind: str, ref: str, repo: str) -> IgnoredEvent:
    name = ref.removeprefix(BRANCH_PREFIX if kind == "branch" else TAG_PREFIX)
    return IgnoredEvent(f"{kind} {name} of {repo} was deleted; nothing to deploy")


@functools.lru_cache(maxsize=1024)  # a handful of refs arrive over and over
def _ref_kind(ref: str, where: str) -> str | None:
    """'branch' or 'tag' for a valid ref, None for other valid refs; invalid refs are refused."""
    if not is_valid_ref_name(ref):
        raise MalformedDelivery(f"{where}: {_show(ref)} is not a valid Git ref name")
    if ref.startswith(BRANCH_PREFIX):
        if not is_valid_branch_name(ref.removeprefix(BRANCH_PREFIX)):
            raise MalformedDelivery(f"{where}: {_show(ref)} is not a valid branch ref")
        return "branch"
    if ref.startswith(TAG_PREFIX) and len(ref) > len(TAG_PREFIX):
        return "tag"
    return None


def _commit_ids(doc: dict[str, Any]) -> tuple[str, ...]:
    # System Hooks send no commits, so an absent list is an empty one.
    commits = _optional(doc, "commits")
    if commits is None:
        return ()
    if not isinstance(commits, list):
        raise MalformedDelivery(f"commits: expected a list, got {json_kind(commits)}")
    ids: list[str] = []
    for commit in commits:
        sha = commit.get("id") if type(commit) is dict else None
        if type(sha) is str and is_valid_sha(sha):
            ids.append(sha)
            continue
        where = f"commits[{len(ids)}]"  # only a refusal needs the index in words
        if not isinstance(commit, dict):
            raise MalformedDelivery(f"{where}: expected an object, got {json_kind(commit)}")
        ids.append(_sha(commit, "id", where=f"{where}.id"))
    return tuple(ids)


def _is_zero(sha: str) -> bool:
    """Whether `sha` is the all-zero name Git hosts use for "no commit" (40 or 64 digits)."""
    return not sha.strip("0")


def _delivery_id(value: str | None, header: str) -> str | None:
    if not value:
        return None
    if not _DELIVERY_ID.fullmatch(value):
        raise MalformedDelivery(f"{header}: {_show(value)} is not a delivery id")
    return value


# Decoding


def _utf8(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedDelivery("body is not UTF-8") from None


def _checked_utf8(body: bytes) -> bytes:
    """`body`, once known to be UTF-8; the JSON parser reads the bytes themselves."""
    if not body.isascii():  # ASCII, the usual case, is UTF-8; telling takes no decoding
        _utf8(body)
    return body


# Field access: each failure names the dotted path of the field.


def _lookup(doc: dict[str, Any], path: str, *, required: bool) -> Any:
    node: Any = doc
    for key in _keys(path):  # the common case: every step is there
        if type(node) is not dict or key not in node:
            return _lookup_slowly(doc, path, required=required)
        node = node[key]
    return node


@functools.lru_cache(maxsize=128)  # the paths are the parsers' own constants
def _keys(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


def _lookup_slowly(doc: dict[str, Any], path: str, *, required: bool) -> Any:
    """`_lookup` for a path that stops short: None, or an error naming where it stopped."""
    node: Any = doc
    walked: list[str] = []
    for key in path.split("."):
        if node is None and not required:
            return None
        if not isinstance(node, dict):
            where = ".".join(walked)
            raise MalformedDelivery(f"{where}: expected an object, got {json_kind(node)}")
        walked.append(key)
        if key not in node:
            if required:
                raise MalformedDelivery(f"{'.'.join(walked)}: missing")
            return None
        node = node[key]
    return node


def _optional(doc: dict[str, Any], path: str) -> Any:
    return _lookup(doc, path, required=False)


def _string(doc: dict[str, Any], path: str, *, where: str | None = None) -> str:
    value = _lookup(doc, path, required=True)
    if not isinstance(value, str):
        raise MalformedDelivery(f"{where or path}: expected a string, got {json_kind(value)}")
    if not value:
        raise MalformedDelivery(f"{where or path}: empty")
    return value


def _sha(doc: dict[str, Any], path: str, *, where: str | None = None) -> str:
    value = _lookup(doc, path, required=True)
    if type(value) is str and is_valid_sha(value):
        return value
    value = _string(doc, path, where=where)
    raise MalformedDelivery(
        f"{where or path}: {_show(value)} is not a full commit SHA (40 lower-case hex digits)"
    )


def _branch(doc: dict[str, Any], path: str) -> str:
    value = _string(doc, path)
    if not is_valid_branch_name(value):
        raise MalformedDelivery(f"{path}: {_show(value)} is not a valid Git branch name")
    return value


def _repo(doc: dict[str, Any], path: str, provider: Provider) -> str:
    value = _string(doc, path)
    if not is_valid_repo_path(provider, value):
        raise MalformedDelivery(f"{path}: {_show(value)} is not a repository path")
    return value


def _positive_int(doc: dict[str, Any], path: str) -> int:
    value = _lookup(doc, path, required=True)
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedDelivery(f"{path}: expected a number, got {json_kind(value)}")
    if value <= 0:
        raise MalformedDelivery(f"{path}: {value} is not a positive number")
    return value


def _optional_bool(doc: dict[str, Any], path: str) -> bool:
    value = _optional(doc, path)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise MalformedDelivery(f"{path}: expected true or false, got {json_kind(value)}")
    return value


def _show(value: str | None, limit: int = 60) -> str:
    """Quote a payload string for a reason line, cut short so a huge value stays one line."""
    if value is None:
        return "(none)"
    shown = value if len(value) <= limit else value[:limit] + "…"
    return repr(shown)
