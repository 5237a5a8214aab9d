from __future__ import annotations

from receiver.intake.headers import ReceivedHeaders


def test_lookups_see_the_first_value_of_each_header() -> None:
    headers = ReceivedHeaders.from_asgi(
        [(b"content-type", b"application/json"), (b"x-a", b"1"), (b"x-a", b"2")]
    )
    assert headers["content-type"] == "application/json"
    assert headers.get("x-a") == "1"
    assert headers.get("x-missing") is None


def test_getlist_keeps_every_value_of_a_repeated_header_in_order() -> None:
    headers = ReceivedHeaders.from_asgi(
        [(b"webhook-id", b"a"), (b"host", b"h"), (b"webhook-id", b"b"), (b"webhook-id", b"c")]
    )
    assert headers.getlist("webhook-id") == ["a", "b", "c"]
    assert headers.getlist("Webhook-Id") == ["a", "b", "c"]
    assert headers.getlist("host") == ["h"]
    assert headers.getlist("x-missing") == []


def test_getlist_of_a_header_sent_once_is_that_value_alone() -> None:
    headers = ReceivedHeaders.from_asgi([(b"x-gitlab-token", b"t")])
    assert headers.getlist("X-Gitlab-Token") == ["t"]
    headers.getlist("x-gitlab-token").append("forged")  # a copy: the headers are unchanged
    assert headers.getlist("x-gitlab-token") == ["t"]


def test_bytes_are_decoded_as_latin_1_so_they_round_trip() -> None:
    headers = ReceivedHeaders.from_asgi([(b"x-token", b"caf\xe9\xff")])
    assert headers["x-token"] == "caf\xe9\xff"
    assert headers["x-token"].encode("latin-1") == b"caf\xe9\xff"


def test_headers_built_from_a_plain_mapping_repeat_nothing() -> None:
    headers = ReceivedHeaders({"x-a": "1"})
    assert headers.getlist("x-a") == ["1"]
