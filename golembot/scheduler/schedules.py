"""Schedule strings → APScheduler triggers, with our own cron parser.

Four formats are accepted (decisions.md, scheduler.md §3):

* 5-field cron ``minute hour day month weekday`` in standard cron numbering: weekday 0 **and** 7
  are Sunday, ``sun``…``sat`` and ``jan``…``dec`` may be used as names;
* ``every <N>m`` / ``every <N>h`` — a true interval (``every 90m`` = every 90 minutes, counted
  from when the task was armed);
* ``daily HH:MM``;
* ``weekly <day> HH:MM`` (``mon`` or ``monday``).

Why not ``CronTrigger.from_crontab``: APScheduler numbers weekdays 0 = Monday and would make
``0 9 * * 1-5`` fire Tuesday to Saturday; it also reads ``*/90`` as an error and accepts
extras (``last``, ``1st mon``). So every field is parsed here into a set of numbers and handed
to :class:`CronTrigger` as an explicit list, with weekdays as names.

``every <N>s`` exists for tests and development only: it is accepted when the environment has
``GOLEM_ALLOW_SECOND_SCHEDULES=1`` and rejected otherwise.
"""
from __future__ import annotations

import calendar
import datetime as _dt
import os
import re

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

SECONDS_ENV = "GOLEM_ALLOW_SECOND_SCHEDULES"
DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
FULL_DAY_NAMES = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
# (APScheduler keyword, display name, low, high, names → value)
CRON_FIELDS = (
    ("minute", "minute", 0, 59, {}),
    ("hour", "hour", 0, 23, {}),
    ("day", "day-of-month", 1, 31, {}),
    ("month", "month", 1, 12, {n: i + 1 for i, n in enumerate(MONTH_NAMES)}),
    ("day_of_week", "day-of-week", 0, 7, {n: i for i, n in enumerate(DAY_NAMES)}),
)
MAX_INTERVAL = {"s": 86400, "m": 525600, "h": 8760}  # one day of seconds, a year otherwise
REACH_YEARS = 8  # Feb 29 needs up to 4; a date that never comes is an error at registration

_EVERY = re.compile(r"every\s+(\d+)\s*([a-z]*)")
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})")


class ScheduleError(ValueError):
    """A schedule that cannot be parsed; the message names the task and the problem."""


def seconds_allowed() -> bool:
    return os.environ.get(SECONDS_ENV) == "1"


def parse_schedule(text, timezone=None, task_name=None):
    """The APScheduler trigger for ``text``; :class:`ScheduleError` when it is invalid.

    ``task_name`` only goes into the error message (``Task "backup": invalid schedule …``).
    """
    try:
        return _trigger(text, timezone)
    except ScheduleError as exc:
        raise ScheduleError(describe_error(text, str(exc), task_name)) from None


def validate_schedule(text, task_name=None) -> None:
    """Raise :class:`ScheduleError` unless ``text`` is a valid, reachable schedule."""
    parse_schedule(text, "UTC", task_name)


def describe_error(text, message: str, task_name=None) -> str:
    shown = text if isinstance(text, str) else repr(text)
    where = f'Task "{task_name}": ' if task_name is not None else ""
    return f'{where}invalid schedule "{shown}" (field "schedule"): {message}'


# -- the four formats -----------------------------------------------------------------------------
def _trigger(text, timezone):
    if not isinstance(text, str) or not text.strip():
        raise ScheduleError("a schedule is required (5-field cron, every <N>m, every <N>h, "
                            "daily HH:MM or weekly <day> HH:MM)")
    raw = text.strip()
    low = raw.lower()
    words = low.split()
    if words[0] == "every":
        return _interval(low, timezone)
    if words[0] == "daily":
        if len(words) != 2:
            raise ScheduleError("use daily HH:MM, e.g. daily 09:30")
        hour, minute = _clock(words[1])
        return CronTrigger(hour=hour, minute=minute, second=0, timezone=timezone)
    if words[0] == "weekly":
        if len(words) != 3:
            raise ScheduleError("use weekly <day> HH:MM, e.g. weekly mon 09:00")
        day = _day_name(words[1])
        hour, minute = _clock(words[2])
        return CronTrigger(day_of_week=_APS_DAYS[day], hour=hour, minute=minute, second=0,
                           timezone=timezone)
    return cron_trigger(raw, timezone)


