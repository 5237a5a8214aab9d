"""When a resync CronJob fires next (pure): five-field cron schedules, read in UTC.

The CronJobs are created with `timeZone: Etc/UTC`, so the status page can say when each
target's next resync runs without asking the controller. Fields follow the CronJob's own
syntax: `*`, `?`, numbers, names (JAN-DEC, SUN-SAT), lists, ranges and steps, and the
@yearly, @annually, @monthly, @weekly, @daily, @midnight and @hourly macros.
"""

from __future__ import annotations

import datetime
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
