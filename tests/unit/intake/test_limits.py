"""The pure rules for hostile HTTP clients: the shared body budget, each phase's deadline, the
header tally and the raw refusal; no sockets, no clock."""

from __future__ import annotations

import io
import json
from http.client import HTTPResponse
from typing import Any

import pytest

from hooksync.config import HttpLimits
from receiver.intake.limits import (
    BODY_ALLOWANCE_BYTES,
    BodyBudget,
    HeadTally,
    Phase,
    Timeouts,
    cutoff,
    raw_answer,
)

KIB = 1024


# --- the body budget --------------------------------------------------------------------------


def test_bytes_within_the_allowance_are_not_charged_to_the_budget() -> None:
    budget = BodyBudget(total=100 * KIB, allowance=64 * KIB)
    hold = budget.hold()
    assert hold.take(40 * KIB) and hold.take(24 * KIB)
    assert budget.used == 0
    assert hold.take(1)
    assert budget.used == 1


def test_a_chunk_that_crosses_the_allowance_is_charged_only_beyond_it() -> None:
    budget = BodyBudget(total=100 * KIB, allowance=64 * KIB)
    hold = budget.hold()
    assert hold.take(60 * KIB)
    assert hold.take(10 * KIB)
    assert budget.used == 6 * KIB


def test_a_chunk_the_budget_cannot_hold_is_refused_and_charges_nothing() -> None:
    budget = BodyBudget(total=10 * KIB, allowance=0)
    first, second = budget.hold(), budget.hold()
    assert first.take(8 * KIB)
    assert not second.take(3 * KIB)
    assert (budget.used, second.received, second.charged) == (8 * KIB, 0, 0)
    assert second.take(2 * KIB)  # what still fits is taken
    assert budget.free == 0


def test_bodies_held_at_once_never_pass_the_total() -> None:
    budget = BodyBudget(total=1000 * KIB, allowance=16 * KIB)
    holds = [budget.hold() for _ in range(50)]
    taken = 0
    for _ in range(40):
        for hold in holds:
            if hold.take(7 * KIB):
                taken += 7 * KIB
    assert budget.used <= budget.total
    assert taken == budget.used + 50 * 16 * KIB  # each request's allowance on top


def test_release_gives_everything_back_once() -> None:
    budget = BodyBudget(total=100 * KIB, allowance=0)
    hold = budget.hold()
    assert hold.take(30 * KIB)
    hold.release()
    hold.release()
    assert budget.used == 0
    assert budget.hold().take(100 * KIB)


def test_a_declared_body_is_admitted_only_when_it_fits_what_is_free_beyond_the_allowance() -> None:
    budget = BodyBudget(total=100 * KIB, allowance=64 * KIB)
    assert budget.admits(164 * KIB)
    assert not budget.admits(164 * KIB + 1)
    assert budget.hold().take(164 * KIB)
    assert not budget.admits(64 * KIB + 1)
    assert budget.admits(64 * KIB)  # a small body never needs the budget


def test_the_default_allowance_covers_a_typical_push() -> None:
    assert BodyBudget(0).hold().take(20 * KIB)
    assert BODY_ALLOWANCE_BYTES >= 20 * KIB


# --- deadlines --------------------------------------------------------------------------------

TIMEOUTS = Timeouts(header=10, body=30, idle=8, keep_alive=5)


@pytest.mark.parametrize(
    ("phase", "since", "last_byte", "expected"),
    [
        (Phase.HEAD, 100, 100, 108),  # silent: the idle timeout comes first
        (Phase.HEAD, 100, 105, 110),  # trickling: the header deadline holds anyway
        (Phase.BODY, 100, 125, 130),  # the body deadline, however the bytes trickle
        (Phase.BODY, 100, 110, 118),  # stalled half-way: idle
        (Phase.KEEP_ALIVE, 100, 90, 105),
        (Phase.ANSWERING, 100, 100, None),  # the receiver's own work has its own timeouts
    ],
)
def test_each_phase_has_its_deadline(
    phase: Phase, since: float, last_byte: float, expected: float | None
) -> None:
    assert cutoff(phase, since, last_byte, TIMEOUTS) == expected


def test_the_timeouts_come_from_the_configuration() -> None:
    limits = HttpLimits(
        header_timeout_seconds=3,
        body_timeout_seconds=4,
        idle_timeout_seconds=2,
        keep_alive_timeout_seconds=1,
    )
    assert Timeouts.from_limits(limits) == Timeouts(header=3, body=4, idle=2, keep_alive=1)


# --- the header tally -------------------------------------------------------------------------


def test_a_head_within_the_limits_is_not_refused() -> None:
    tally = HeadTally(max_bytes=1024, max_headers=5)
    assert tally.add_target(b"/hooks/github") is None
    for index in range(5):
        assert tally.add_header(b"x-name-%d" % index, b"v" * 50) is None


def test_one_header_too_many_is_refused() -> None:
    tally = HeadTally(max_bytes=1024 * 1024, max_headers=3)
    reasons = [tally.add_header(b"a", b"b") for _ in range(4)]
    assert reasons[:3] == [None, None, None]
    assert reasons[3] == "more than 3 header fields"


def test_a_head_over_the_byte_limit_is_refused_counting_the_target() -> None:
    tally = HeadTally(max_bytes=100, max_headers=100)
    assert tally.add_target(b"/" + b"a" * 60) is None
    assert tally.add_header(b"x", b"y" * 40) == "request line and headers over 100 bytes"


def test_a_head_still_arriving_is_refused_once_past_the_limit() -> None:
    tally = HeadTally(max_bytes=16 * KIB, max_headers=100)
    assert tally.arriving(16 * KIB) is None
    assert tally.arriving(16 * KIB + 1) == "request line and headers over 16384 bytes"


# --- the raw refusal --------------------------------------------------------------------------


class _Socket:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def makefile(self, *args: Any, **kwargs: Any) -> io.BytesIO:
        return io.BytesIO(self.data)


def test_a_raw_refusal_is_an_http_answer_with_the_one_line_json_reason() -> None:
    raw = raw_answer(503, "busy\nsecond line?", [(b"server", b"uvicorn")], retry_after=10)
    response = HTTPResponse(_Socket(raw))
    response.begin()
    assert response.status == 503
    assert response.getheader("retry-after") == "10"
    assert response.getheader("connection") == "close"
    assert response.getheader("content-type") == "application/json"
    assert response.getheader("server") == "uvicorn"
    body = response.read()
    assert b"\n" not in body
    assert json.loads(body) == {"error": "busy\nsecond line?"}


def test_a_raw_refusal_without_retry_after_has_none() -> None:
    raw = raw_answer(431, "too many headers")
    assert raw.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert b"retry-after" not in raw
