"""``STATS_CRON`` (a standard 5-field crontab line) as an APScheduler 3 ``CronTrigger``.

``CronTrigger.from_crontab`` hands the day-of-week field to APScheduler, which counts Monday as
0: ``1-5`` would mean Tuesday to Saturday there, while crontab(5) means Monday to Friday (0 and 7
are Sunday). The field is therefore translated to day names first. Cron fires when *either* a
restricted day of month or a restricted day of week matches, APScheduler only when both do: such
a line is refused rather than run on other days than its author expects.
"""

from __future__ import annotations

import datetime as dt

from apscheduler.triggers.cron import CronTrigger

DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _day_number(token: str) -> int:
    name = token.lower()
    if name in DAY_NAMES:
        return DAY_NAMES.index(name)
    if not token.isdigit() or int(token) > 7:
        raise ValueError(f"day of week {token!r} is not 0-7 or sun-sat")
    return int(token) % 7


def _day_of_week(field: str) -> str:
    """A crontab day-of-week field as a list of day names APScheduler reads the same way."""
    if field in ("*", "?"):
        return "*"
    days: set[int] = set()
    for part in field.split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise ValueError(f"step {step_text!r} in the day of week is not a positive number")
        if span == "*":
            first, last = 0, 6
        elif "-" in span:
            low, high = span.split("-", 1)
            first, last = _day_number(low), _day_number(high) or 7  # "5-7" / "5-0" end on Sunday
        else:
            first = _day_number(span)
            last = 6 if step else first  # "1/2": from Monday on, every second day
        if first > last:
            raise ValueError(f"day-of-week range {span!r} runs backwards")
        days.update(day % 7 for day in range(first, last + 1, step or 1))
    return ",".join(DAY_NAMES[day] for day in sorted(days))


def cron_trigger(expression: str, timezone: dt.tzinfo | str) -> CronTrigger:
    """Parse a crontab(5) line (minute hour day-of-month month day-of-week) into a trigger."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"wrong number of fields; got {len(fields)}, expected 5")
    minute, hour, day, month, day_of_week = fields
    if day not in ("*", "?") and day_of_week not in ("*", "?"):
        raise ValueError("restrict the day of month or the day of week, not both")
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=_day_of_week(day_of_week),
        timezone=timezone,
    )
