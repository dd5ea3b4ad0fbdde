"""Schedule strings → triggers: next fire times at fixed reference instants, and the errors."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.interval import IntervalTrigger

from golembot.scheduler.schedules import (SECONDS_ENV, ScheduleError, parse_cron,
                                          parse_schedule, validate_schedule)

UTC = ZoneInfo("UTC")
FRIDAY = dt.datetime(2026, 3, 6, 10, 0, 30, tzinfo=UTC)  # a Friday


def next_fire(schedule, now=FRIDAY, tz=UTC):
    return parse_schedule(schedule, tz).get_next_fire_time(None, now)


def fires(schedule, count, now=FRIDAY, tz=UTC):
    trigger = parse_schedule(schedule, tz)
    out, prev = [], None
    for _ in range(count):
        nxt = trigger.get_next_fire_time(prev, now)
        out.append(nxt)
        prev, now = nxt, nxt + dt.timedelta(microseconds=1)
    return out


def test_weekdays_one_to_five_are_monday_to_friday():
    assert FRIDAY.strftime("%a") == "Fri"
    got = fires("0 9 * * 1-5", 5)
    assert [d.strftime("%a %H:%M") for d in got] == [
        "Mon 09:00", "Tue 09:00", "Wed 09:00", "Thu 09:00", "Fri 09:00"]
    assert got[0] == dt.datetime(2026, 3, 9, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize("dow", ["0", "7", "sun", "SUN"])
def test_zero_and_seven_are_sunday(dow):
    got = next_fire(f"30 8 * * {dow}")
    assert got == dt.datetime(2026, 3, 8, 8, 30, tzinfo=UTC)
    assert got.strftime("%a") == "Sun"


@pytest.mark.parametrize("expr,days", [
    ("0 9 * * 1,3,5", ["Mon", "Wed", "Fri", "Mon"]),
    ("0 9 * * 5-7", ["Sat", "Sun", "Fri", "Sat"]),  # Friday 09:00 has passed
    ("0 9 * * mon-wed", ["Mon", "Tue", "Wed", "Mon"]),
    ("0 9 * * 0,6", ["Sat", "Sun", "Sat", "Sun"]),
    ("0 9 * * */2", ["Sat", "Sun", "Tue", "Thu"]),  # 0,2,4,6
    ("0 9 * * 1-5/2", ["Mon", "Wed", "Fri", "Mon"]),
])
def test_weekday_lists_and_ranges(expr, days):
    assert [d.strftime("%a") for d in fires(expr, 4)] == days


def test_parse_cron_translates_seven_to_zero():
    assert parse_cron("0 0 * * 7")[4] == {0}
    assert parse_cron("0 0 * * 0-7")[4] == set(range(7))


def test_step_on_a_single_value_means_from_that_value():
    got = fires("5/15 * * * *", 4)
    assert [d.minute for d in got] == [5, 20, 35, 50]


def test_step_larger_than_the_field_is_accepted():
    assert [d.hour for d in fires("*/90 * * * *", 2)] == [11, 12]


def test_day_of_month_and_weekday_must_both_match():
    got = next_fire("0 9 1 * mon")  # the next Monday that is a 1st: June 2026
    assert got == dt.datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def test_every_minutes_is_a_true_interval():
    trigger = parse_schedule("every 90m", UTC)
    assert isinstance(trigger, IntervalTrigger)
    assert trigger.interval == dt.timedelta(minutes=90)
    first = trigger.get_next_fire_time(None, trigger.start_date)
    second = trigger.get_next_fire_time(first, first + dt.timedelta(seconds=1))
    assert second - first == dt.timedelta(minutes=90)


def test_every_45m_is_not_clock_aligned():
    trigger = parse_schedule("every 45m", UTC)
    now = dt.datetime.now(UTC)
    first = trigger.get_next_fire_time(None, now)
    assert dt.timedelta(minutes=44) < first - now <= dt.timedelta(minutes=45, seconds=1)
    assert parse_schedule("every 6h", UTC).interval == dt.timedelta(hours=6)
    assert parse_schedule("EVERY 2H", UTC).interval == dt.timedelta(hours=2)


def test_daily_and_weekly():
    assert next_fire("daily 9:05") == dt.datetime(2026, 3, 7, 9, 5, tzinfo=UTC)
    assert next_fire("daily 23:59") == dt.datetime(2026, 3, 6, 23, 59, tzinfo=UTC)
    assert next_fire("weekly mon 09:00") == dt.datetime(2026, 3, 9, 9, 0, tzinfo=UTC)
    assert next_fire("Weekly SUNDAY 07:30") == dt.datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
    assert next_fire("weekly fri 10:30") == dt.datetime(2026, 3, 6, 10, 30, tzinfo=UTC)


def test_timezone_is_honoured():
    berlin = ZoneInfo("Europe/Berlin")
    got = next_fire("daily 09:00", now=FRIDAY, tz=berlin)  # 10:00 UTC = 11:00 Berlin
    assert got == dt.datetime(2026, 3, 7, 9, 0, tzinfo=berlin)
    assert got.astimezone(UTC).hour == 8


def test_month_names_and_leap_day():
    assert next_fire("0 0 1 jan *") == dt.datetime(2027, 1, 1, 0, 0, tzinfo=UTC)
    assert next_fire("0 0 29 2 *") == dt.datetime(2028, 2, 29, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize("schedule,message", [
    ("", "a schedule is required"),
    ("1 2 3", "Invalid cron expression (need 5 fields): 1 2 3"),
    ("* * * * * *", "need 5 fields"),
    ("61 * * * *", "Invalid cron value: 61 (minute)"),
    ("0 24 * * *", "Invalid cron value: 24 (hour)"),
    ("0 0 0 * *", "Invalid cron value: 0 (day-of-month)"),
    ("0 0 * 13 *", "Invalid cron value: 13 (month)"),
    ("0 9 * * 8", "Invalid cron value: 8 (day-of-week)"),
    ("5abc * * * *", "Invalid cron value: 5abc (minute)"),
    ("0 9 * * fri-mon", "Invalid cron field: fri-mon (day-of-week)"),
    ("*/0 * * * *", "Invalid cron field: */0 (minute)"),
    ("1,,2 * * * *", "Invalid cron field"),
    ("0 9 * * L", "Invalid cron value: l (day-of-week)"),
    ("@daily", "need 5 fields"),
    ("0 0 30 2 *", "No matching cron time found"),
    ("every 0m", "interval must be between 1 and"),
    ("every 1d", "unknown interval, use every <N>m or every <N>h"),
    ("every 30 minutes", "unknown interval"),
    ("every 5s", "seconds only when GOLEM_ALLOW_SECOND_SCHEDULES=1"),
    ("daily 24:00", "invalid time: 24:00"),
    ("daily 9", "invalid time: 9"),
    ("daily", "use daily HH:MM"),
    ("weekly 1 09:00", "Unknown day name: 1"),
    ("weekly mon", "use weekly <day> HH:MM"),
])
def test_invalid_schedules_name_the_task_and_the_field(schedule, message, monkeypatch):
    monkeypatch.delenv(SECONDS_ENV, raising=False)
    with pytest.raises(ScheduleError) as err:
        validate_schedule(schedule, "backup")
    text = str(err.value)
    assert text.startswith(f'Task "backup": invalid schedule "{schedule}" (field "schedule"): ')
    assert message in text


def test_seconds_only_in_test_mode(monkeypatch):
    monkeypatch.setenv(SECONDS_ENV, "1")
    assert parse_schedule("every 2s", UTC).interval == dt.timedelta(seconds=2)
    monkeypatch.setenv(SECONDS_ENV, "0")
    with pytest.raises(ScheduleError):
        parse_schedule("every 2s", UTC)
