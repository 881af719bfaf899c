"""Alpaca's time formats, on integer microseconds so that sorting and paging stay exact.

- Timestamps are RFC3339 UTC with a fractional part (`2022-02-02T18:55:09.981482Z`).
- Activity ids start with a 17-digit New York wall-clock stamp: the docs' FILL example
  `20220202135509981::...` has `transaction_time` 2022-02-02T18:55:09.981Z (EST, -5 h)
  and `20190524113406977::...` has 2019-05-24T15:34:06.977Z (EDT, -4 h).
- Query times may be dates (`YYYY-MM-DD`, UTC midnight) or RFC3339 with up to nanoseconds.
"""
from __future__ import annotations

import re
from functools import lru_cache
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
US = 1_000_000
DAY_US = 86_400 * US

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?)?$")


def to_dt(t_us: int) -> datetime:
    return EPOCH + timedelta(microseconds=t_us)


def from_dt(dt: datetime) -> int:
    delta = dt - EPOCH
    return (delta.days * 86_400 + delta.seconds) * US + delta.microseconds


@lru_cache(maxsize=8192)
def _day(days: int, sep: str) -> str:
    return (EPOCH + timedelta(days=days)).strftime(f"%Y{sep}%m{sep}%d")


def _split(t_us: int) -> tuple[int, int, int, int, int]:
    days, rest = divmod(t_us, DAY_US)
    seconds, micros = divmod(rest, US)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    return days, hours, minutes, seconds, micros


def rfc3339(t_us: int) -> str:
    """2022-02-02T18:55:09.981482Z (integer arithmetic: pages render thousands of these)"""
    days, h, m, s, micros = _split(t_us)
    return f"{_day(days, '-')}T{h:02d}:{m:02d}:{s:02d}.{micros:06d}Z"


def ny_offset_us(t_us: int) -> int:
    """New York's UTC offset at that instant, in microseconds (negative)."""
    return int(to_dt(t_us).astimezone(NEW_YORK).utcoffset().total_seconds()) * US


def ny_date(t_us: int, offset_us: int | None = None) -> date:
    offset_us = ny_offset_us(t_us) if offset_us is None else offset_us
    return (EPOCH + timedelta(microseconds=t_us + offset_us)).date()


def activity_id_prefix(t_us: int, offset_us: int | None = None) -> str:
    """The 17-digit New York stamp an activity id starts with (millisecond precision)."""
    offset_us = ny_offset_us(t_us) if offset_us is None else offset_us
    days, h, m, s, micros = _split(t_us + offset_us)
    return f"{_day(days, '')}{h:02d}{m:02d}{s:02d}{micros // 1000:03d}"


def ny_day_bounds_us(day: date) -> tuple[int, int]:
    """[start, end) of a New York calendar day, as UTC microseconds."""
    start = datetime(day.year, day.month, day.day, tzinfo=NEW_YORK)
    nxt = start + timedelta(days=1)
    nxt = datetime(nxt.year, nxt.month, nxt.day, tzinfo=NEW_YORK)
    return from_dt(start.astimezone(timezone.utc)), from_dt(nxt.astimezone(timezone.utc))


def parse_ns(text: str) -> int:
    """A query time as integer nanoseconds since the epoch; ValueError if malformed."""
    match = _RFC3339.match(text.strip())
    if not match:
        raise ValueError(text)
    y, mo, d, h, mi, s, frac, zone = match.groups()
    dt = datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0), tzinfo=timezone.utc)
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        dt -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    nanos = int((frac or "").ljust(9, "0"))
    return from_dt(dt) * 1000 + nanos


def parse_date(text: str) -> date:
    return date.fromisoformat(text.strip())
