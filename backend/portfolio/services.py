"""Writes on portfolios and assets."""
from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser

from backend.brokers.dtos import AssetRef

from .models import Asset, Portfolio


def portfolio_for_connection(*, owner: AbstractBaseUser, name: str) -> Portfolio:
    portfolio, _ = Portfolio.objects.get_or_create(owner=owner, name=name[:128])
    return portfolio


def assets_resolve(refs: Iterable[AssetRef]) -> dict[tuple[str, str], Asset]:
    """(asset_class, symbol) -> Asset for every ref, creating the missing ones in bulk."""
    wanted = {(str(r.asset_class), r.symbol): r for r in refs}
    if not wanted:
        return {}
    found = _existing(wanted)
    missing = [Asset(symbol=r.symbol, asset_class=str(r.asset_class), exchange=r.exchange, currency=r.currency,
                     multiplier=r.multiplier)
               for key, r in wanted.items() if key not in found]
    if missing:
        # Another worker may create the same asset at the same moment: ignore and re-read.
        Asset.objects.bulk_create(missing, ignore_conflicts=True)
        found = _existing(wanted)
    return found


def _existing(wanted) -> dict[tuple[str, str], Asset]:
    symbols = {s for _, s in wanted}
    return {(a.asset_class, a.symbol): a for a in Asset.objects.filter(symbol__in=symbols)
            if (a.asset_class, a.symbol) in wanted}
