"""When the US equity market is open: NYSE regular hours (09:30-16:00 New York) on
weekdays that are not NYSE holidays. Holidays come from the `holidays` package's NYSE
financial calendar (kept current by its maintainers) rather than a list of our own.
Early closes (13:00 on some eves) are treated as full days: a refresh or two too many."""
from __future__ import annotations

from datetime import datetime, time
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

NEW_YORK = ZoneInfo("America/New_York")
OPEN, CLOSE = time(9, 30), time(16, 0)


@lru_cache(maxsize=16)
def _holidays(year: int) -> holidays.HolidayBase:
    return holidays.financial_holidays("NYSE", years=[year])


def nyse_open(at: datetime) -> bool:
    local = at.astimezone(NEW_YORK)
    if local.weekday() >= 5 or local.date() in _holidays(local.year):
        return False
    return OPEN <= local.time() < CLOSE
