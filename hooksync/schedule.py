"""Resync schedules (pure): spread forms resolved per target, and when a CronJob fires next.

A target's `resync` may spread its runs over the interval, as Jenkins' `H` does, so a fleet
of targets on one interval does not start all its Jobs in the same minute:

- `~15m` (every 15 minutes), `~2h` (every 2 hours), `~1d` (once a day): at an offset within
  the interval that a hash of the target's name picks;
- `H` in a cron field: one value from the field's range picked by the hash (`H H * * *`),
  `H/15` (every 15 from a hashed start below 15), `H(0-29)` and `H(0-29)/10` (within a range).
  In the day-of-month field `H` picks from 1-28, so every month has the day.

`resolve` turns either into a standard five-field expression for one target, which is what the
CronJob gets: a pure function of the form and the name. The hash is SHA-256, the same in every
process and Python version (never the built-in `hash()`, which is salted per process).

The CronJobs are created with `timeZone: Etc/UTC`, so the status page can say when each
target's next resync runs without asking the controller. Fields follow the CronJob's own
syntax: `*`, `?`, numbers, names (JAN-DEC, SUN-SAT), lists, ranges and steps, and the
@yearly, @annually, @monthly, @weekly, @daily, @midnight and @hourly macros.
"""

from __future__ import annotations

import datetime
import hashlib
import re
from dataclasses import dataclass

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
# Far enough to find any day a schedule can name (29 February included); a schedule that
# matches nothing in this span (30 February) never fires.
SEARCH_YEARS = 10


class CronError(ValueError):
    """The schedule is not a five-field cron expression or a known macro."""


# --- spread forms -----------------------------------------------------------------------------

_SPREAD = re.compile(r"~([0-9]{1,3})([mhd])")
_HASHED = re.compile(r"H(?:\(([0-9]{1,2})-([0-9]{1,2})\))?(?:/([0-9]{1,2}))?")
# (name, lowest, highest) per field; `H` in the day of month stays within 1-28.
_HASH_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 28),
    ("month", 1, 12),
    ("day of week", 0, 6),
)


def resolve(form: str, name: str) -> str:
    """The standard cron expression `form` means for the target `name`.

    A spread form gets the target's own offsets; any other schedule comes back unchanged.
    Raises CronError with a one-line reason for a form that cannot be resolved or parsed.
    """
    text = form.strip()
    if text.startswith("~"):
        text = _interval(text)
    fields = text.split()
    # No month or day name starts with H (THU only holds one), so H leads only the hashed form.
    if any(field.startswith("H") for field in fields):
        if len(fields) != 5:
            raise CronError(f"schedule {form!r}: want five fields or a macro like @daily")
        text = " ".join(
            _hashed_field(field, name, index) if field.startswith("H") else field
            for index, field in enumerate(fields)
        )
    parse(text)  # what the CronJob gets must be a schedule the API server reads
    return text


def _interval(text: str) -> str:
    """`~Nm`, `~Nh` or `~Nd` as an H form; the interval must divide the next larger unit."""
    match = _SPREAD.fullmatch(text)
    if match is None:
        raise CronError(f"schedule {text!r}: a spread interval reads like ~15m, ~2h or ~1d")
    count, unit = int(match.group(1)), match.group(2)
    if count == 0:
        raise CronError(f"schedule {text!r}: the interval must be at least 1{unit}")
    if unit == "m" and 60 % count == 0 and count < 60:
        return f"H/{count} * * * *" if count > 1 else "* * * * *"
    if (unit == "m" and count == 60) or (unit == "h" and count == 1):
        return "H * * * *"
    if unit == "h" and 24 % count == 0 and count < 24:
        return f"H H/{count} * * *"
    if (unit == "h" and count == 24) or (unit == "d" and count == 1):
        return "H H * * *"
    if unit == "d":
        raise CronError(
            f"schedule {text!r}: only ~1d spreads over days; write cron fields for more"
        )
    unit_name, allowed = (
        ("hour", "1-6, 10, 12, 15, 20, 30 or 60") if unit == "m" else ("day", "1-4, 6, 8, 12 or 24")
    )
    raise CronError(
        f"schedule {text!r}: the interval must divide the {unit_name} evenly; use {allowed}{unit}"
    )


def _hashed_field(field: str, name: str, index: int) -> str:
    what, low, high = _HASH_FIELDS[index]
    match = _HASHED.fullmatch(field)
    if match is None:
        raise CronError(f"{what} {field!r}: H reads as H, H/step, H(low-high) or H(low-high)/step")
    first, last, step_text = match.groups()
    if first is not None:
        start, end = int(first), int(last)
        if not low <= start <= end <= high:
            raise CronError(f"{what} {field!r}: H's range must lie from {low} to {high}, upwards")
    else:
        start, end = low, high
    value = _hash(name, index)
    if step_text is None:
        return str(start + value % (end - start + 1))
    step = int(step_text)
    if not 1 <= step <= end - start + 1:
        raise CronError(f"{what} {field!r}: the step must lie from 1 to {end - start + 1}")
    offset = start + value % step
    return ",".join(str(v) for v in range(offset, end + 1, step))


