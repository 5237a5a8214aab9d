"""Gitea and Forgejo deliveries: what they sign, how a form delivery is taken apart, and their
payloads (the recorded fixtures first) as typed events."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, unquote_to_bytes

import pytest
from hypothesis import given
from hypothesis import strategies as st

from receiver.intake.errors import MalformedDelivery, SignatureError, UnsupportedContentType
from receiver.intake.events import IgnoredEvent, PreviewEvent, PushEvent, parse_github
from receiver.intake.gitea import (
    intake_gitea,
    parse_gitea,
    signed_payload,
    verify_gitea_signature,
)
from receiver.intake.headers import ReceivedHeaders

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "webhooks"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
SECRET = "gitea-webhook-secret"
DELIVERY = "0f7c3e4a-6d1b-4c36-9d2e-9a1f7c5e2b11"

# Each fixture and the X-Gitea-Event its source sent (see SOURCES.md there).
GITEA_FIXTURES = {
    "gitea/push/payload.json": "push",
    "gitea/push/new-branch.payload.json": "push",
    "gitea/pull_request/synchronized.payload.json": "pull_request",
    "gitea/pull_request/reopened.payload.json": "pull_request",
    "gitea/pull_request/closed.payload.json": "pull_request",
}


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(fixture_bytes(name))
    return document


def sign(payload: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def go_form(payload: bytes) -> bytes:
    """A form body as Gitea writes it (Go's url.Values.Encode: unreserved kept, space as +)."""
    return b"payload=" + quote_plus(payload, safe="-_.~").encode("ascii")


def headers(**values: str) -> ReceivedHeaders:
    pairs = [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in values.items()]
    return ReceivedHeaders.from_asgi(pairs)


def gitea_headers(payload: bytes, event: str = "push", **extra: str) -> ReceivedHeaders:
    return headers(
        X_Gitea_Event=event,
        X_Gitea_Delivery=DELIVERY,
        X_Gitea_Signature=sign(payload),
        **extra,
    )


def test_every_gitea_fixture_file_has_a_test() -> None:
    present = {str(p.relative_to(FIXTURES)) for p in (FIXTURES / "gitea").rglob("*.json")}
    assert present == set(GITEA_FIXTURES)


# The recorded fixtures


def test_push_fixture_is_a_branch_push_with_its_commits() -> None:
    name = "gitea/push/payload.json"
    doc = fixture(name)
    event = parse_gitea("push", fixture_bytes(name), DELIVERY)
    assert event == PushEvent(
        provider="gitea",
        repo="Test-CI/multi-line-secrets",
        ref="refs/heads/main",
        after=doc["after"],
        before=doc["before"],
        branch="main",
        commits=tuple(c["id"] for c in doc["commits"]),
        delivery_id=DELIVERY,
    )
    assert len(event.commits) == 3


def test_new_branch_push_fixture_from_forgejo_has_a_zero_before() -> None:
    name = "gitea/push/new-branch.payload.json"
    event = parse_gitea("push", fixture_bytes(name), None)
    assert isinstance(event, PushEvent)
    assert event.branch == "fdsafdsa"
    assert event.before == "0" * 40
    assert event.after == fixture(name)["after"]
    assert event.commits == ()


@pytest.mark.parametrize(
    "name",
    ["gitea/pull_request/synchronized.payload.json", "gitea/pull_request/reopened.payload.json"],
)
def test_pull_request_fixtures_preview_the_head(name: str) -> None:
    doc = fixture(name)
    event = parse_gitea("pull_request", fixture_bytes(name), DELIVERY)
    assert event == PreviewEvent(
        provider="gitea",
        repo=doc["repository"]["full_name"],
        base_branch=doc["pull_request"]["base"]["ref"],
        head_sha=doc["pull_request"]["head"]["sha"],
        head_repo=(doc["pull_request"]["head"].get("repo") or {}).get("full_name"),
        number=doc["number"],
        is_fork=False,
        action=doc["action"],
        delivery_id=DELIVERY,
    )


def test_closed_pull_request_fixture_is_ignored() -> None:
    event = parse_gitea(
        "pull_request", fixture_bytes("gitea/pull_request/closed.payload.json"), None
    )
    assert isinstance(event, IgnoredEvent)
    assert "'closed'" in event.reason


# Pull requests beyond the fixtures


def pull_request(**changes: Any) -> dict[str, Any]:
    doc = fixture("gitea/pull_request/reopened.payload.json")
    doc["action"] = "synchronized"
    for path, value in changes.items():
        node = doc
        *parents, last = path.split("__")
        for key in parents:
            node = node[key]
        node[last] = value
    return doc


def parsed(doc: dict[str, Any], event: str = "pull_request") -> Any:
    return parse_gitea(event, json.dumps(doc).encode(), None)


def test_a_fork_is_told_by_the_head_repository_id() -> None:
    doc = pull_request(pull_request__head__repo_id=999)
    doc["pull_request"]["head"]["repo"]["full_name"] = "someone/test_ci_thing"
    event = parsed(doc)
    assert isinstance(event, PreviewEvent)
    assert event.is_fork
    assert event.head_repo == "someone/test_ci_thing"


def test_a_head_whose_fork_is_gone_is_a_fork() -> None:
    # Gitea sends repo_id -1 and no repo when the head repository was deleted.
    doc = pull_request(pull_request__head__repo_id=-1, pull_request__head__repo=None)
    event = parsed(doc)
    assert isinstance(event, PreviewEvent)
    assert event.is_fork
    assert event.head_repo is None


def test_githubs_synchronize_is_not_giteas_word() -> None:
    event = parsed(pull_request(action="synchronize"))
    assert isinstance(event, IgnoredEvent)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"pull_request__head__sha": "abc"}, "pull_request.head.sha"),
        ({"pull_request__base__ref": "a..b"}, "pull_request.base.ref"),
        ({"pull_request__base__repo_id": "6"}, "pull_request.base.repo_id"),
        ({"pull_request__head__repo_id": True}, "pull_request.head.repo_id"),
        ({"number": 0}, "number"),
        ({"repository__full_name": "../etc"}, "repository.full_name"),
    ],
)
def test_malformed_pull_requests_name_the_field(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(MalformedDelivery) as excinfo:
        parsed(pull_request(**changes))
    assert excinfo.value.reason.startswith(reason)


def test_tag_push_is_a_tag_event() -> None:
    doc = fixture("gitea/push/payload.json")
    doc["ref"] = "refs/tags/v1.0.0"
    event = parsed(doc, "push")
    assert isinstance(event, PushEvent)
    assert event.tag == "v1.0.0"
    assert event.branch is None


def test_zero_after_is_a_deletion() -> None:
    doc = fixture("gitea/push/payload.json")
    doc["after"] = "0" * 40
    assert isinstance(parsed(doc, "push"), IgnoredEvent)


@pytest.mark.parametrize("event", ["create", "delete", "issues", "release", "pull_request_comment"])
def test_other_events_are_ignored(event: str) -> None:
    assert isinstance(parse_gitea(event, b"{}", None), IgnoredEvent)


def test_missing_event_header_is_malformed() -> None:
    with pytest.raises(MalformedDelivery, match="X-Gitea-Event"):
        parse_gitea("", fixture_bytes("gitea/push/payload.json"), None)


def test_github_route_accepts_giteas_synchronized() -> None:
    # A Gitea webhook pointed at /hooks/github: its pull_request payload carries full_name on
    # both sides as GitHub's does, and "synchronized" must still give a preview.
    doc = fixture("gitea/pull_request/reopened.payload.json")
    doc["action"] = "synchronized"
    event = parse_github("pull_request", json.dumps(doc).encode(), JSON, None)
    assert isinstance(event, PreviewEvent)
    assert event.action == "synchronized"
    assert not event.is_fork


# What is signed: the payload, for JSON and form deliveries alike


def test_json_delivery_is_verified_over_the_body() -> None:
    body = fixture_bytes("gitea/push/payload.json")
    event = intake_gitea(body, gitea_headers(body), JSON, [SECRET])
    assert isinstance(event, PushEvent)
    assert event.delivery_id == DELIVERY


def test_form_delivery_is_verified_over_the_decoded_payload() -> None:
    payload = fixture_bytes("gitea/pull_request/reopened.payload.json")
    body = go_form(payload)
    assert body != payload
    assert signed_payload(body, FORM) == payload
    event = intake_gitea(body, gitea_headers(payload, "pull_request"), FORM, [SECRET])
    assert isinstance(event, PreviewEvent)


def test_form_delivery_signed_over_the_body_is_refused() -> None:
    # What a GitHub-style signer would send: the HMAC of the bytes on the wire.
    payload = fixture_bytes("gitea/push/payload.json")
    body = go_form(payload)
    with pytest.raises(SignatureError, match="does not match"):
        intake_gitea(
            body, headers(X_Gitea_Event="push", X_Gitea_Signature=sign(body)), FORM, [SECRET]
        )


def test_form_payload_keeps_bytes_that_are_not_utf8_and_the_parser_refuses_them() -> None:
    payload = b'{"ref": "refs/heads/\xff"}'
    decoded = signed_payload(b"payload=" + quote(payload, safe="").encode(), FORM)
    assert decoded == payload  # never replaced by U+FFFD before the signature check
    with pytest.raises(MalformedDelivery, match="UTF-8"):
        intake_gitea(
            b"payload=" + quote(payload, safe="").encode(),
            headers(X_Gitea_Event="push", X_Gitea_Signature=sign(payload)),
            FORM,
            [SECRET],
        )


@given(st.binary(max_size=300))
def test_any_payload_gitea_encodes_decodes_to_its_bytes(payload: bytes) -> None:
    assert signed_payload(go_form(payload), FORM) == payload


@given(st.text(alphabet="AZaz09-._~+%7Bfe", max_size=60))
def test_an_accepted_form_decodes_as_percent_decoding_does(encoded: str) -> None:
    body = b"payload=" + encoded.encode()
    try:
        decoded = signed_payload(body, FORM)
    except MalformedDelivery:
        return
    assert decoded == unquote_to_bytes(encoded.replace("+", " "))


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"payload",
        b"payload=%7B%ZZ",
        b"payload=%7",
        b"payload=%7B&payload=%7D",
        b"payload=%7B%7D&extra=1",
        b"extra=1&payload=%7B%7D",
        b"payload=%7B%7D;x=1",
        b"Payload=%7B%7D",
        b'payload=%7B"a"%7D',
        b"payload=%7B%7D\n",
    ],
)
def test_loose_form_bodies_are_refused(body: bytes) -> None:
    with pytest.raises(MalformedDelivery, match="one percent-encoded payload field"):
        signed_payload(body, FORM)


