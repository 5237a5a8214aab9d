"""What the receiver says when the API server does not answer: one line, never a traceback."""

from __future__ import annotations

from kubernetes.client.exceptions import ApiException

from receiver.jobapi import _unavailable


def test_a_transport_error_wrapped_as_status_0_is_one_line() -> None:
    exc = ApiException(status=0, reason="SSLError\nEOF occurred in violation of protocol")
    reason = str(_unavailable(exc))
    assert reason == "API server unreachable: SSLError"


def test_an_answered_status_keeps_its_reason_on_one_line() -> None:
    reason = str(_unavailable(ApiException(status=500, reason="Internal\nServer Error")))
    assert reason == "API server answered 500 Internal Server Error"
    forbidden = str(_unavailable(ApiException(status=403, reason="Forbidden")))
    assert forbidden.startswith("API server answered 403 Forbidden (the receiver's Role")
