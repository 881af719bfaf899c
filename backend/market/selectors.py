"""What the price store needs to know about holdings: read-only queries, no prices."""
from __future__ import annotations

from collections import defaultdict
from datetime import date

from django.db.models import Min

from backend.portfolio.models import Asset, Portfolio
from backend.sync.models import BrokerPosition, BrokerTransaction

from .models import Listing


def assets_held_now() -> dict[int, list[str]]:
    """Asset id -> the brokers it is held at now (open positions, cash included), the
    broker of the oldest connection first."""
    held: dict[int, list[str]] = defaultdict(list)
    rows = (BrokerPosition.objects.filter(is_open=True).order_by("asset_id", "connection_id")
            .values_list("asset_id", "connection__broker").distinct())
    for asset_id, broker in rows.iterator(chunk_size=20_000):
        if broker not in held[asset_id]:
            held[asset_id].append(broker)
    return dict(held)


def assets_held_since() -> dict[int, tuple[date, list[str]]]:
    """Asset id -> (the first day any connection's history touches it, the brokers it
    was held at): every asset held at any time needs daily closes from that day."""
    brokers: dict[int, list[str]] = defaultdict(list)
    firsts: dict[int, date] = {}
    rows = (BrokerTransaction.objects.filter(asset__isnull=False).values("asset_id", "connection__broker")
            .annotate(first=Min("occurred_at")).order_by("asset_id", "first"))
    for row in rows.iterator(chunk_size=20_000):
        asset_id, first = row["asset_id"], row["first"].date()
        firsts[asset_id] = min(first, firsts.get(asset_id, first))
        if row["connection__broker"] not in brokers[asset_id]:
            brokers[asset_id].append(row["connection__broker"])
    return {a: (firsts[a], brokers[a]) for a in firsts}


def assets_held_ever(since: dict[int, tuple[date, list[str]]] | None = None) -> dict[int, list[str]]:
    """Asset id -> brokers, for every asset held now or at any time before (sold ones too:
    history values them on the days they were held). `since`: assets_held_since(), if read."""
    ever = assets_held_since() if since is None else since
    held = {a: list(brokers) for a, (_, brokers) in ever.items()}
    for asset_id, brokers in assets_held_now().items():
        held[asset_id] = brokers + [b for b in held.get(asset_id, []) if b not in brokers]
    return held


def first_history_day() -> date | None:
    """The day of the oldest transaction of any connection (a cash deposit included): the
    first day a value history holds, so the first a currency's rate is needed on."""
    first = BrokerTransaction.objects.aggregate(first=Min("occurred_at"))["first"]
    return None if first is None else first.date()


def base_currencies() -> set[str]:
    return set(Portfolio.objects.values_list("base_currency", flat=True).distinct())


def assets_by_id(ids) -> dict[int, Asset]:
    return {a.id: a for a in Asset.objects.filter(id__in=ids)}


def listings_for(asset_ids) -> dict[int, list[Listing]]:
    """Active listings of each asset, every source's, each source's preferred quote first."""
    out: dict[int, list[Listing]] = defaultdict(list)
    rows = (Listing.objects.filter(asset_id__in=list(asset_ids), active=True).select_related("asset")
            .order_by("asset_id", "source", "rank"))
    for listing in rows:
        out[listing.asset_id].append(listing)
    return dict(out)
