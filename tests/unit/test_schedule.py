"""When a resync CronJob fires next: five-field schedules and macros, in UTC."""

from __future__ import annotations

import collections
import datetime
import itertools
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hooksync.schedule import SEARCH_YEARS, CronError, Schedule, next_fire_time, parse, resolve

UTC = datetime.UTC
# Monday 10 March 2025, 12:34:56 UTC.
MONDAY = datetime.datetime(2025, 3, 10, 12, 34, 56, tzinfo=UTC)


def at(*args: int) -> datetime.datetime:
    return datetime.datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("schedule", "after", "expected"),
    [
        ("* * * * *", MONDAY, at(2025, 3, 10, 12, 35)),
        ("*/15 * * * *", MONDAY, at(2025, 3, 10, 12, 45)),
        # Strictly after: a schedule due this very minute fires next time round.
        ("*/15 * * * *", at(2025, 3, 10, 12, 45), at(2025, 3, 10, 13, 0)),
        ("0 * * * *", MONDAY, at(2025, 3, 10, 13, 0)),
        ("5,10 0 * * *", MONDAY, at(2025, 3, 11, 0, 5)),
        ("0 9-17/4 * * *", MONDAY, at(2025, 3, 10, 13, 0)),
        ("5/20 * * * *", MONDAY, at(2025, 3, 10, 12, 45)),
        ("30 2 * * 1-5", at(2025, 3, 14, 3, 0), at(2025, 3, 17, 2, 30)),  # Friday -> Monday
        ("0 0 * JAN,jul MON", MONDAY, at(2025, 7, 7, 0, 0)),
        ("0 0 ? * MON", MONDAY, at(2025, 3, 17, 0, 0)),
        ("0 0 * * 7", MONDAY, at(2025, 3, 16, 0, 0)),  # 7 is Sunday, as 0 is
        ("0 0 * * SUN", MONDAY, at(2025, 3, 16, 0, 0)),
        ("0 0 1 1 *", at(2025, 12, 31, 23, 59), at(2026, 1, 1, 0, 0)),
        ("0 0 31 * *", at(2025, 4, 1), at(2025, 5, 31, 0, 0)),  # April has no 31st
        ("0 0 29 2 *", MONDAY, at(2028, 2, 29, 0, 0)),
        ("59 23 31 12 *", MONDAY, at(2025, 12, 31, 23, 59)),
    ],
)
def test_next_fire_time(schedule: str, after: datetime.datetime, expected: datetime.datetime):
    assert next_fire_time(schedule, after) == expected


@pytest.mark.parametrize(
    ("macro", "expected"),
    [
        ("@hourly", at(2025, 3, 10, 13, 0)),
        ("@daily", at(2025, 3, 11, 0, 0)),
        ("@midnight", at(2025, 3, 11, 0, 0)),
        ("@weekly", at(2025, 3, 16, 0, 0)),
        ("@monthly", at(2025, 4, 1, 0, 0)),
        ("@yearly", at(2026, 1, 1, 0, 0)),
        ("@annually", at(2026, 1, 1, 0, 0)),
    ],
)
def test_macros(macro: str, expected: datetime.datetime):
    assert next_fire_time(macro, MONDAY) == expected


def test_day_of_month_and_weekday_both_set_means_either():
    # Friday the 13th: cron fires on every 13th *and* on every Friday.
    assert next_fire_time("0 0 13 * FRI", MONDAY) == at(2025, 3, 13, 0, 0)  # a Thursday
    assert next_fire_time("0 0 13 * FRI", at(2025, 3, 13, 0, 0)) == at(2025, 3, 14, 0, 0)


def test_a_star_with_a_step_restricts_like_a_range():
    # As the CronJob controller reads it (robfig/cron v3): "*/2" is the odd days, a
    # restriction, so either day field may match: the 11th is odd, though not a Monday.
    assert next_fire_time("0 0 */2 * MON", MONDAY) == at(2025, 3, 11, 0, 0)
    # The 6th of September, or any Sunday in September ("*/7" is Sunday alone).
    assert next_fire_time("* * 6 9 */7", at(2000, 1, 1, 0, 0)) == at(2000, 9, 3, 0, 0)


