"""Signature and token checks for GitHub and GitLab deliveries."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from starlette.datastructures import Headers

from receiver.intake.errors import RejectedDelivery, SignatureError
from receiver.intake.headers import ReceivedHeaders
from receiver.intake.verification import (
    header_values,
    signing_key_bytes,
    verify_github_delivery,
    verify_github_signature,
    verify_gitlab_signature,
)
from world.webhooks import github_signature, standard_webhook_signature

# GitHub's documented example ("Validating webhook deliveries").
GITHUB_SECRET = "It's a Secret to Everybody"
GITHUB_BODY = b"Hello, World!"
GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

# The Standard Webhooks specification's published test vector.
SW_KEY = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SW_TIMESTAMP = 1614265330
SW_BODY = b'{"test": 2432232314}'
SW_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

OTHER_KEY = "whsec_" + base64.b64encode(b"another-signing-key-0123456789ab").decode()


def sw_headers(signature: str = SW_SIGNATURE, timestamp: int = SW_TIMESTAMP) -> dict[str, str]:
    return {
        "webhook-id": SW_ID,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def reason(excinfo: pytest.ExceptionInfo[RejectedDelivery]) -> str:
    return excinfo.value.reason


# GitHub


def test_github_documented_vector_passes() -> None:
    verify_github_signature(GITHUB_BODY, GITHUB_SIGNATURE, [GITHUB_SECRET])


def test_github_upper_case_hex_is_the_same_signature() -> None:
    upper = "sha256=" + GITHUB_SIGNATURE.removeprefix("sha256=").upper()
    verify_github_signature(GITHUB_BODY, upper, [GITHUB_SECRET])


@pytest.mark.parametrize(
    "secrets",
    [["old-secret", GITHUB_SECRET], [GITHUB_SECRET, "new-secret"], ["", GITHUB_SECRET]],
)
def test_github_any_configured_secret_may_match_during_rotation(secrets: list[str]) -> None:
    verify_github_signature(GITHUB_BODY, GITHUB_SIGNATURE, secrets)


def test_github_wrong_secret_is_401() -> None:
    with pytest.raises(SignatureError) as excinfo:
        verify_github_signature(GITHUB_BODY, GITHUB_SIGNATURE, ["not the secret"])
    assert excinfo.value.status == 401
    assert "does not match" in reason(excinfo)


def test_github_changed_body_is_refused() -> None:
    with pytest.raises(SignatureError):
        verify_github_signature(b"Hello, World?", GITHUB_SIGNATURE, [GITHUB_SECRET])


@pytest.mark.parametrize("header", [None, "", "   "])
def test_github_missing_signature_is_refused(header: str | None) -> None:
    with pytest.raises(SignatureError) as excinfo:
        verify_github_signature(GITHUB_BODY, header, [GITHUB_SECRET])
    assert "missing" in reason(excinfo)


@pytest.mark.parametrize(
    "header",
    [
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "sha256=757107ea",
        "sha256=zz7107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "sha1=" + hmac.new(GITHUB_SECRET.encode(), GITHUB_BODY, hashlib.sha1).hexdigest(),
    ],
)
def test_github_malformed_or_sha1_value_is_refused(header: str) -> None:
    with pytest.raises(SignatureError) as excinfo:
        verify_github_signature(GITHUB_BODY, header, [GITHUB_SECRET])
    assert excinfo.value.status == 401


def test_github_folded_duplicate_value_is_refused() -> None:
    folded = f"{GITHUB_SIGNATURE}, {GITHUB_SIGNATURE}"
    with pytest.raises(SignatureError) as excinfo:
        verify_github_signature(GITHUB_BODY, folded, [GITHUB_SECRET])
    assert "more than one" in reason(excinfo)


@pytest.mark.parametrize("secrets", [[], [""]])
def test_github_without_configured_secret_refuses_even_a_matching_signature(
    secrets: list[str],
) -> None:
    # HMAC under an empty key is something anyone can compute.
    with pytest.raises(SignatureError) as excinfo:
        verify_github_signature(GITHUB_BODY, github_signature(GITHUB_BODY, ""), secrets)
    assert "no GitHub webhook secret" in reason(excinfo)


def test_github_delivery_reads_the_header_case_insensitively() -> None:
    verify_github_delivery(GITHUB_BODY, {"x-hub-signature-256": GITHUB_SIGNATURE}, [GITHUB_SECRET])
    verify_github_delivery(
        GITHUB_BODY, [("X-HUB-SIGNATURE-256", GITHUB_SIGNATURE)], [GITHUB_SECRET]
    )


def test_github_delivery_with_only_sha1_signature_is_refused() -> None:
    sha1 = "sha1=" + hmac.new(GITHUB_SECRET.encode(), GITHUB_BODY, hashlib.sha1).hexdigest()
    with pytest.raises(SignatureError) as excinfo:
        verify_github_delivery(GITHUB_BODY, {"X-Hub-Signature": sha1}, [GITHUB_SECRET])
    assert "SHA-1" in reason(excinfo)


@pytest.mark.parametrize(
    "second", [GITHUB_SIGNATURE, github_signature(GITHUB_BODY, "attacker guess")]
)
def test_github_delivery_with_repeated_signature_header_is_refused(second: str) -> None:
    headers = Headers(
        raw=[
            (b"x-hub-signature-256", GITHUB_SIGNATURE.encode()),
            (b"x-hub-signature-256", second.encode()),
        ]
    )
    with pytest.raises(SignatureError) as excinfo:
        verify_github_delivery(GITHUB_BODY, headers, [GITHUB_SECRET])
    assert "sent 2 times" in reason(excinfo)


def test_repeated_signature_header_is_refused_in_received_headers_too() -> None:
    headers = ReceivedHeaders.from_asgi(
        [
            (b"x-hub-signature-256", GITHUB_SIGNATURE.encode()),
            (b"content-type", b"application/json"),
            (b"x-hub-signature-256", GITHUB_SIGNATURE.encode()),
        ]
    )
    with pytest.raises(SignatureError) as excinfo:
        verify_github_delivery(GITHUB_BODY, headers, [GITHUB_SECRET])
    assert "sent 2 times" in reason(excinfo)
    verify_github_delivery(
        GITHUB_BODY,
        ReceivedHeaders.from_asgi([(b"x-hub-signature-256", GITHUB_SIGNATURE.encode())]),
        [GITHUB_SECRET],
    )


def test_header_values_keeps_repeats_and_ignores_case() -> None:
    pairs = [("Webhook-Id", "a"), ("content-type", "x"), ("WEBHOOK-ID", "b")]
    assert header_values(pairs, "webhook-id") == ["a", "b"]
    assert header_values({"Content-Type": "x"}, "content-type") == ["x"]
    assert header_values({}, "content-type") == []


# GitLab: Standard Webhooks signatures


def test_standard_webhooks_vector_passes() -> None:
    verify_gitlab_signature(SW_BODY, sw_headers(), [SW_KEY], [], now=SW_TIMESTAMP)


def test_standard_webhooks_headers_are_case_insensitive() -> None:
    headers = {key.upper(): value for key, value in sw_headers().items()}
    verify_gitlab_signature(SW_BODY, headers, [SW_KEY], [], now=SW_TIMESTAMP)


def test_standard_webhooks_key_rotation() -> None:
    verify_gitlab_signature(SW_BODY, sw_headers(), [OTHER_KEY, SW_KEY], [], now=SW_TIMESTAMP)


def test_standard_webhooks_wrong_key_is_refused() -> None:
    with pytest.raises(SignatureError) as excinfo:
        verify_gitlab_signature(SW_BODY, sw_headers(), [OTHER_KEY], [], now=SW_TIMESTAMP)
    assert excinfo.value.status == 401
    assert "does not match" in reason(excinfo)


def test_standard_webhooks_changed_body_is_refused() -> None:
    with pytest.raises(SignatureError):
        verify_gitlab_signature(b'{"test": 1}', sw_headers(), [SW_KEY], [], now=SW_TIMESTAMP)


@pytest.mark.parametrize(
    "signature",
    [
        f"v1,bm90IHRoaXMgb25l {SW_SIGNATURE}",
        f"v1a,c2lnbmVkIGRpZmZlcmVudGx5 {SW_SIGNATURE}",
        f"{SW_SIGNATURE} v1,not-base64!!",
        f"v1,{base64.b64encode(b'x' * 32).decode()}  {SW_SIGNATURE}",
    ],
)
def test_standard_webhooks_any_of_several_signatures_may_match(signature: str) -> None:
    verify_gitlab_signature(SW_BODY, sw_headers(signature), [SW_KEY], [], now=SW_TIMESTAMP)


def test_standard_webhooks_signature_under_the_second_key_matches() -> None:
    signature = standard_webhook_signature(SW_ID, SW_TIMESTAMP, SW_BODY, OTHER_KEY)
    headers = sw_headers(f"{SW_SIGNATURE.replace('g0h', 'AAA')} {signature}")
    verify_gitlab_signature(SW_BODY, headers, [SW_KEY, OTHER_KEY], [], now=SW_TIMESTAMP)


@pytest.mark.parametrize(
    "signature", ["v2,abcd", "", "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="]
)
def test_standard_webhooks_without_a_v1_entry_is_refused(signature: str) -> None:
    with pytest.raises(SignatureError) as excinfo:
        verify_gitlab_signature(SW_BODY, sw_headers(signature), [SW_KEY], [], now=SW_TIMESTAMP)
    assert "v1" in reason(excinfo)


@pytest.mark.parametrize("skew", [-300, -1, 0, 1, 300])
def test_standard_webhooks_accepts_five_minutes_either_way(skew: int) -> None:
    verify_gitlab_signature(SW_BODY, sw_headers(), [SW_KEY], [], now=SW_TIMESTAMP + skew)


def test_standard_webhooks_stale_signature_is_refused() -> None:
    with pytest.raises(SignatureError) as excinfo:
        verify_gitlab_signature(SW_BODY, sw_headers(), [SW_KEY], [], now=SW_TIMESTAMP + 301)
    assert "old" in reason(excinfo)


def test_standard_webhooks_signature_from_the_future_is_refused() -> None:
    with pytest.raises(SignatureError) as excinfo:
        verify_gitlab_signature(SW_BODY, sw_headers(), [SW_KEY], [], now=SW_TIMESTAMP - 301)
    assert "future" in reason(excinfo)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp"])
def test_standard_webhooks_missing_id_or_timestamp_is_refused(missing: str) -> None:
    headers = sw_headers()
    del headers[missing]
    with pytest.raises(SignatureError) as excinfo:
        verify_gitlab_signature(SW_BODY, headers, [SW_KEY], [], now=SW_TIMESTAMP)
    assert missing in reason(excinfo)


@pytest.mark.parametrize("timestamp", ["1614265330.5", "-1614265330", "soon", "0x60377a72"])
def test_standard_webhooks_timestamp_must_be_whole_seconds(timestamp: str) -> None:
    headers = sw_headers() | {"webhook-timestamp": timestamp}
    with pytest.raises(SignatureError):
        verify_gitlab_signature(SW_BODY, headers, [SW_KEY], [], now=SW_TIMESTAMP)


def test_standard_webhooks_repeated_signature_header_is_refused() -> None:
    pairs = [*sw_headers().items(), ("Webhook-Signature", SW_SIGNATURE)]
    with pytest.raises(SignatureError) as excinfo:
        verify_gitlab_signature(SW_BODY, pairs, [SW_KEY], [], now=SW_TIMESTAMP)
    assert "sent 2 times" in reason(excinfo)


def test_wrong_signature_is_refused_even_with_the_right_token() -> None:
    headers = sw_headers("v1,AAAA") | {"X-Gitlab-Token": "token"}
    with pytest.raises(SignatureError):
        verify_gitlab_signature(SW_BODY, headers, [SW_KEY], ["token"], now=SW_TIMESTAMP)


def test_signing_key_without_signature_header_falls_back_to_the_token() -> None:
    verify_gitlab_signature(
        SW_BODY, {"X-Gitlab-Token": "token"}, [SW_KEY], ["token"], now=SW_TIMESTAMP
    )


def test_signing_key_only_and_no_signature_header_is_refused() -> None:
    with pytest.raises(SignatureError) as excinfo:
        verify_gitlab_signature(
            SW_BODY, {"X-Gitlab-Token": "token"}, [SW_KEY], [], now=SW_TIMESTAMP
        )
    assert "webhook-signature header is missing" in reason(excinfo)


def test_signature_header_without_configured_keys_uses_the_token() -> None:
    headers = sw_headers() | {"X-Gitlab-Token": "token"}
    verify_gitlab_signature(SW_BODY, headers, [], ["token"], now=SW_TIMESTAMP)


def test_signing_key_bytes_decodes_after_the_prefix() -> None:
    assert signing_key_bytes(OTHER_KEY) == b"another-signing-key-0123456789ab"


@pytest.mark.parametrize("key", ["whsec_not base64!", "whsec_", "whsec_===="])
def test_signing_key_bytes_rejects_undecodable_keys(key: str) -> None:
    with pytest.raises(ValueError, match="signing token"):
        signing_key_bytes(key)


# GitLab: X-Gitlab-Token


@pytest.mark.parametrize("tokens", [["token"], ["old", "token"], ["", "token"]])
def test_gitlab_token_matches_any_configured_token(tokens: list[str]) -> None:
    verify_gitlab_signature(b"{}", {"x-gitlab-token": "token"}, [], tokens, now=0)


def test_gitlab_wrong_token_is_refused() -> None:
    with pytest.raises(SignatureError) as excinfo:
        verify_gitlab_signature(b"{}", {"X-Gitlab-Token": "guess"}, [], ["token"], now=0)
    assert excinfo.value.status == 401


def test_gitlab_missing_token_is_refused() -> None:
    with pytest.raises(SignatureError) as excinfo:
        verify_gitlab_signature(b"{}", {}, [], ["token"], now=0)
    assert "X-Gitlab-Token header is missing" in reason(excinfo)


def test_gitlab_repeated_token_header_is_refused() -> None:
    pairs = [("X-Gitlab-Token", "guess"), ("x-gitlab-token", "token")]
    with pytest.raises(SignatureError) as excinfo:
        verify_gitlab_signature(b"{}", pairs, [], ["token"], now=0)
    assert "sent 2 times" in reason(excinfo)


def test_gitlab_non_ascii_token_compares_as_sent() -> None:
    # An ASGI server hands over header bytes decoded as latin-1.
    sent = "tökén".encode().decode("latin-1")
    verify_gitlab_signature(b"{}", {"X-Gitlab-Token": sent}, [], ["tökén"], now=0)


@pytest.mark.parametrize("tokens", [[], [""]])
def test_gitlab_without_any_credential_is_refused(tokens: list[str]) -> None:
    with pytest.raises(SignatureError) as excinfo:
        verify_gitlab_signature(b"{}", {"X-Gitlab-Token": ""}, [], tokens, now=0)
    assert "no GitLab webhook token or signing token is configured" in reason(excinfo)


def test_gitlab_with_only_undecodable_keys_is_refused() -> None:
    with pytest.raises(SignatureError):
        verify_gitlab_signature(SW_BODY, sw_headers(), ["whsec_!!"], [], now=SW_TIMESTAMP)
