"""What reconcile proves or fails to prove: typed breaks, and how far each connection's
history has been reconciled (backend/reconcile/services.py writes both)."""
from __future__ import annotations

from django.db import models
from django.db.models import Q

from backend.connections.models import BrokerConnection
from backend.core.fields import decimal_field, raw_json_field
from backend.portfolio.models import Asset, Portfolio
from backend.sync.models import BrokerTransaction, SyncRun


class Break(models.Model):
    """One way a connection's stored history fails to add up to what the broker reports, for
    one asset or one currency of cash. One row per break: a later run that still finds it
    updates it (last seen); a run that no longer finds it resolves it (resolved at)."""

    class Kind(models.TextChoices):
        HISTORY_MISSING = "history_missing", "history missing"
        UNEXPLAINED_DISPOSAL = "unexplained_disposal", "unexplained disposal"
        SPLIT = "split", "split not applied or applied twice"
        TRANSFER = "transfer", "unmatched transfer"
        PRECISION = "precision", "precision only"
        CASH = "cash", "cash does not add up"

    connection = models.ForeignKey(BrokerConnection, on_delete=models.CASCADE, related_name="breaks")
    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="breaks")
    # "asset:<id>" or "cash:<CCY>": one open break per key and connection.
    key = models.CharField(max_length=48)
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, null=True, blank=True, related_name="breaks")
    currency = models.CharField(max_length=16, blank=True, default="", help_text="Cash breaks: the currency.")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    broker_quantity = decimal_field(help_text="What the broker reports (0 when it reports nothing).")
    ledger_quantity = decimal_field(help_text="What the stored history adds up to.")
    difference = decimal_field(help_text="broker_quantity - ledger_quantity.")
    precision = decimal_field(null=True, blank=True, help_text="Precision-only breaks: the step compared at.")
    window_start = models.DateTimeField(null=True, blank=True, help_text="Null: before the first fetched record.")
    window_end = models.DateTimeField(null=True, blank=True)
    detail = models.TextField(blank=True, default="")
    resolution = models.TextField(blank=True, default="", help_text="What would resolve it.")
    counterpart = models.ForeignKey(BrokerTransaction, on_delete=models.SET_NULL, null=True, blank=True,
                                    related_name="+", help_text="Transfer breaks: the unmatched leg elsewhere.")
    legs = raw_json_field(help_text="The missing trade's other legs: [{symbol, asset_class, difference}] of the "
                                    "quote, cash or commission asset that differ by it too (not breaks of their own).")
    found_by_run = models.ForeignKey(SyncRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    last_run = models.ForeignKey(SyncRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    resolved_by_run = models.ForeignKey(SyncRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    repulled_at = models.DateTimeField(null=True, blank=True, help_text="When its window was last asked for again.")
    repulls = models.PositiveIntegerField(default=0, help_text="Re-pulls of its window that did not resolve it.")
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["connection", "key"], condition=Q(resolved_at__isnull=True),
                                               name="break_one_open_per_connection_key")]
        indexes = [models.Index(fields=["portfolio", "resolved_at"], name="break_portfolio_open_idx")]
        ordering = ["-last_seen_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.key} at connection {self.connection_id}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


class ReconcileMark(models.Model):
    """How far a connection's history was reconciled: at its last reconcile every asset and
    currency either added up or had an open break with its own window, so a new difference
    lies in what was fetched after `through` (the transactions watermark then)."""

    connection = models.OneToOneField(BrokerConnection, on_delete=models.CASCADE, related_name="reconcile_mark")
    through = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
