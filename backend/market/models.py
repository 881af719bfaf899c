"""The price store: prices per asset (never per user), in the quote currency the source gave.

A price is (asset, quote, interval, time) -> price, with the source that gave it. `interval`
is `1d` for a daily close (time = 00:00 UTC of the day) or `latest` for a last trade (time =
when it traded). Writes are idempotent on (asset, quote, interval, time): a bar fetched again
is the same row. Conversion into a portfolio's base currency happens when a value is asked
for (backend/market/rates.py), never in storage.
"""
from __future__ import annotations

from django.db import models

from backend.core.fields import decimal_field
from backend.portfolio.models import Asset


class Listing(models.Model):
    """One market a source prices an asset in: the pricing rule's facts. Which listing prices
    a holding is decided when valuing (the broker it is held at first, then any other)."""

    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="listings")
    source = models.CharField(max_length=32, help_text="Market-data source, e.g. binance.")
    source_symbol = models.CharField(max_length=64, help_text="What the source calls it: BTCUSDT, XXBTZUSD.")
    quote = models.CharField(max_length=16, help_text="Currency or coin the price is in.")
    rank = models.PositiveSmallIntegerField(default=0, help_text="The source's preference among its quotes "
                                                                 "for this asset; 0 first.")
    active = models.BooleanField(default=True)
    checked_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["asset", "source", "quote"], name="listing_unique")]
        indexes = [models.Index(fields=["source", "active"], name="listing_source_idx")]


class Price(models.Model):
    class Interval(models.TextChoices):
        LATEST = "latest"
        DAY = "1d"

    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="prices")
    quote = models.CharField(max_length=16)
    interval = models.CharField(max_length=8, choices=Interval.choices)
    at = models.DateTimeField(help_text="1d: the day at 00:00 UTC; latest: when it traded.")
    price = decimal_field()
    source = models.CharField(max_length=32)
    fetched_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["asset", "quote", "interval", "at"], name="price_unique")]
        indexes = [models.Index(fields=["asset", "interval", "-at"], name="price_asset_time_idx")]

    def __str__(self) -> str:
        return f"{self.asset_id} {self.price} {self.quote} {self.interval} {self.at:%Y-%m-%d %H:%M}"
