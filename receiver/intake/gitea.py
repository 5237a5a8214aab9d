"""Gitea and Forgejo deliveries: the signature they send, the payload they sign, and their push
and pull_request events as hooksync's typed events.

Pure: body, header values and secrets in, one event out. Gitea (and Forgejo, its fork) sign the
JSON payload, not the request body: a JSON delivery sends the payload as the body, a form
delivery sends `payload=<the payload, percent-encoded>`. The payload is recovered from the body
by one strict decoding, and the same bytes are then verified and parsed.
"""

from __future__ import annotations

import binascii
import hmac
import re
from collections.abc import Sequence
from typing import Any, Final

from receiver.intake.errors import (
    MalformedDelivery,
    RejectedDelivery,
    SignatureError,
    UnsupportedContentType,
)
from receiver.intake.events import (
    GITHUB,
    Event,
    IgnoredEvent,
    PreviewEvent,
    _branch,
    _checked_utf8,
    _commit_ids,
    _deletion,
    _delivery_id,
    _is_zero,
    _lookup,
    _optional,
    _positive_int,
    _push_event,
    _ref_kind,
    _repo,
    _sha,
    _show,
    _string,
)
from receiver.intake.jsonbody import JSONBody, Shape, json_kind
from receiver.intake.verification import HeaderSource, header_values

GITEA: Final = "gitea"

# Gitea's word for new commits on a pull request is "synchronized" (GitHub's: "synchronize").
GITEA_PREVIEW_ACTIONS: Final = frozenset({"opened", "reopened", "synchronized"})

# Forgejo sends its own headers and Gitea's, with the same values; Gitea sends only its own.
SIGNATURE_HEADERS: Final = ("X-Gitea-Signature", "X-Forgejo-Signature")
EVENT_HEADERS: Final = ("X-Gitea-Event", "X-Forgejo-Event")
DELIVERY_HEADERS: Final = ("X-Gitea-Delivery", "X-Forgejo-Delivery")

_FIELDS: Final[dict[str, dict[str, Shape | None]]] = {
    "push": {
        "ref": None,
        "before": None,
        "after": None,
        "repository": {"full_name": None},
        "commits": [{"id": None}],
    },
    "pull_request": {
        "action": None,
        "number": None,
        "repository": {"full_name": None},
        "pull_request": {
            "base": {"ref": None, "repo_id": None},
            "head": {"sha": None, "repo_id": None, "repo": {"full_name": None}},
        },
    },
}

_SIGNATURE = re.compile(r"[0-9a-fA-F]{64}")
# What Go's url.Values.Encode writes for one field: `payload=`, then unreserved bytes, '+' for
# a space and %XX for every other byte. Anything else (a second field, a bare '%', ';') is
# refused. Both checks and the decoding run in C: the payload is decoded before its signature
# can be checked, so a hostile 10 MB body must stay cheap.
_FORM_FIELD = b"payload="
_FORM_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+%"
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def intake_gitea(
    body: bytes, headers: HeaderSource, content_type: str | None, secrets: Sequence[str]
) -> Event:
    """A Gitea or Forgejo delivery, from its raw body, checked and parsed into an event.

    Raises UnsupportedContentType (415), MalformedDelivery (400) or SignatureError (401).
    """
    payload = signed_payload(body, content_type)
    verify_gitea_signature(payload, headers, secrets)
    return parse_gitea(event_name(headers), payload, delivery_id(headers))


