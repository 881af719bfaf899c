"""A year's disposals in the columns of IRS Form 8949: one line per lot a disposal closed,
Part I (short term) first, then Part II (long term)."""
from __future__ import annotations

import csv
import io
from decimal import ROUND_HALF_UP, Decimal

from backend.portfolio.models import Portfolio

from .models import DisposalLot

COLUMNS = ["part", "(a) description of property", "(b) date acquired", "(c) date sold or disposed of",
           "(d) proceeds", "(e) cost or other basis", "(f) code", "(g) amount of adjustment", "(h) gain or (loss)"]
PARTS = {"short": "I", "long": "II"}
CENT = Decimal("0.01")


def _money(value: Decimal | None) -> str:
    return "" if value is None else str(value.quantize(CENT, rounding=ROUND_HALF_UP))


def _qty(value: Decimal) -> str:
    return format(value.normalize(), "f")


def form_8949_csv(*, portfolio: Portfolio, year: int) -> str:
    """Proceeds net of selling costs, basis with buying costs (Form 8949 instructions); code W
    with the disallowed loss as a positive adjustment. A line whose basis is unknown keeps
    columns (e) and (h) empty: it must be completed before filing."""
    links = (DisposalLot.objects.filter(disposal__portfolio=portfolio, disposal__disposed_at__year=year)
             .exclude(disposal__kind="return_of_capital")
             .select_related("disposal", "disposal__asset").order_by("disposal__disposed_at", "disposal__key",
                                                                    "position"))
    rows = []
    for link in links:
        d = link.disposal
        rows.append([PARTS.get(link.term, "I"), f"{_qty(link.quantity)} {d.asset.symbol}",
                     link.acquired_at.strftime("%m/%d/%Y"),
                     d.disposed_at.strftime("%m/%d/%Y"), _money(link.proceeds), _money(link.cost_basis),
                     "W" if link.wash_disallowed else "", _money(link.wash_disallowed) if link.wash_disallowed else "",
                     _money(link.gain)])
    rows.sort(key=lambda r: r[0] != "I")           # stable: Part I, then Part II, each by date sold
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    return out.getvalue()
