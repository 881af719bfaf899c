from django.conf import settings
from django.db import models


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
