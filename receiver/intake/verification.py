"""Proof that a delivery comes from the Git host: HMAC signatures and shared tokens, checked on
the raw body before anything parses it. Pure: headers, body, secrets and the time come in.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence

from receiver.intake.errors import SignatureError
from receiver.intake.headers import ReceivedHeaders

# ReceivedHeaders, which keeps every value of a repeated header; a Mapping (a dict, or
# Starlette's Headers, whose items() keeps repeats); or the raw (name, value) pairs.
HeaderSource = ReceivedHeaders | Mapping[str, str] | Iterable[tuple[str, str]]

GITHUB_SIGNATURE_HEADER = "X-Hub-Signature-256"
GITHUB_SHA1_HEADER = "X-Hub-Signature"
GITLAB_TOKEN_HEADER = "X-Gitlab-Token"  # noqa: S105 - a header name, not a secret
WEBHOOK_ID_HEADER = "webhook-id"
WEBHOOK_TIMESTAMP_HEADER = "webhook-timestamp"
WEBHOOK_SIGNATURE_HEADER = "webhook-signature"

# Standard Webhooks: a signature older or newer than this is a replay or a broken clock.
TIMESTAMP_TOLERANCE_SECONDS = 5 * 60
SIGNING_KEY_PREFIX = "whsec_"

_GITHUB_SIGNATURE = re.compile(r"sha256=([0-9a-fA-F]{64})")
_TIMESTAMP = re.compile(r"[0-9]{1,15}")


def header_values(headers: HeaderSource, name: str) -> list[str]:
    """Every value of header `name`, matched case-insensitively, in the order sent."""
    if isinstance(headers, ReceivedHeaders):
        return headers.getlist(name)
    pairs: Iterable[tuple[str, str]] = headers.items() if isinstance(headers, Mapping) else headers
    wanted = name.lower()
    return [value for key, value in pairs if key.lower() == wanted]


def verify_github_signature(body: bytes, header: str | None, secrets: Sequence[str]) -> None:
    """Check `X-Hub-Signature-256` (``sha256=`` + hex HMAC-SHA256 of the raw body).

    Any of `secrets` may match, so a secret can be rotated by configuring old and new at once.
    Raises SignatureError when no secret is configured, the header is missing or malformed,
    or no secret produces it.
    """
    usable = [secret for secret in secrets if secret]
    if not usable:
        # Accepting unsigned deliveries would let anyone start Jobs; refuse instead.
        raise SignatureError(
            "no GitHub webhook secret is configured (HOOKSYNC_GITHUB_WEBHOOK_SECRET); "
            "refusing unsigned deliveries"
        )
    if header is None or not header.strip():
        raise SignatureError(
            f"{GITHUB_SIGNATURE_HEADER} header is missing; set a secret on the GitHub webhook"
        )
    value = header.strip()
    if "," in value:
        # A proxy folds a repeated header into one comma-separated value.
        raise SignatureError(f"{GITHUB_SIGNATURE_HEADER} holds more than one value")
    match = _GITHUB_SIGNATURE.fullmatch(value)
    if match is None:
        raise SignatureError(
            f"{GITHUB_SIGNATURE_HEADER} is not 'sha256=' followed by 64 hex digits"
        )
    provided = bytes.fromhex(match.group(1))
    matches = [
        hmac.compare_digest(provided, _hmac_sha256(secret.encode("utf-8"), body))
        for secret in usable
    ]
    if not any(matches):
        raise SignatureError(
            f"{GITHUB_SIGNATURE_HEADER} does not match the body under any configured secret"
        )


def verify_github_delivery(body: bytes, headers: HeaderSource, secrets: Sequence[str]) -> None:
    """Find the signature header in `headers` and check it with `verify_github_signature`.

    A repeated `X-Hub-Signature-256` is refused (401) rather than trying each copy: an
    attacker who can add a header must not get a second guess. The SHA-1 `X-Hub-Signature`
    alone is refused too; SHA-1 HMAC is not accepted as proof.
    """
    values = header_values(headers, GITHUB_SIGNATURE_HEADER)
    if len(values) > 1:
        raise SignatureError(f"{GITHUB_SIGNATURE_HEADER} was sent {len(values)} times")
    if not values and header_values(headers, GITHUB_SHA1_HEADER):
        raise SignatureError(
            f"only the SHA-1 {GITHUB_SHA1_HEADER} was sent; hooksync needs "
            f"{GITHUB_SIGNATURE_HEADER}"
        )
    verify_github_signature(body, values[0] if values else None, secrets)


def verify_gitlab_signature(
    body: bytes,
    headers: HeaderSource,
    signing_keys: Sequence[str],
    tokens: Sequence[str],
    now: float,
) -> None:
    """Check a GitLab delivery: a Standard Webhooks signature, else the X-Gitlab-Token.

    When `webhook-signature` is present and signing keys (``whsec_...``) are configured, the
    signature decides alone: a wrong one is refused even if the token is right. Otherwise the
    `X-Gitlab-Token` is compared with each configured token. `now` is Unix seconds; signatures
    more than five minutes away from it, either way, are refused. A repeated webhook-* or
    token header is refused (401) rather than guessed at.
    """
    keys = _usable_signing_keys(signing_keys)
    usable_tokens = [token for token in tokens if token]
    signature = _one_header(headers, WEBHOOK_SIGNATURE_HEADER)
    if signature is not None and keys:
        _verify_standard_webhook(body, headers, signature, keys, now)
        return
    if usable_tokens:
        _verify_gitlab_token(headers, usable_tokens)
        return
    if keys:
        raise SignatureError(
            f"{WEBHOOK_SIGNATURE_HEADER} header is missing; set the signing token on the "
            "GitLab webhook"
        )
    raise SignatureError(
        "no GitLab webhook token or signing token is configured (HOOKSYNC_GITLAB_WEBHOOK_TOKEN, "
        "HOOKSYNC_GITLAB_SIGNING_TOKEN); refusing unauthenticated deliveries"
    )


def signing_key_bytes(key: str) -> bytes:
    """The HMAC key inside a Standard Webhooks secret: base64 after the ``whsec_`` prefix.

    Raises ValueError for a key that does not decode, so a receiver can refuse a bad
    configuration at start-up instead of refusing every delivery later.
    """
    encoded = key.strip().removeprefix(SIGNING_KEY_PREFIX)
    try:
        decoded = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            "the GitLab signing token is not 'whsec_' followed by base64; copy it again from "
            "the webhook's settings"
        ) from None
    if not decoded:
        raise ValueError("the GitLab signing token is empty after 'whsec_'")
    return decoded


def _verify_standard_webhook(
    body: bytes, headers: HeaderSource, signature: str, keys: Sequence[bytes], now: float
) -> None:
    message_id = _one_header(headers, WEBHOOK_ID_HEADER)
    timestamp = _one_header(headers, WEBHOOK_TIMESTAMP_HEADER)
    if not message_id:
        raise SignatureError(f"{WEBHOOK_ID_HEADER} header is missing; it is part of what is signed")
    if not timestamp:
        raise SignatureError(
            f"{WEBHOOK_TIMESTAMP_HEADER} header is missing; it is part of what is signed"
        )
    if not _TIMESTAMP.fullmatch(timestamp):
        raise SignatureError(f"{WEBHOOK_TIMESTAMP_HEADER} is not whole Unix seconds")
    age = now - int(timestamp)
    if age > TIMESTAMP_TOLERANCE_SECONDS:
        raise SignatureError(
            f"{WEBHOOK_TIMESTAMP_HEADER} is {int(age)} s old; signatures older than "
            f"{TIMESTAMP_TOLERANCE_SECONDS} s are refused as replays"
        )
    if -age > TIMESTAMP_TOLERANCE_SECONDS:
        raise SignatureError(
            f"{WEBHOOK_TIMESTAMP_HEADER} is {int(-age)} s in the future; check the clocks"
        )
    candidates = _v1_signatures(signature)
    if not candidates:
        raise SignatureError(f"{WEBHOOK_SIGNATURE_HEADER} holds no 'v1,<base64>' signature")
    signed = _header_bytes(message_id) + b"." + _header_bytes(timestamp) + b"." + body
    expected = [_hmac_sha256(key, signed) for key in keys]
    # Compare every pair so the time taken does not tell which entry or key came closest.
    matches = [hmac.compare_digest(c, e) for c in candidates for e in expected]
    if not any(matches):
        raise SignatureError(
            f"{WEBHOOK_SIGNATURE_HEADER} does not match the body under any configured signing token"
        )


def _verify_gitlab_token(headers: HeaderSource, tokens: Sequence[str]) -> None:
    provided = _one_header(headers, GITLAB_TOKEN_HEADER)
    if provided is None:
        raise SignatureError(
            f"{GITLAB_TOKEN_HEADER} header is missing; set the secret token on the GitLab webhook"
        )
    raw = _header_bytes(provided)
    matches = [hmac.compare_digest(raw, token.encode("utf-8")) for token in tokens]
    if not any(matches):
        raise SignatureError(f"{GITLAB_TOKEN_HEADER} does not match any configured token")


def _v1_signatures(header: str) -> list[bytes]:
    """The decoded `v1` entries of a space-separated Standard Webhooks signature list."""
    found: list[bytes] = []
    for entry in header.split():
        version, _, encoded = entry.partition(",")
        if version != "v1":
            continue  # other schemes (v1a is asymmetric) are not ours to check
        try:
            found.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    return found


def _usable_signing_keys(signing_keys: Sequence[str]) -> list[bytes]:
    keys: list[bytes] = []
    for key in signing_keys:
        if not key:
            continue
        try:
            keys.append(signing_key_bytes(key))
        except ValueError:
            # An undecodable key cannot match anything; start-up validation reports it.
            continue
    return keys


def _one_header(headers: HeaderSource, name: str) -> str | None:
    values = header_values(headers, name)
    if len(values) > 1:
        raise SignatureError(f"{name} was sent {len(values)} times")
    return values[0].strip() if values else None


def _header_bytes(value: str) -> bytes:
    # ASGI servers decode header bytes as latin-1; encoding back gives the bytes as sent.
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        # Not from an HTTP header; lone surrogates must still compare, not raise.
        return value.encode("utf-8", "surrogatepass")


def _hmac_sha256(key: bytes, message: bytes) -> bytes:
    return hmac.digest(key, message, "sha256")  # one call into OpenSSL, no HMAC object