@pytest.mark.parametrize("content_type", [None, "text/plain", "multipart/form-data; boundary=x"])
def test_other_content_types_are_415(content_type: str | None) -> None:
    with pytest.raises(UnsupportedContentType) as excinfo:
        signed_payload(b"{}", content_type)
    assert excinfo.value.status == 415


# The signature header


def test_forgejo_header_alone_is_accepted() -> None:
    body = fixture_bytes("gitea/push/payload.json")
    sent = headers(X_Forgejo_Event="push", X_Forgejo_Signature=sign(body))
    assert isinstance(intake_gitea(body, sent, JSON, [SECRET]), PushEvent)


def test_any_configured_secret_may_match() -> None:
    body = b"{}"
    verify_gitea_signature(body, headers(X_Gitea_Signature=sign(body, "new")), ["old", "new"])


@pytest.mark.parametrize(
    ("sent", "secrets", "reason"),
    [
        ({"X_Gitea_Signature": sign(b"{}")}, [], "no Gitea webhook secret is configured"),
        ({}, [SECRET], "header is missing"),
        ({"X_Gitea_Signature": ""}, [SECRET], "has no secret"),
        ({"X_Gitea_Signature": "sha256=" + sign(b"{}")}, [SECRET], "64 hex digits"),
        ({"X_Gitea_Signature": sign(b"{}", "other")}, [SECRET], "does not match"),
        ({"X_Hub_Signature_256": "sha256=" + sign(b"{}")}, [SECRET], "header is missing"),
        (
            {"X_Gitea_Signature": sign(b"{}"), "X_Forgejo_Signature": sign(b"{}", "other")},
            [SECRET],
            "disagree",
        ),
    ],
)
def test_signature_refusals(sent: dict[str, str], secrets: list[str], reason: str) -> None:
    with pytest.raises(SignatureError, match=reason) as excinfo:
        verify_gitea_signature(b"{}", headers(**sent), secrets)
    assert excinfo.value.status == 401


def test_a_repeated_signature_header_is_refused() -> None:
    good = sign(b"{}").encode()
    sent = ReceivedHeaders.from_asgi(
        [(b"x-gitea-signature", b"0" * 64), (b"x-gitea-signature", good)]
    )
    with pytest.raises(SignatureError, match="sent 2 times"):
        verify_gitea_signature(b"{}", sent, [SECRET])
