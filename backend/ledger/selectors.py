"""Read side of the ledger: every selector is scoped to a portfolio the user owns (another
user's portfolio is a 404)."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import django_filters as filters
from django.db.models import Q, QuerySet, Sum
from django.db.models.functions import TruncMonth, TruncYear
from django.shortcuts import get_object_or_404
from rest_framework.exceptions import ValidationError

from backend.portfolio.models import Portfolio

from .loading import BookPricer
from .models import Disposal, Income, Lot

ZERO = Decimal(0)


def portfolio_get(*, user, portfolio_id: int) -> Portfolio:
    return get_object_or_404(Portfolio, pk=portfolio_id, owner=user)


class _AssetFilter(filters.FilterSet):
    asset = filters.CharFilter(method="filter_asset", help_text="Asset symbol (AAPL, BTC), any case, or asset id.")
    connection = filters.NumberFilter(field_name="connection_id", help_text="Connection id.")

    def filter_asset(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(asset_id=int(value)) if value.isdigit() else queryset.filter(asset__symbol__iexact=value)


class LotFilter(_AssetFilter):
    status = filters.ChoiceFilter(choices=[("open", "open"), ("closed", "closed")], method="filter_status",
                                  help_text="open: still held (long or short); closed: sold or moved.")
    origin = filters.CharFilter(help_text="buy, short, reward, transfer, deposit, adjust.")

    class Meta:
        model = Lot
        fields = ["asset", "connection", "status", "origin"]

    def filter_status(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.exclude(remaining=0) if value == "open" else queryset.filter(remaining=0)


class DisposalFilter(_AssetFilter):
    year = filters.NumberFilter(field_name="disposed_at__year", help_text="Calendar year of the disposal (UTC).")
    term = filters.ChoiceFilter(choices=[("short", "short"), ("long", "long"), ("mixed", "mixed")])
    kind = filters.CharFilter(help_text="sale, swap, short_cover, fee, transfer_fee, cash_in_lieu, ...")
    incomplete = filters.BooleanFilter(help_text="true: gains not known (unknown basis or unpriced).")

    class Meta:
        model = Disposal
        fields = ["asset", "connection", "year", "term", "kind", "incomplete"]


class IncomeFilter(_AssetFilter):
    year = filters.NumberFilter(field_name="occurred_at__year", help_text="Calendar year (UTC).")
    kind = filters.CharFilter(help_text="dividend, withholding, interest, reward, fee, ...")

    class Meta:
        model = Income
        fields = ["asset", "connection", "year", "kind"]


def _filtered(filterset_class, queryset: QuerySet, params: Mapping[str, Any] | None) -> QuerySet:
    filterset = filterset_class(params or {}, queryset)
    if not filterset.is_valid():
        raise ValidationError(filterset.errors)
    return filterset.qs


def lots_list(*, portfolio: Portfolio, filters: Mapping[str, Any] | None = None) -> QuerySet[Lot]:
    queryset = Lot.objects.filter(portfolio=portfolio).select_related("asset").order_by("acquired_at", "key")
    return _filtered(LotFilter, queryset, filters)


def lots_needing_basis(*, portfolio: Portfolio) -> QuerySet[Lot]:
    """Every lot of unknown basis, open or already sold (the gains that touched a sold one are
    incomplete until it has a basis): deposits from outside, unpriced rewards, adjustments, and
    lots transferred on from one of those (PATCH on either sets it at the origin). A lot that
    moved on by a transfer is listed once, where it went."""
    return (Lot.objects.filter(portfolio=portfolio, cost_basis__isnull=True).exclude(origin="short")
            .exclude(remaining=0, closed_by="transfer").select_related("asset", "transaction")
            .order_by("acquired_at", "key"))


def disposals_list(*, portfolio: Portfolio, filters: Mapping[str, Any] | None = None) -> QuerySet[Disposal]:
    queryset = (Disposal.objects.filter(portfolio=portfolio).select_related("asset")
                .prefetch_related("links").order_by("-disposed_at", "-key"))
    return _filtered(DisposalFilter, queryset, filters)


def disposal_get(*, portfolio: Portfolio, disposal_id: int) -> Disposal:
    return get_object_or_404(Disposal.objects.select_related("asset"), pk=disposal_id, portfolio=portfolio)


def income_summary(*, portfolio: Portfolio, period: str = "month", by: str = "",
                   filters: Mapping[str, Any] | None = None) -> list[dict]:
    """Income totals per period and kind (and per asset or connection when asked)."""
    queryset = _filtered(IncomeFilter, Income.objects.filter(portfolio=portfolio), filters)
    trunc = TruncYear if period == "year" else TruncMonth
    keys = ["bucket", "kind"] + (["asset__symbol"] if by == "asset" else ["connection_id"] if by == "connection"
                                 else [])
    rows = (queryset.annotate(bucket=trunc("occurred_at")).values(*keys)
            .annotate(total=Sum("amount"), unknown=Sum("id", filter=Q(amount__isnull=True))).order_by(*keys))
    out = []
    for row in rows:
        item = {"period": row["bucket"].strftime("%Y" if period == "year" else "%Y-%m"), "kind": row["kind"],
                "amount": row["total"] or ZERO, "incomplete": row["unknown"] is not None}
        if by == "asset":
            item["asset"] = row["asset__symbol"] or ""
        elif by == "connection":
            item["connection"] = row["connection_id"]
        out.append(item)
    return out


def lots_valued(*, portfolio: Portfolio, lots: list[Lot]) -> dict[int, tuple[Decimal | None, Decimal | None]]:
    """Lot id -> (market value, unrealized P&L) at the latest price, for open lots; None when
    unpriced (or, for the P&L, of unknown basis). A short lot's P&L is its proceeds less the
    cost of buying it back."""
    open_lots = [lot for lot in lots if lot.remaining]
    pricer = BookPricer.load(asset_ids={lot.asset_id for lot in open_lots}, base=portfolio.base_currency,
                             latest=True)
    out: dict[int, tuple[Decimal | None, Decimal | None]] = {}
    for lot in open_lots:
        value = pricer.value(lot.asset_id, lot.remaining, None)
        basis = None if lot.cost_basis is None else (lot.cost_basis if lot.remaining > 0 else -lot.cost_basis)
        out[lot.pk] = (value, None if value is None or basis is None else value - basis)
    return out


@dataclass
class Holding:
    asset_id: int
    symbol: str
    asset_class: str
    quantity: Decimal
    cost_basis: Decimal | None
    average_cost: Decimal | None
    market_value: Decimal | None
    unrealized: Decimal | None
    price_at: Any = None
    weight: Decimal | None = None
    connections: tuple[int, ...] = ()


def holdings_list(*, portfolio: Portfolio) -> list[Holding]:
    """Open lots per asset across connections, valued at the latest price (an unpriced holding
    has no market value, never 0). Weights are shares of the priced holdings' value."""
    groups: dict[int, list[Lot]] = defaultdict(list)
    for lot in Lot.objects.filter(portfolio=portfolio).exclude(remaining=0).select_related("asset"):
        groups[lot.asset_id].append(lot)
    pricer = BookPricer.load(asset_ids=groups, base=portfolio.base_currency, latest=True)
    holdings = []
    for asset_id, lots in sorted(groups.items(), key=lambda kv: kv[1][0].asset.symbol):
        quantity = sum((lot.remaining for lot in lots), ZERO)
        known = all(lot.cost_basis is not None for lot in lots)
        # A short lot's "basis" is what its sale brought in: it counts against the holding.
        basis = sum((lot.cost_basis if lot.remaining > 0 else -lot.cost_basis for lot in lots), ZERO) \
            if known else None
        value = pricer.value(asset_id, quantity, None) if quantity else ZERO
        holdings.append(Holding(
            asset_id=asset_id, symbol=lots[0].asset.symbol, asset_class=lots[0].asset.asset_class, quantity=quantity,
            cost_basis=basis, average_cost=basis / quantity if basis is not None and quantity else None,
            market_value=value, unrealized=value - basis if value is not None and basis is not None else None,
            connections=tuple(sorted({lot.connection_id for lot in lots}))))
    total = sum((h.market_value for h in holdings if h.market_value is not None and h.market_value > 0), ZERO)
    for h in holdings:
        h.weight = h.market_value / total if total and h.market_value is not None else None
    return holdings


def ledger_totals(*, portfolio: Portfolio, year: int | None = None) -> dict:
    """Realized (optionally one year), unrealized and income totals for the portfolio."""
    disposals = Disposal.objects.filter(portfolio=portfolio)
    income = Income.objects.filter(portfolio=portfolio)
    if year is not None:
        disposals, income = disposals.filter(disposed_at__year=year), income.filter(occurred_at__year=year)
    holdings = holdings_list(portfolio=portfolio)
    return {
        "realized": disposals.aggregate(v=Sum("gain"))["v"] or ZERO,
        "realized_incomplete": disposals.filter(incomplete=True).count(),
        "income": income.exclude(kind="fee").aggregate(v=Sum("amount"))["v"] or ZERO,
        "fees": -(income.filter(kind="fee").aggregate(v=Sum("amount"))["v"] or ZERO),
        "unrealized": sum((h.unrealized for h in holdings if h.unrealized is not None), ZERO),
        "unpriced": [h.symbol for h in holdings if h.market_value is None],
        "market_value": sum((h.market_value for h in holdings if h.market_value is not None), ZERO),
        "cost_basis": sum((h.cost_basis for h in holdings if h.cost_basis is not None), ZERO),
    }
