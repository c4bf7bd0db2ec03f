"""Cron schedules as Kubernetes reads them (robfig/cron's ParseStandard): parsing, refusals with
their reasons, and stepping forwards and backwards through the times, in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.contracts.cron import CronError, CronSchedule, parse

# A Saturday, at an odd second: every step starts from a time that is not on a minute.
AT = datetime(2026, 3, 14, 10, 17, 42, tzinfo=UTC)


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("schedule", "after", "before"),
    [
        ("* * * * *", "2026-03-14 10:18", "2026-03-14 10:17"),
        ("*/15 * * * *", "2026-03-14 10:30", "2026-03-14 10:15"),
        ("5/20 * * * *", "2026-03-14 10:25", "2026-03-14 10:05"),  # 5-59/20
        ("10-40/10 * * * *", "2026-03-14 10:20", "2026-03-14 10:10"),
        ("0 9-17/4 * * mon-fri", "2026-03-16 09:00", "2026-03-13 17:00"),
        ("30 2 1,15 * *", "2026-03-15 02:30", "2026-03-01 02:30"),
        ("0 0 * * sun", "2026-03-15 00:00", "2026-03-08 00:00"),
        ("0 0 * * SUN", "2026-03-15 00:00", "2026-03-08 00:00"),
        # Both day fields restricted: a day matching either (classic cron, and robfig's rule).
        ("0 0 13 * fri", "2026-03-20 00:00", "2026-03-13 00:00"),
        ("0 0 1-7 * 1", "2026-03-16 00:00", "2026-03-09 00:00"),
        # `*/2` is a step, not a star: still "either".
        ("0 0 */2 * fri", "2026-03-15 00:00", "2026-03-13 00:00"),
        # A plain `*` or `?` day of month: only the day of week counts.
        ("0 12 ? * wed", "2026-03-18 12:00", "2026-03-11 12:00"),
        ("0 12 * JAN,jul ?", "2026-07-01 12:00", "2026-01-31 12:00"),
        ("0 0 1 jan/3 *", "2026-04-01 00:00", "2026-01-01 00:00"),  # jan, apr, jul, oct
        ("59 23 31 dec *", "2026-12-31 23:59", "2025-12-31 23:59"),
        ("0 0 29 2 *", "2028-02-29 00:00", "2024-02-29 00:00"),
        ("0 0 31 * *", "2026-03-31 00:00", "2026-01-31 00:00"),
        ("@hourly", "2026-03-14 11:00", "2026-03-14 10:00"),
        ("@daily", "2026-03-15 00:00", "2026-03-14 00:00"),
        ("@midnight", "2026-03-15 00:00", "2026-03-14 00:00"),
        ("@weekly", "2026-03-15 00:00", "2026-03-08 00:00"),
        ("@monthly", "2026-04-01 00:00", "2026-03-01 00:00"),
        ("@yearly", "2027-01-01 00:00", "2026-01-01 00:00"),
        ("@annually", "2027-01-01 00:00", "2026-01-01 00:00"),
        ("  17   10 * *   *  ", "2026-03-15 10:17", "2026-03-14 10:17"),
    ],
)
def test_next_and_latest_times(schedule: str, after: str, before: str) -> None:
    parsed = parse(schedule)
    assert parsed.next_after(AT) == t(after)
    assert parsed.latest_until(AT) == t(before)


def test_a_time_on_the_minute_is_its_own_latest_but_not_its_next() -> None:
    every = parse("* * * * *")
    on = t("2026-03-14 10:17")
    assert every.latest_until(on) == on
    assert every.next_after(on) == on + timedelta(minutes=1)


def test_times_in_another_zone_are_read_as_the_same_instant_in_utc() -> None:
    cet = datetime(2026, 3, 14, 12, 17, 42, tzinfo=timezone(timedelta(hours=1)))  # 11:17 UTC
    assert parse("0 11 * * *").next_after(cet) == t("2026-03-15 11:00")
    assert parse("0 12 * * *").next_after(cet) == t("2026-03-14 12:00")
    with pytest.raises(ValueError, match="time zone"):
        parse("* * * * *").next_after(datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("", "empty schedule"),
        ("* * * *", "expected 5 fields"),
        ("0 * * * * *", "expected 5 fields"),  # seconds: Kubernetes has none
        ("60 * * * *", "minute field '60': 60 is outside 0-59"),
        ("* 24 * * *", "hour field '24': 24 is outside 0-23"),
        ("* * 0 * *", "day of month field '0': 0 is outside 1-31"),
        ("* * * 13 *", "month field '13'"),
        ("* * * * 7", "Sunday is 0"),  # robfig (and so Kubernetes) refuses 7
        ("* * * * mon-sun", "the range starts after it ends"),
        ("5-1 * * * *", "the range starts after it ends"),
        ("*/0 * * * *", "the step after '/' must be a whole number above 0"),
        ("*/x * * * *", "the step after '/'"),
        ("1,,2 * * * *", "an empty list item"),
        ("-1 * * * *", "'' is not a number"),
        ("1-2-3 * * * *", "'2-3' is not a number"),
        ("* * * foo *", "'foo' is not a number or a name (jan, feb"),
        ("mon * * * *", "'mon' is not a number"),  # names only where they belong
        ("² * * * *", "is not a number"),
        ("@every 5m", "unknown descriptor"),
        ("@reboot", "unknown descriptor"),
        ("TZ=Europe/Paris 0 8 * * *", "no time zone may be given"),
        ("CRON_TZ=UTC 0 8 * * *", "no time zone"),
        ("0 0 30 2 *", "never comes"),
        ("0 0 31 4,6,9,11 *", "never comes"),
    ],
)
def test_bad_schedules_are_refused_with_the_reason(schedule: str, message: str) -> None:
    with pytest.raises(CronError, match=message.replace("(", r"\(").replace("*", r"\*")):
        parse(schedule)


def test_a_restricted_weekday_makes_an_impossible_day_possible() -> None:
    # Day 30 of February never comes, but "either" also runs on Mondays in February.
    schedule = parse("0 0 30 2 mon")
    assert schedule.next_after(AT) == t("2027-02-01 00:00")


# --- properties: the two directions agree, and agree with a minute-by-minute scan -----------

_ITEMS = {
    "minute": st.sampled_from(["*", "0", "*/7", "5-20/5", "59", "1,2,3", "30/15"]),
    "hour": st.sampled_from(["*", "0", "*/5", "9-17", "23", "2,14"]),
    "dom": st.sampled_from(["*", "?", "1", "15,31", "*/10", "28-31", "29"]),
    "month": st.sampled_from(["*", "feb", "1-6", "*/4", "dec", "2,4"]),
    "dow": st.sampled_from(["*", "?", "0", "mon-fri", "sat,sun", "*/3", "3"]),
}
schedules = st.tuples(*_ITEMS.values()).map(" ".join)
moments = st.datetimes(
    min_value=datetime(2001, 1, 1),
    max_value=datetime(2090, 12, 31),
    timezones=st.just(UTC),
)


def _parsed(text: str) -> CronSchedule | None:
    try:
        return parse(text)
    except CronError:
        return None


@given(schedules, moments)
def test_next_and_latest_bracket_every_moment_with_nothing_between(text: str, at: datetime) -> None:
    schedule = _parsed(text)
    if schedule is None:  # a drawn day that never comes
        return
    after, before = schedule.next_after(at), schedule.latest_until(at)
    assert after is not None
    assert before is not None
    assert before <= at < after
    assert schedule.matches(after)
    assert schedule.matches(before)
    assert schedule.next_after(before) == after  # nothing in between, seen from either side
    assert schedule.latest_until(after - timedelta(minutes=1)) == before


@given(st.sampled_from(["*/7 * * * *", "0,30 */5 * * *", "15 * 1-3 * mon", "* 23 * * *"]), moments)
def test_the_next_time_is_the_first_matching_minute(text: str, at: datetime) -> None:
    schedule = parse(text)
    minute = at.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while not schedule.matches(minute):
        minute += timedelta(minutes=1)
    assert schedule.next_after(at) == minute
