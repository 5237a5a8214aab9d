"""Signed, expiring run-page links: only the holder of a fresh link for that run gets in."""

from __future__ import annotations

import string
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from receiver.reporting.links import LinkError, check_run, run_link, run_url, sign_run

KEY = "4f1c0c2a9e6b4d7f8a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f"
JOB = "hooksync-shop-apply-6113728"
TTL = 7 * 24 * 3600


def test_a_fresh_link_for_the_run_is_accepted() -> None:
    check_run(KEY, JOB, sign_run(KEY, JOB), TTL)


def test_run_url_points_at_the_run_page_with_its_signature() -> None:
    url = run_url("https://hooksync.example.com/", KEY, JOB)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        f"https://hooksync.example.com/runs/{JOB}"
    )
    (signature,) = parse_qs(parts.query)["sig"]
    check_run(KEY, JOB, signature, TTL)


def test_a_link_signed_long_ago_has_expired(monkeypatch: pytest.MonkeyPatch) -> None:
    now = time.time()
    with monkeypatch.context() as past:
        past.setattr(time, "time", lambda: now - 8 * 24 * 3600)
        signature = sign_run(KEY, JOB)
    with pytest.raises(LinkError, match="expired"):
        check_run(KEY, JOB, signature, TTL)
    # The same signature was good while it was young: only its age is wrong.
    with monkeypatch.context() as then:
        then.setattr(time, "time", lambda: now - 8 * 24 * 3600 + 60)
        check_run(KEY, JOB, signature, TTL)


def test_a_link_expires_once_older_than_max_age() -> None:
    signature = sign_run(KEY, JOB)
    time.sleep(1.1)
    with pytest.raises(LinkError, match="expired"):
        check_run(KEY, JOB, signature, 0)


URLSAFE = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"


def _flip(text: str, index: int) -> str:
    """Change one character's most significant bit, so the decoded bytes differ too (the low
    bits of a final base64 character can be padding that decoding ignores)."""
    char = text[index]
    replacement = URLSAFE[(URLSAFE.index(char) + 32) % 64] if char in URLSAFE else "A"
    return text[:index] + replacement + text[index + 1 :]


@pytest.mark.parametrize("where", [0, 5, -1, -10])
def test_a_tampered_signature_is_refused(where: int) -> None:
    signature = sign_run(KEY, JOB)
    index = where % len(signature)
    with pytest.raises(LinkError):
        check_run(KEY, JOB, _flip(signature, index), TTL)


@pytest.mark.parametrize("signature", ["", "garbage", "a.b.c", "..", JOB])
def test_a_missing_or_malformed_signature_is_refused(signature: str) -> None:
    with pytest.raises(LinkError):
        check_run(KEY, JOB, signature, TTL)


def test_a_signature_for_another_run_is_refused() -> None:
    other = sign_run(KEY, "hooksync-shop-apply-ec26c3e")
    with pytest.raises(LinkError, match="another run"):
        check_run(KEY, JOB, other, TTL)


def test_rotating_the_key_invalidates_old_links() -> None:
    old = sign_run(KEY, JOB)
    with pytest.raises(LinkError, match="bad signature"):
        check_run(KEY[::-1], JOB, old, TTL)


NEW_KEY = "b" * 64


def test_a_link_signed_with_any_configured_key_opens() -> None:
    old = sign_run(KEY, JOB)
    check_run([NEW_KEY, KEY], JOB, old, TTL)
    check_run([NEW_KEY, KEY], JOB, sign_run(NEW_KEY, JOB), TTL)
    with pytest.raises(LinkError, match="bad signature"):
        check_run([NEW_KEY], JOB, old, TTL)


def test_new_links_are_signed_with_the_first_key() -> None:
    url = run_link("https://hooksync.example.com", [NEW_KEY, KEY], JOB)
    assert url is not None
    (signature,) = parse_qs(urlsplit(url).query)["sig"]
    check_run([NEW_KEY], JOB, signature, TTL)
    with pytest.raises(LinkError, match="bad signature"):
        check_run([KEY], JOB, signature, TTL)


def test_without_a_key_there_is_no_link_and_nothing_opens() -> None:
    assert run_link("https://hooksync.example.com", [], JOB) is None
    with pytest.raises(LinkError):
        check_run([], JOB, sign_run(KEY, JOB), TTL)