def signed_payload(body: bytes, content_type: str | None) -> bytes:
    """The bytes Gitea signed: the body of a JSON delivery, or the one `payload` field of a
    form delivery, percent-decoded to bytes (never to text, so nothing is replaced)."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type == "application/json":
        return body
    if media_type == "application/x-www-form-urlencoded":
        encoded = body.removeprefix(_FORM_FIELD)
        if (
            not body.startswith(_FORM_FIELD)
            or encoded.translate(None, _FORM_BYTES)
            or _BAD_ESCAPE.search(encoded)
        ):
            raise MalformedDelivery(
                "form body is not exactly one percent-encoded payload field, as Gitea sends"
            )
        # Quoted-printable's =XX is percent-encoding's %XX. The checked body holds no '=' and
        # no whitespace of its own, the two things a2b_qp would treat otherwise.
        return binascii.a2b_qp(encoded.replace(b"+", b"%20").replace(b"%", b"="))
    shown = _show(media_type) if media_type else "(none)"
    raise UnsupportedContentType(
        f"content type {shown} is not handled; set the Gitea webhook's content type to "
        "application/json"
    )


def verify_gitea_signature(payload: bytes, headers: HeaderSource, secrets: Sequence[str]) -> None:
    """Check X-Gitea-Signature (or Forgejo's X-Forgejo-Signature): hex HMAC-SHA256 of `payload`.

    Any of `secrets` may match, for rotation. A repeated header, or the two headers
    disagreeing, is refused rather than guessed at; Gitea sends the header empty when the
    webhook has no secret, and that is refused too.
    """
    usable = [secret for secret in secrets if secret]
    if not usable:
        raise SignatureError(
            "no Gitea webhook secret is configured (HOOKSYNC_GITEA_WEBHOOK_SECRET); "
            "refusing unsigned deliveries"
        )
    signature = _one_value(headers, SIGNATURE_HEADERS, SignatureError)
    if signature is None:
        raise SignatureError(
            "X-Gitea-Signature header is missing; set a secret on the Gitea webhook"
        )
    if not signature:
        raise SignatureError("X-Gitea-Signature is empty: the Gitea webhook has no secret; set one")
    if _SIGNATURE.fullmatch(signature) is None:
        raise SignatureError("X-Gitea-Signature is not 64 hex digits")
    provided = bytes.fromhex(signature)
    matches = [
        hmac.compare_digest(provided, hmac.digest(secret.encode("utf-8"), payload, "sha256"))
        for secret in usable
    ]
    if not any(matches):
        raise SignatureError(
            "X-Gitea-Signature does not match the payload under any configured secret"
        )


def event_name(headers: HeaderSource) -> str:
    """X-Gitea-Event (or X-Forgejo-Event); '' when neither was sent."""
    return _one_value(headers, EVENT_HEADERS, MalformedDelivery) or ""


def delivery_id(headers: HeaderSource) -> str | None:
    """X-Gitea-Delivery (or X-Forgejo-Delivery), unchecked; the parser checks it."""
    return _one_value(headers, DELIVERY_HEADERS, MalformedDelivery) or None


def parse_gitea(event: str, payload: bytes, delivery: str | None) -> Event:
    """Turn a verified Gitea payload and its event name into an event.

    Raises MalformedDelivery (400) for a payload that is not what Gitea documents.
    """
    if not event:
        raise MalformedDelivery("X-Gitea-Event header is missing")
    checked_delivery = _delivery_id(delivery, "X-Gitea-Delivery")
    shape = _FIELDS.get(event)
    if shape is None:
        return IgnoredEvent(f"Gitea event {_show(event)} is not one hooksync acts on")
    doc = JSONBody(_checked_utf8(payload), "payload").fields(shape)
    if event == "push":
        return _push(doc, checked_delivery)
    return _pull_request(doc, checked_delivery)


def _push(doc: dict[str, Any], delivery: str | None) -> Event:
    ref = _string(doc, "ref")
    kind = _ref_kind(ref, "ref")
    if kind is None:
        return IgnoredEvent(f"ref {_show(ref)} is neither a branch nor a tag")
    # Gitea names repositories owner/name, as GitHub does.
    repo = _repo(doc, "repository.full_name", GITHUB)
    before = _sha(doc, "before")
    after = _sha(doc, "after")
    if _is_zero(after):  # Gitea announces deletions as `delete` events; be safe anyway
        return _deletion(kind, ref, repo)
    return _push_event(GITEA, repo, ref, kind, before, after, _commit_ids(doc), delivery)


def _pull_request(doc: dict[str, Any], delivery: str | None) -> Event:
    action = _string(doc, "action")
    if action not in GITEA_PREVIEW_ACTIONS:
        return IgnoredEvent(f"pull_request action {_show(action)} needs no preview")
    repo = _repo(doc, "repository.full_name", GITHUB)
    number = _positive_int(doc, "number")
    base_branch = _branch(doc, "pull_request.base.ref")
    head_sha = _sha(doc, "pull_request.head.sha")
    base_id = _positive_int(doc, "pull_request.base.repo_id")
    # Gitea gives the head's repo_id as -1 when the fork it came from is gone: a fork then.
    head_id = _int(doc, "pull_request.head.repo_id")
    head_repo = None
    if _optional(doc, "pull_request.head.repo") is not None:
        head_repo = _repo(doc, "pull_request.head.repo.full_name", GITHUB)
    return PreviewEvent(
        provider=GITEA,
        repo=repo,
        base_branch=base_branch,
        head_sha=head_sha,
        head_repo=head_repo,
        number=number,
        is_fork=head_id != base_id,
        action=action,
        delivery_id=delivery,
    )


def _int(doc: dict[str, Any], path: str) -> int:
    value = _lookup(doc, path, required=True)
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedDelivery(f"{path}: expected a number, got {json_kind(value)}")
    return value


def _one_value(
    headers: HeaderSource, names: Sequence[str], error: type[RejectedDelivery]
) -> str | None:
    """The value the headers `names` agree on, stripped; None when none was sent."""
    values = [value.strip() for name in names for value in header_values(headers, name)]
    if not values:
        return None
    for name in names:
        if len(header_values(headers, name)) > 1:
            raise error(f"{name} was sent {len(header_values(headers, name))} times")
    if len(set(values)) > 1:
        raise error(f"{' and '.join(names)} disagree")
    return values[0]
