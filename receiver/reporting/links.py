"""Signed, expiring links to run pages (itsdangerous), so a status's target_url reveals a run
only to whoever holds the link, and only for a while. Rotating the key invalidates old links."""

from __future__ import annotations

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

SALT = "hooksync.run-page"


class LinkError(Exception):
    """The signature is missing, altered, expired, or made with another key."""


def _serializer(key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(key, salt=SALT)


def sign_run(key: str, job: str) -> str:
    return _serializer(key).dumps(job)


def run_url(public_url: str, key: str, job: str) -> str:
    return f"{public_url.rstrip('/')}/runs/{job}?sig={sign_run(key, job)}"


def check_run(key: str, job: str, signature: str, max_age_seconds: int) -> None:
    """Raise LinkError unless `signature` was made with `key` for `job` within `max_age`."""
    try:
        signed = _serializer(key).loads(signature, max_age=max_age_seconds)
    except SignatureExpired:
        raise LinkError("link expired") from None
    except BadSignature:
        raise LinkError("bad signature") from None
    if signed != job:
        raise LinkError("signature is for another run")