def _interval(low: str, timezone):
    match = _EVERY.fullmatch(low)
    units = "every <N>m or every <N>h"
    if not match or match.group(2) not in ("m", "h", "s"):
        raise ScheduleError(f"unknown interval, use {units} (e.g. every 30m)")
    n, unit = int(match.group(1)), match.group(2)
    if unit == "s" and not seconds_allowed():
        raise ScheduleError(f"unknown interval, use {units} "
                            f"(seconds only when {SECONDS_ENV}=1, for tests)")
    if not 1 <= n <= MAX_INTERVAL[unit]:
        raise ScheduleError(f"interval must be between 1 and {MAX_INTERVAL[unit]}{unit}")
    key = {"s": "seconds", "m": "minutes", "h": "hours"}[unit]
    return IntervalTrigger(timezone=timezone, **{key: n})


def _clock(token: str) -> tuple[int, int]:
    match = _CLOCK.fullmatch(token)
    if not match:
        raise ScheduleError(f"invalid time: {token} (use HH:MM)")
    hour, minute = int(match.group(1)), int(match.group(2))
    if hour > 23 or minute > 59:
        raise ScheduleError(f"invalid time: {token} (00:00 to 23:59)")
    return hour, minute


def _day_name(token: str) -> int:
    if token in DAY_NAMES:
        return DAY_NAMES.index(token)
    if token in FULL_DAY_NAMES:
        return FULL_DAY_NAMES.index(token)
    raise ScheduleError(f"Unknown day name: {token} (use {', '.join(DAY_NAMES)})")


# -- 5-field cron ---------------------------------------------------------------------------------
# APScheduler's day names, indexed by cron numbering (0 = Sunday).
_APS_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def parse_cron(expr: str) -> list[set]:
    """Five sets of values (minute, hour, day, month, weekday 0–6 with 0 = Sunday)."""
    fields = expr.split()
    if len(fields) != 5:
        raise ScheduleError(f"Invalid cron expression (need 5 fields): {expr}")
    out = []
    for text, (_, label, lo, hi, names) in zip(fields, CRON_FIELDS):
        values = _parse_field(text.lower(), lo, hi, names, label)
        if label == "day-of-week" and 7 in values:
            values = (values - {7}) | {0}
        out.append(values)
    return out


def _parse_field(text: str, lo: int, hi: int, names: dict, label: str) -> set:
    values: set = set()
    for part in text.split(","):
        if not part:
            raise ScheduleError(f"Invalid cron field: {text} ({label})")
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) < 1:
                raise ScheduleError(f"Invalid cron field: {part} ({label})")
            step = int(step_text)
        if base == "*":
            start, end = lo, hi
            if label == "day-of-week":
                end = 6  # 7 is only another name for Sunday
        elif "-" in base:
            a, _, b = base.partition("-")
            start, end = _value(a, lo, hi, names, label), _value(b, lo, hi, names, label)
            if start > end:
                raise ScheduleError(f"Invalid cron field: {part} ({label})")
        else:
            start = _value(base, lo, hi, names, label)
            end = (6 if label == "day-of-week" else hi) if slash else start  # 5/15 = 5-59/15
        values.update(range(start, end + 1, step))
    return values


def _value(token: str, lo: int, hi: int, names: dict, label: str) -> int:
    if token in names:
        return names[token]
    if not token.isdigit() or not lo <= int(token) <= hi:
        raise ScheduleError(f"Invalid cron value: {token} ({label})")
    return int(token)


def cron_trigger(expr: str, timezone=None) -> CronTrigger:
    """A :class:`CronTrigger` with explicit value lists (weekdays as names)."""
    minute, hour, day, month, dow = parse_cron(expr)
    _check_reachable(expr, day, month, dow)
    return CronTrigger(
        minute=_join(minute, 0, 59), hour=_join(hour, 0, 23), day=_join(day, 1, 31),
        month=_join(month, 1, 12),
        day_of_week="*" if dow == set(range(7)) else ",".join(_APS_DAYS[d] for d in sorted(dow)),
        second=0, timezone=timezone)


def _join(values: set, lo: int, hi: int) -> str:
    if values == set(range(lo, hi + 1)):
        return "*"
    return ",".join(str(v) for v in sorted(values))


def _check_reachable(expr: str, days: set, months: set, dows: set) -> None:
    """Day-of-month and weekday must both match (as APScheduler does); reject dates that never
    come (``0 0 30 2 *``) instead of arming a job that never fires."""
    today = _dt.date.today()
    for year in range(today.year, today.year + REACH_YEARS + 1):
        for month in sorted(months):
            last = calendar.monthrange(year, month)[1]
            for day in sorted(days):
                if day > last:
                    break
                # date.weekday(): 0 = Monday → cron numbering 0 = Sunday
                if (_dt.date(year, month, day).weekday() + 1) % 7 in dows:
                    return
    raise ScheduleError(f"No matching cron time found within {REACH_YEARS} years: {expr}")