@pytest.mark.parametrize("star", ["*", "?", "*/1", "*,5", "5,*"])
def test_a_star_without_a_step_above_one_means_any_day(star: str):
    # Any day of the month: only Mondays count.
    assert next_fire_time(f"0 0 {star} * MON", MONDAY) == at(2025, 3, 17, 0, 0)


def test_times_are_read_in_utc_whatever_the_input_zone():
    plus_two = datetime.timezone(datetime.timedelta(hours=2))
    after = datetime.datetime(2025, 3, 10, 14, 34, 56, tzinfo=plus_two)
    result = next_fire_time("0 13 * * *", after)
    assert result == at(2025, 3, 10, 13, 0) and result.tzinfo is UTC
    naive = datetime.datetime(2025, 3, 10, 12, 34, 56)
    assert next_fire_time("0 13 * * *", naive) == at(2025, 3, 10, 13, 0)


def test_a_schedule_that_names_no_real_day_never_fires():
    assert next_fire_time("0 0 30 2 *", MONDAY) is None
    assert next_fire_time("0 0 31 4,6,9,11 *", MONDAY) is None


@pytest.mark.parametrize(
    "schedule",
    [
        "",
        "* * * *",
        "* * * * * *",
        "60 * * * *",
        "* 24 * * *",
        "* * 0 * *",
        "* * 32 * *",
        "* * * 13 *",
        "* * * * 8",
        "*/0 * * * *",
        "5-1 * * * *",
        "a * * * *",
        "1,,2 * * * *",
        "-1 * * * *",
        "* * * FOO *",
        "@every 5m",
        "@reboot",
    ],
)
def test_malformed_schedules_are_refused(schedule: str):
    with pytest.raises(CronError):
        next_fire_time(schedule, MONDAY)


def test_parse_keeps_the_sets_each_field_allows():
    parsed = parse("1-5/2 0,12 * JAN-MAR mon-fri")
    assert parsed.minutes == {1, 3, 5}
    assert parsed.hours == {0, 12}
    assert parsed.days == set(range(1, 32))
    assert parsed.months == {1, 2, 3}
    assert parsed.weekdays == {1, 2, 3, 4, 5}
    assert not parsed.days_restricted and parsed.weekdays_restricted


def _first_fire_by_days(schedule: Schedule, after: datetime.datetime) -> datetime.datetime | None:
    """A slow, obvious reference: walk day by day, then try each allowed time that day."""
    start = after.replace(second=0, microsecond=0, tzinfo=UTC) + datetime.timedelta(minutes=1)
    day = start.date()
    # As far as next_fire_time searches: to the 1st of January, SEARCH_YEARS years on.
    while day < datetime.date(start.year + SEARCH_YEARS, 1, 1):
        if day.month in schedule.months and schedule.day_matches(day):
            for hour in sorted(schedule.hours):
                for minute in sorted(schedule.minutes):
                    moment = datetime.datetime.combine(day, datetime.time(hour, minute), UTC)
                    if moment >= start:
                        return moment
        day += datetime.timedelta(days=1)
    return None


def _field(low: int, high: int) -> st.SearchStrategy[str]:
    single = st.integers(low, high).map(str)
    span = st.tuples(st.integers(low, high), st.integers(low, high), st.integers(1, 9)).map(
        lambda t: f"{min(t[0], t[1])}-{max(t[0], t[1])}/{t[2]}"
    )
    item = st.one_of(st.just("*"), single, span, st.integers(1, 9).map(lambda n: f"*/{n}"))
    return st.lists(item, min_size=1, max_size=3).map(",".join)


@settings(max_examples=150, deadline=None)
@given(
    minute=_field(0, 59),
    hour=_field(0, 23),
    day=_field(1, 31),
    month=_field(1, 12),
    weekday=_field(0, 7),
    after=st.datetimes(
        min_value=datetime.datetime(2000, 1, 1), max_value=datetime.datetime(2090, 1, 1)
    ),
)
def test_agrees_with_a_day_by_day_walk(
    minute: str, hour: str, day: str, month: str, weekday: str, after: datetime.datetime
):
    schedule = f"{minute} {hour} {day} {month} {weekday}"
    expected = _first_fire_by_days(parse(schedule), after)
    assert next_fire_time(schedule, after) == expected, schedule


