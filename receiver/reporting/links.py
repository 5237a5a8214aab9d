"""Signed, expiring links to run pages (itsdangerous), so a status's target_url reveals a run
only to whoever holds the link, and only for a while.

Keys rotate like webhook secrets: HOOKSYNC_LINK_KEY (or its _FILE) lists one key a line, the
first signs every new link and any of them opens one. Dropping a key from the list closes the
links it signed.
"""

from __future__ import annotations

from collections.abc import Sequence

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

SALT = "hooksync.run-page"


class LinkError(Exception):
    """The signature is missing, altered, expired, or made with a key not configured."""


def _serializer(keys: str | Sequence[str]) -> URLSafeTimedSerializer:
    # One key may come as a plain string, which must not be read as a list of characters.
    listed = [keys] if isinstance(keys, str) else list(keys)
    # itsdangerous signs with the last key of its list and accepts any of them.
    return URLSafeTimedSerializer(listed[::-1], salt=SALT)


def sign_run(key: str, job: str) -> str:
    """A signature for `job`'s run page, made with `key` now."""
    return str(_serializer([key]).dumps(job))


def run_url(public_url: str, key: str, job: str) -> str:
    return f"{public_url.rstrip('/')}/runs/{job}?sig={sign_run(key, job)}"


def run_link(public_url: str, keys: Sequence[str], job: str) -> str | None:
    """The signed URL of `job`'s run page, signed with the first key; None without a key."""
    return run_url(public_url, keys[0], job) if keys else None


def check_run(keys: str | Sequence[str], job: str, signature: str, max_age_seconds: int) -> None:
    """Raise LinkError unless `signature` was made with one of `keys` (or the one key) for
    `job` within `max_age_seconds`."""
    if not keys:
        raise LinkError("no link key configured")
    try:
        signed = _serializer(keys).loads(signature, max_age=max_age_seconds)
    except SignatureExpired:
        raise LinkError("link expired") from None
    except BadSignature:
        raise LinkError("bad signature") from None
    if signed != job:
        raise LinkError("signature is for another run")
