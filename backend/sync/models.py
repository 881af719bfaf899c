"""What a sync writes: its runs, its cursors, and the broker's positions, transactions, orders.

Broker ids are unique per connection (two users, or paper and live, may see the same id),
and every row keeps the broker's raw record."""
from __future__ import annotations

from django.db import models
from django.db.models import Q

from backend.connections.models import BrokerConnection
from backend.core.fields import decimal_field, raw_json_field
from backend.portfolio.models import Asset, Portfolio


class SyncRun(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    class Step(models.TextChoices):
        POSITIONS = "positions"
        TRANSACTIONS = "transactions"
        ORDERS = "orders"
        RECONCILE = "reconcile"
        WRITE_LOG = "write_log"

    ACTIVE_STATES = (State.QUEUED, State.RUNNING)

    connection = models.ForeignKey(BrokerConnection, on_delete=models.CASCADE, related_name="sync_runs")
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    trigger = models.CharField(max_length=16, default="api", help_text="api, schedule or initial")
    current_step = models.CharField(max_length=16, blank=True, default="")
    failed_step = models.CharField(max_length=16, blank=True, default="")
    # {step: {started_at, finished_at, duration_ms, fetched, created, updated, rewritten, changed, closed, skipped,
    #         requests}}
    steps = models.JSONField(default=dict, blank=True)
    error_kind = models.CharField(max_length=32, blank=True, default="")
    error_message = models.CharField(max_length=500, blank=True, default="", help_text="Never holds a secret.")
    reconcile_differences = raw_json_field()
    skipped_records = raw_json_field()
    attempts = models.PositiveIntegerField(default=0, help_text="Step retries so far.")
    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Lease: refreshed while a step runs.")
    changed_since = models.DateTimeField(
        null=True, blank=True, help_text="Earliest occurred_at among the transactions this run created or "
                                         "changed: what depends on history is recomputed from there.")

    class Meta:
        constraints = [
            # One run per connection at a time, enforced by the database itself.
            models.UniqueConstraint(fields=["connection"], condition=Q(state__in=["queued", "running"]),
                                    name="syncrun_one_active_per_connection"),
        ]
        indexes = [models.Index(fields=["state", "heartbeat_at"], name="syncrun_state_heartbeat_idx")]
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"run {self.pk} {self.state}"

    @property
    def is_active(self) -> bool:
        return self.state in self.ACTIVE_STATES


class SyncCursor(models.Model):
    """How far each stream of a connection has been fetched. Saved in the same transaction
    as the rows it covers; its watermark never moves backwards."""

    connection = models.ForeignKey(BrokerConnection, on_delete=models.CASCADE, related_name="cursors")
    stream = models.CharField(max_length=32)
    cursor = raw_json_field()
    watermark = models.CharField(max_length=64, blank=True, default="")
    coverage = raw_json_field()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["connection", "stream"], name="cursor_unique_connection_stream")]


class BrokerPosition(models.Model):
    connection = models.ForeignKey(BrokerConnection, on_delete=models.CASCADE, related_name="positions")
    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="positions")
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="positions")
    broker_symbol = models.CharField(max_length=64)
    quantity = decimal_field(help_text="Signed: a short position is negative.")
    avg_entry_price = decimal_field(null=True, blank=True)
    cost_basis = decimal_field(null=True, blank=True)
    market_value = decimal_field(null=True, blank=True)
    current_price = decimal_field(null=True, blank=True)
    is_open = models.BooleanField(default=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    raw = raw_json_field()
    first_seen_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["connection", "broker_symbol"],
                                               name="position_unique_connection_symbol")]
        indexes = [models.Index(fields=["connection", "is_open"], name="position_open_idx")]
        ordering = ["broker_symbol"]


class BrokerTransaction(models.Model):
    connection = models.ForeignKey(BrokerConnection, on_delete=models.CASCADE, related_name="transactions")
    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="transactions")
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, null=True, blank=True, related_name="transactions")
    broker_id = models.CharField(max_length=128)
    type = models.CharField(max_length=16)
    broker_type = models.CharField(max_length=48, blank=True, default="")
    status = models.CharField(max_length=16, default="executed")
    occurred_at = models.DateTimeField()
    broker_symbol = models.CharField(max_length=64, blank=True, default="")
    quantity = decimal_field(null=True, blank=True, help_text="Signed change of the asset holding.")
    price = decimal_field(null=True, blank=True)
    amount = decimal_field(null=True, blank=True, help_text="Signed change of cash.")
    fee = decimal_field(null=True, blank=True)
    currency = models.CharField(max_length=16, blank=True, default="USD")
    side = models.CharField(max_length=8, blank=True, default="")
    order_id = models.CharField(max_length=128, blank=True, default="")
    description = models.TextField(blank=True, default="")
    raw = raw_json_field()
    first_seen_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["connection", "broker_id"],
                                               name="transaction_unique_connection_broker_id")]
        indexes = [
            models.Index(fields=["connection", "occurred_at"], name="transaction_time_idx"),
            models.Index(fields=["connection", "type"], name="transaction_type_idx"),
        ]
        ordering = ["-occurred_at", "-id"]


class BrokerOrder(models.Model):
    connection = models.ForeignKey(BrokerConnection, on_delete=models.CASCADE, related_name="orders")
    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="orders")
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, null=True, blank=True, related_name="orders")
    broker_id = models.CharField(max_length=128)
    client_order_id = models.CharField(max_length=128, blank=True, default="")
    broker_symbol = models.CharField(max_length=64, blank=True, default="")
    side = models.CharField(max_length=8, blank=True, default="")
    order_type = models.CharField(max_length=32, blank=True, default="")
    time_in_force = models.CharField(max_length=32, blank=True, default="")
    status = models.CharField(max_length=24)
    broker_status = models.CharField(max_length=48, blank=True, default="")
    quantity = decimal_field(null=True, blank=True)
    notional = decimal_field(null=True, blank=True)
    filled_quantity = decimal_field(default=0)
    filled_avg_price = decimal_field(null=True, blank=True)
    limit_price = decimal_field(null=True, blank=True)
    stop_price = decimal_field(null=True, blank=True)
    submitted_at = models.DateTimeField()
    updated_at_broker = models.DateTimeField(null=True, blank=True)
    filled_at = models.DateTimeField(null=True, blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True)
    raw = raw_json_field()
    first_seen_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["connection", "broker_id"],
                                               name="order_unique_connection_broker_id")]
        indexes = [
            models.Index(fields=["connection", "status"], name="order_status_idx"),
            models.Index(fields=["connection", "submitted_at"], name="order_time_idx"),
        ]
        ordering = ["-submitted_at", "-id"]
