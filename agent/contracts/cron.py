"""Cron schedules as a Kubernetes CronJob takes them: parsed, checked and stepped through in UTC.

A `workload: cronjob` app's `cronTime` is handed as it is to a CronJob in kube mode, and run by
the native backend on a native node (decision #152), so both read it alike: the five fields of
robfig/cron's `ParseStandard`, which Kubernetes uses — minute (0-59), hour (0-23), day of month
(1-31), month (1-12 or `jan`…`dec`), day of week (0-6 or `sun`…`sat`); each a list of `*`, `?`,
numbers, ranges `a-b` and steps `*/n`, `a/n` (from `a` to the end), `a-b/n`; and the
descriptors `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`.
When both day fields are restricted a day matching either runs (classic cron); when one is a
plain `*` (or `?`) only the other counts. What Kubernetes refuses is refused here too (7 as
Sunday, six fields, `TZ=` prefixes); `@every` and schedules that can never come (`0 0 30 2 *`)
are refused as well, with a message saying why. Times are UTC: the parser is the one module
that knows the syntax, the cloud validates with it and the agent steps through it.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_MINUTE = timedelta(minutes=1)
_SEARCH_YEARS = 10
"""How far `next_after`/`latest_until` look: a schedule that can come at all comes within
8 years (29 February in a century year without a leap day)."""

DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = {name.lower(): number for number, name in enumerate(calendar.month_abbr) if name}
_DAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int] | None = None


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day of month", 1, 31),
    _Field("month", 1, 12, _MONTHS),
    _Field("day of week", 0, 6, _DAYS),
)


class CronError(ValueError):
    """A schedule that cannot be parsed or never comes; the message says which part and why."""


@dataclass(frozen=True)
class CronSchedule:
    """A parsed schedule: the allowed values of each field, and whether a day field was `*`."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool
    """The day-of-month field was a plain `*`/`?`: only the day of week restricts days."""
    any_weekday: bool
    """The day-of-week field was a plain `*`/`?`: only the day of month restricts days."""

    def day_matches(self, moment: datetime) -> bool:
        """Whether the day of `moment` is a day the schedule runs on (robfig's `dayMatches`)."""
        by_day = moment.day in self.days
        by_weekday = (moment.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return by_day and by_weekday
        return by_day or by_weekday

    def matches(self, moment: datetime) -> bool:
        """Whether the schedule runs at `moment`'s minute (UTC)."""
        moment = moment.astimezone(UTC)
        return (
            moment.minute in self.minutes
            and moment.hour in self.hours
            and moment.month in self.months
            and self.day_matches(moment)
        )

    def next_after(self, moment: datetime) -> datetime | None:
        """The first time of the schedule strictly after `moment` (UTC, whole minute)."""
        at = _minute(moment) + _MINUTE
        limit = at.year + _SEARCH_YEARS
        while at.year <= limit:
            if at.month not in self.months:
                at = _month_start(at.year, at.month + 1)
            elif not self.day_matches(at):
                at = at.replace(hour=0, minute=0) + timedelta(days=1)
            elif at.hour not in self.hours:
                at = at.replace(minute=0) + timedelta(hours=1)
            elif at.minute not in self.minutes:
                at += _MINUTE
            else:
                return at
        return None

    def latest_until(self, moment: datetime) -> datetime | None:
        """The last time of the schedule at or before `moment` (UTC, whole minute)."""
        at = _minute(moment)
        limit = at.year - _SEARCH_YEARS
        while at.year >= limit:
            if at.month not in self.months:
                at = _month_start(at.year, at.month) - _MINUTE
            elif not self.day_matches(at):
                at = at.replace(hour=0, minute=0) - _MINUTE
            elif at.hour not in self.hours:
                at = at.replace(minute=0) - _MINUTE
            elif at.minute not in self.minutes:
                at -= _MINUTE
            else:
                return at
        return None


def parse(text: str) -> CronSchedule:
    """Parse a schedule; CronError names the field at fault and what is allowed there."""
    spec = text.strip()
    if not spec:
        raise CronError("empty schedule: five fields such as '*/5 * * * *', or '@hourly'")
    if spec.startswith(("TZ=", "CRON_TZ=")):
        raise CronError(f"{text!r}: no time zone may be given; schedules run in UTC")
    if spec.startswith("@"):
        expanded = DESCRIPTORS.get(spec)
        if expanded is None:
            known = ", ".join(DESCRIPTORS)
            raise CronError(f"{text!r}: unknown descriptor; use five fields or one of {known}")
        spec = expanded
    parts = spec.split()
    if len(parts) != len(_FIELDS):
        raise CronError(
            f"{text!r}: expected 5 fields (minute hour day-of-month month day-of-week), "
            f"found {len(parts)}"
        )
    values = [_parse_field(part, field) for part, field in zip(parts, _FIELDS, strict=True)]
    schedule = CronSchedule(
        text=text,
        minutes=values[0][0],
        hours=values[1][0],
        days=values[2][0],
        months=values[3][0],
        weekdays=values[4][0],
        any_day=values[2][1],
        any_weekday=values[4][1],
    )
    if not _some_day_exists(schedule):
        raise CronError(f"{text!r} never comes: none of its days exists in its months")
    return schedule


def _parse_field(text: str, field: _Field) -> tuple[frozenset[int], bool]:
    """The values of one field, and whether it was a plain `*` (robfig's star bit)."""
    values: set[int] = set()
    star = False
    for item in text.split(","):
        if not item:
            raise CronError(f"{field.name} field {text!r}: an empty list item")
        found, plain_star = _parse_item(item, field)
        values |= found
        star = star or plain_star
    return frozenset(values), star


def _parse_item(item: str, field: _Field) -> tuple[set[int], bool]:
    where = f"{field.name} field {item!r}"
    span, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not _digits(step_text) or int(step_text) == 0:
            raise CronError(f"{where}: the step after '/' must be a whole number above 0")
        step = int(step_text)
    if span in ("*", "?"):
        low, high = field.low, field.high
        plain_star = step == 1
    else:
        plain_star = False
        first, dash, last = span.partition("-")
        low = _value(first, field, where)
        end = field.high if slash else low  # alone, `a/n` runs from a to the field's end
        high = _value(last, field, where) if dash else end
        if low > high:
            raise CronError(f"{where}: the range starts after it ends")
    return set(range(low, high + 1, step)), plain_star


def _value(text: str, field: _Field, where: str) -> int:
    if field.names is not None and text.lower() in field.names:
        return field.names[text.lower()]
    if not _digits(text):
        names = "" if field.names is None else f" or a name ({', '.join(field.names)})"
        raise CronError(f"{where}: {text!r} is not a number{names}")
    number = int(text)
    if not field.low <= number <= field.high:
        hint = "; Sunday is 0" if field.names is _DAYS and number == 7 else ""
        raise CronError(f"{where}: {number} is outside {field.low}-{field.high}{hint}")
    return number


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _some_day_exists(schedule: CronSchedule) -> bool:
    """Whether some day of the schedule exists (a plain `*` day or a weekday always does)."""
    if schedule.any_day or not schedule.any_weekday:
        return True  # every day of some weekday comes, or either field may match
    longest = {month: calendar.monthrange(2024, month)[1] for month in schedule.months}
    return any(day <= longest[month] for month in schedule.months for day in schedule.days)


def _minute(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("a cron time needs a time zone (an aware datetime)")
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def _month_start(year: int, month: int) -> datetime:
    year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    return datetime(year, month, 1, tzinfo=UTC)