# --- spread forms: resolved per target by a stable hash of its name ---------------------------

FLEET = [f"target-{index}" for index in range(1000)]


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ("~15m", "1,16,31,46 * * * *"),
        ("H/15 * * * *", "1,16,31,46 * * * *"),
        ("~6h", "46 2,8,14,20 * * *"),
        ("~1d", "46 14 * * *"),
        ("H H * * *", "46 14 * * *"),
        ("H(0-29)/10 * * * *", "6,16,26 * * * *"),
        ("H H H * *", "46 14 25 * *"),
        ("~1m", "* * * * *"),
        ("*/15 * * * *", "*/15 * * * *"),  # no H: as written
        ("@daily", "@daily"),
        ("0 0 * * THU", "0 0 * * THU"),  # a name holding an H is still a name
    ],
)
def test_a_spread_form_resolves_to_the_same_standard_schedule_every_time(form: str, expected: str):
    """Pinned values: a change of hash (or of Python) would move every target's resyncs."""
    assert resolve(form, "shop") == expected
    assert resolve(form, "shop") == resolve(form, "shop")
    parse(expected)


def test_the_offsets_do_not_depend_on_the_process():
    """The built-in hash() is salted per process; the resolved schedule must not be."""
    program = "from hooksync.schedule import resolve; print(resolve('~15m', 'shop'))"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", program],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout.strip()
        for seed in ("1", "2", "random")
    }
    assert outputs == {"1,16,31,46 * * * *"}


def test_a_fleet_on_fifteen_minutes_spreads_over_every_minute():
    """1,000 targets on ~15m: no minute of the hour starts more than twice the average."""
    starts: collections.Counter[int] = collections.Counter()
    for name in FLEET:
        starts.update(parse(resolve("~15m", name)).minutes)
    average = sum(starts.values()) / 60
    assert set(starts) == set(range(60))
    assert max(starts.values()) <= 2 * average, starts.most_common(3)


def test_spread_schedules_stay_within_the_interval_and_range():
    for name in FLEET[:200]:
        minutes = sorted(parse(resolve("~15m", name)).minutes)
        assert len(minutes) == 4 and minutes[0] < 15
        assert all(b - a == 15 for a, b in itertools.pairwise(minutes))
        ranged = parse(resolve("H(0-29)/10 * * * *", name)).minutes
        assert len(ranged) == 3 and all(0 <= m <= 29 for m in ranged)
        assert max(parse(resolve("H H H * *", name)).days) <= 28  # every month has the day


@pytest.mark.parametrize(
    ("form", "reason"),
    [
        ("~7m", "'~7m': the interval must divide the hour evenly; use 1-6, 10, 12, 15, 20, 30"),
        ("~5h", "'~5h': the interval must divide the day evenly"),
        ("~2d", "only ~1d spreads over days"),
        ("~0m", "the interval must be at least 1m"),
        ("~15", "a spread interval reads like ~15m"),
        ("~15 * * * *", "a spread interval reads like ~15m"),
        ("H/0 * * * *", "minute 'H/0': the step must lie from 1 to 60"),
        ("H/61 * * * *", "minute 'H/61': the step must lie from 1 to 60"),
        ("H(30-10) * * * *", "minute 'H(30-10)': H's range must lie from 0 to 59"),
        ("H H(0-24) * * *", "hour 'H(0-24)': H's range must lie from 0 to 23"),
        ("H H H(0-31) * *", "day of month 'H(0-31)': H's range must lie from 1 to 28"),
        ("Hx * * * *", "minute 'Hx': H reads as H, H/step"),
        ("H,5 * * * *", "minute 'H,5': H reads as H"),
        ("H * *", "want five fields"),
    ],
)
def test_a_malformed_spread_form_is_refused_with_a_one_line_reason(form: str, reason: str):
    with pytest.raises(CronError) as caught:
        resolve(form, "shop")
    assert reason in str(caught.value)
    assert "\n" not in str(caught.value)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.text(min_size=1, max_size=30))
def test_resolve_either_answers_a_schedule_the_parser_reads_or_refuses(form: str, name: str):
    try:
        resolved = resolve(form, name)
    except CronError:
        return
    parse(resolved)
    assert not any(field.startswith(("H", "~")) for field in resolved.split())