def _hash(name: str, index: int) -> int:
    """A number from the target's name, different per field, the same everywhere."""
    digest = hashlib.sha256(f"{name}\0{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule: the values each field allows.

    `days_restricted` and `weekdays_restricted` record whether those fields were something
    other than `*`: when both are, a day matches if *either* matches (cron's rule).
    """

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_restricted: bool
    weekdays_restricted: bool

    def day_matches(self, day: datetime.date) -> bool:
        in_days = day.day in self.days
        in_weekdays = day.isoweekday() % 7 in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_days or in_weekdays
        return in_days and in_weekdays


def parse(schedule: str) -> Schedule:
    """Parse `schedule`; raises CronError naming the field that is wrong."""
    text = schedule.strip()
    # Macros are matched exactly, as the API server's parser does: "@Daily" is refused there.
    text = MACROS.get(text, text)
    fields = text.split()
    if len(fields) != 5:
        raise CronError(f"schedule {schedule!r}: want five fields or a macro like @daily")
    minute, hour, day, month, weekday = fields
    weekdays = _field(weekday, "day of week", 0, 7, DAY_NAMES)
    if 7 in weekdays:  # 7 is Sunday too
        weekdays = (weekdays - {7}) | {0}
    return Schedule(
        minutes=_field(minute, "minute", 0, 59),
        hours=_field(hour, "hour", 0, 23),
        days=_field(day, "day of month", 1, 31),
        months=_field(month, "month", 1, 12, MONTH_NAMES, first_name=1),
        weekdays=weekdays,
        days_restricted=not _is_star(day),
        weekdays_restricted=not _is_star(weekday),
    )


def next_fire_time(schedule: str | Schedule, after: datetime.datetime) -> datetime.datetime | None:
    """The first minute strictly after `after` that `schedule` names, in UTC.

    `after` may be naive (taken as UTC) or aware. None when the schedule can never fire
    (such as the 30th of February).
    """
    parsed = parse(schedule) if isinstance(schedule, str) else schedule
    if after.tzinfo is not None:
        after = after.astimezone(datetime.UTC).replace(tzinfo=None)
    moment = after.replace(second=0, microsecond=0) + datetime.timedelta(minutes=1)
    limit = moment.replace(year=moment.year + SEARCH_YEARS, month=1, day=1, hour=0, minute=0)
    while moment < limit:
        if moment.month not in parsed.months:
            year, month = divmod(moment.year * 12 + moment.month, 12)  # the next month
            moment = datetime.datetime(year, month + 1, 1)
        elif not parsed.day_matches(moment.date()):
            moment = datetime.datetime.combine(moment.date(), datetime.time()) + _DAY
        elif moment.hour not in parsed.hours:
            moment = moment.replace(minute=0) + _HOUR
        elif moment.minute not in parsed.minutes:
            moment += _MINUTE
        else:
            return moment.replace(tzinfo=datetime.UTC)
    return None


_MINUTE = datetime.timedelta(minutes=1)
_HOUR = datetime.timedelta(hours=1)
_DAY = datetime.timedelta(days=1)


def _is_star(field: str) -> bool:
    """Whether a day field counts as "any day" in cron's either-day rule.

    As the CronJob controller's parser (robfig/cron v3) reads it: some item is `*` or `?`
    with no step above 1. `*/2` names every other day, so it restricts like `1-31/2`.
    """
    for item in field.split(","):
        span, _, step = item.partition("/")
        if span in ("*", "?") and (not step or (step.isdigit() and int(step) == 1)):
            return True
    return False


def _field(
    text: str, what: str, low: int, high: int, names: tuple[str, ...] = (), first_name: int = 0
) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        span, _, step_text = item.partition("/")
        step = 1
        if step_text:
            step = _number(step_text, what, item)
            if step < 1:
                raise CronError(f"{what} {item!r}: the step must be at least 1")
        if span in ("*", "?"):
            start, end = low, high
        elif "-" in span:
            first, _, last = span.partition("-")
            start = _value(first, what, item, names, first_name)
            end = _value(last, what, item, names, first_name)
        else:
            start = _value(span, what, item, names, first_name)
            # "5/15" means from 5 to the end, every 15.
            end = high if step_text else start
        if not low <= start <= high or not low <= end <= high:
            raise CronError(f"{what} {item!r}: values must lie from {low} to {high}")
        if start > end:
            raise CronError(f"{what} {item!r}: the range runs backwards")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _value(text: str, what: str, item: str, names: tuple[str, ...], first_name: int) -> int:
    upper = text.upper()
    if upper in names:
        return names.index(upper) + first_name
    return _number(text, what, item)


def _number(text: str, what: str, item: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise CronError(f"{what} {item!r}: {text!r} is not a number")
    return int(text)
