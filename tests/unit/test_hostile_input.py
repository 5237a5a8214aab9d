"""Hostile input against the pure intake core: verification, parsing and routing.

Whatever arrives, the only failures are the typed, documented rejections (400/401/413/415);
never another exception, and no route (so no Job) for anything that did not verify and parse.
"""

from __future__ import annotations

import json
import string
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hooksync.config import parse_config
from hooksync.refs import is_valid_branch_name, is_valid_ref_name
from receiver.intake.errors import RejectedDelivery
from receiver.intake.events import (
    IgnoredEvent,
    PingEvent,
    PreviewEvent,
    PushEvent,
    parse_github,
    parse_gitlab,
)
from receiver.intake.routing import route
from receiver.intake.verification import verify_github_delivery, verify_gitlab_signature
from world.webhooks import github_signature

SECRET = "hostile-test-secret"
CONFIG = parse_config(
    """
jobImage: img
publicURL: https://hooksync.example.com
targets:
  - {name: shop, provider: github, repo: acme/shop, branch: main, namespace: shop,
     serviceAccount: sa}
  - {name: lab, provider: gitlab, repo: acme/lab, branch: main, namespace: lab,
     serviceAccount: sa}
"""
)
ALLOWED_STATUSES = {400, 401, 413, 415}
EVENTS = (PushEvent, PreviewEvent, PingEvent, IgnoredEvent)
# Printable text plus what Git forbids in refs (NUL, "..", "~", "^", ":", "@{", spaces),
# shell metacharacters, non-ASCII and a lone surrogate (not encodable as UTF-8).
NASTY_TEXT = st.lists(
    st.sampled_from([*string.printable, "\x00", "..", "~", "^", ":", "@{", "é", "\udcff"]),
    max_size=40,
).map("".join)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | NASTY_TEXT,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(NASTY_TEXT, children, max_size=5)
    ),
    max_leaves=30,
)


def _sign(body: bytes) -> str:
    return github_signature(body, SECRET)


def _github(event: str, body: bytes, content_type: str | None = "application/json") -> Any:
    """Verify, parse and route like the receiver does; return the routing or the rejection."""
    try:
        verify_github_delivery(body, {"X-Hub-Signature-256": _sign(body)}, [SECRET])
        parsed = parse_github(event, body, content_type, "delivery-1")
    except RejectedDelivery as exc:
        assert exc.status in ALLOWED_STATUSES
        assert exc.reason and "\n" not in exc.reason
        return exc
    assert isinstance(parsed, EVENTS)
    return route(parsed, CONFIG.targets)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.binary(max_size=2048), event=st.sampled_from(["push", "pull_request", "ping", "x"]))
def test_arbitrary_bytes_are_rejected_or_ignored(body: bytes, event: str) -> None:
    result = _github(event, body)
    if not isinstance(result, RejectedDelivery):
        assert result.requests == ()  # random bytes never name acme/shop's main branch


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(doc=json_values, event=st.sampled_from(["push", "pull_request", "ping"]))
def test_arbitrary_json_never_escapes_the_typed_errors(doc: Any, event: str) -> None:
    _github(event, json.dumps(doc).encode())


@settings(max_examples=200)
@given(
    ref=NASTY_TEXT,
    after=st.one_of(NASTY_TEXT, st.just("a" * 40)),
    repo=st.sampled_from(["acme/shop", "ACME/Shop", "acme/shop/../x", "acme/shop; rm -rf /"]),
)
def test_push_payloads_with_hostile_refs_only_route_valid_branches(
    ref: str, after: str, repo: str
) -> None:
    payload = {"ref": ref, "before": "0" * 40, "after": after, "repository": {"full_name": repo},
               "commits": [], "deleted": False}  # fmt: skip
    result = _github("push", json.dumps(payload).encode())
    if isinstance(result, RejectedDelivery):
        return
    for item in result.requests:
        # Whatever routed is a clean branch of the target's own repository.
        assert item.ref.startswith("refs/heads/") and is_valid_ref_name(item.ref)
        assert is_valid_branch_name(item.ref.removeprefix("refs/heads/"))
        assert item.target.repo_matches(repo) and item.ref == "refs/heads/main"


@settings(max_examples=150)
@given(depth=st.integers(min_value=65, max_value=200_000), opener=st.sampled_from(["[", '{"a":']))
def test_absurd_nesting_is_a_400(depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    result = _github("push", (opener * depth + "1" + closer * depth).encode())
    assert isinstance(result, RejectedDelivery) and result.status == 400


@settings(max_examples=200)
@given(
    headers=st.lists(
        st.tuples(
            st.sampled_from(
                ["X-Hub-Signature-256", "x-hub-signature-256", "X-Hub-Signature", "Other"]
            ),
            NASTY_TEXT,
        ),
        max_size=4,
    ),
    body=st.binary(max_size=256),
)
def test_missing_duplicated_or_garbage_signature_headers_are_401(headers, body: bytes) -> None:
    good = _sign(body)
    values = [v for k, v in headers if k.lower() == "x-hub-signature-256"]
    try:
        verify_github_delivery(body, headers, [SECRET])
    except RejectedDelivery as exc:
        assert exc.status == 401
        return
    # Only exactly one correct header may pass.
    assert values == [good]


@settings(max_examples=200)
@given(
    body=st.binary(max_size=512),
    headers=st.dictionaries(
        st.sampled_from(
            [
                "webhook-id",
                "webhook-timestamp",
                "webhook-signature",
                "X-Gitlab-Token",
                "X-Gitlab-Event",
            ]
        ),
        NASTY_TEXT,
        max_size=5,
    ),
)
def test_gitlab_garbage_is_refused_before_parsing(body: bytes, headers: dict[str, str]) -> None:
    try:
        verify_gitlab_signature(
            body, headers, ["whsec_" + "A" * 32], ["right-token"], 1_700_000_000
        )
    except RejectedDelivery as exc:
        assert exc.status == 401
        return
    assert headers.get("X-Gitlab-Token") == "right-token"
    try:
        event = parse_gitlab(body, headers.get("X-Gitlab-Event"), None)
    except RejectedDelivery as exc:
        assert exc.status in ALLOWED_STATUSES
        return
    assert isinstance(event, EVENTS)


@settings(max_examples=100)
@given(payload=st.dictionaries(st.sampled_from(["payload", "other", ""]), NASTY_TEXT, max_size=3))
def test_form_encoded_garbage(payload: dict[str, str]) -> None:
    from urllib.parse import urlencode

    body = urlencode(payload, encoding="utf-8", errors="surrogatepass").encode()
    _github("push", body, "application/x-www-form-urlencoded")


@settings(max_examples=100)
@given(content_type=NASTY_TEXT)
def test_any_content_type_is_handled(content_type: str) -> None:
    _github("push", b'{"ref": "refs/heads/main"}', content_type)
