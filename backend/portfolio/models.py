from django.conf import settings
from django.db import models

from backend.core.fields import decimal_field


class Asset(models.Model):
    """One canonical instrument: a coin is one asset whatever an exchange calls it."""

    class AssetClass(models.TextChoices):
        EQUITY = "equity"
        CRYPTO = "crypto"
        FIAT = "fiat"
        OPTION = "option"
        OTHER = "other"

    symbol = models.CharField(max_length=64)
    asset_class = models.CharField(max_length=16, choices=AssetClass.choices)
    exchange = models.CharField(max_length=32, blank=True, default="")
    currency = models.CharField(max_length=8, default="USD", help_text="Currency it is priced in.")
    name = models.CharField(max_length=128, blank=True, default="")
    # Units of the underlying per unit held (an equity option is 100 shares); value = qty x price x multiplier.
    multiplier = models.DecimalField(max_digits=20, decimal_places=6, default=1)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["asset_class", "symbol"], name="asset_unique_class_symbol")]
        ordering = ["asset_class", "symbol"]

    def __str__(self) -> str:
        return f"{self.symbol} ({self.asset_class})"


class Portfolio(models.Model):
    """A user's portfolio. A user has several; each connection feeds exactly one."""

    class CostBasisMethod(models.TextChoices):
        FIFO = "fifo", "first in, first out"
        LIFO = "lifo", "last in, first out"
        HIFO = "hifo", "highest cost first"
        AVERAGE = "average", "average cost (pooled per asset and connection)"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="portfolios")
    name = models.CharField(max_length=128)
    base_currency = models.CharField(max_length=8, default="USD")
    # How a disposal without a lot pick closes lots (a pick is specific identification).
    cost_basis_method = models.CharField(max_length=16, choices=CostBasisMethod.choices,
                                         default=CostBasisMethod.FIFO)
    wash_sales = models.BooleanField(default=True, help_text="Apply US wash-sale rules to equities "
                                                             "(USD portfolios only).")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="portfolio_unique_owner_name")]
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class DailyValue(models.Model):
    """A portfolio's (connection null) or one of its connections' value at the end of a UTC
    day, in the portfolio's base currency: holdings x that day's close, plus cash. `flow` is
    the day's net external flow (deposits and transfers in minus withdrawals and transfers
    out, valued at the day's close), counted as arriving at the end of the day."""

    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="daily_values")
    connection = models.ForeignKey("connections.BrokerConnection", on_delete=models.CASCADE, null=True, blank=True,
                                   related_name="daily_values")
    day = models.DateField()
    currency = models.CharField(max_length=8)
    value = decimal_field(help_text="Priced holdings plus cash; unpriced holdings are left out.")
    cash = decimal_field()
    flow = decimal_field(help_text="Net external flow of the day (in positive, out negative).")
    # Asset ids held that day without a close (or without a rate into the base currency).
    unpriced = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["portfolio", "day"], condition=models.Q(connection__isnull=True),
                                    name="dailyvalue_unique_portfolio_day"),
            models.UniqueConstraint(fields=["connection", "day"], condition=models.Q(connection__isnull=False),
                                    name="dailyvalue_unique_connection_day"),
        ]
        indexes = [models.Index(fields=["portfolio", "day"], name="dailyvalue_portfolio_day_idx")]
        ordering = ["day"]


class HistoryState(models.Model):
    """Where a portfolio's value history stands, and what is waiting to be recomputed.

    `dirty_since` is the first day to recompute (None: nothing pending); every request bumps
    `requests`, so a rebuild that started before a newer request leaves it pending. `checkpoint`
    holds each connection's holdings and cash at the start of `through` (the last stored day):
    extending the history by a day starts there instead of re-reading every transaction."""

    portfolio = models.OneToOneField(Portfolio, on_delete=models.CASCADE, primary_key=True,
                                     related_name="history_state")
    through = models.DateField(null=True, blank=True, help_text="Last day stored.")
    currency = models.CharField(max_length=8, blank=True, default="")
    checkpoint = models.JSONField(default=dict, blank=True)
    dirty_since = models.DateField(null=True, blank=True)
    requests = models.PositiveBigIntegerField(default=0)
    queued = models.BooleanField(default=False, help_text="A rebuild task is on the portfolio queue.")
    queued_at = models.DateTimeField(null=True, blank=True)
    rebuilt_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0, help_text="How long the last rebuild took.")

    class Meta:
        indexes = [models.Index(fields=["through"], name="historystate_through_idx")]


class PortfolioValue(models.Model):
    """The latest total of each portfolio from the latest prices, refreshed for every
    portfolio at once by one SQL statement (backend/portfolio/snapshot.py)."""

    portfolio = models.OneToOneField(Portfolio, on_delete=models.CASCADE, primary_key=True,
                                     related_name="latest_value")
    currency = models.CharField(max_length=8)
    total = decimal_field(help_text="Priced holdings plus cash, in `currency`; unpriced holdings left out.")
    cash = decimal_field()
    holdings = models.PositiveIntegerField(default=0, help_text="Holdings valued (cash balances included).")
    unpriced = models.PositiveIntegerField(default=0, help_text="Holdings left out: no price or no rate.")
    oldest_price_at = models.DateTimeField(null=True, blank=True)
    computed_at = models.DateTimeField()
