"""The ledger's rows: lots, disposals and the lots each closed, income, the user's lot picks
and basis entries, and one state row per portfolio.

Everything but picks and basis entries is derived: a recompute rewrites it from the stored
transactions. Derived rows carry a `key` built from the transactions' stable identity
(connection + broker id), so a recompute updates rows in place (their ids, used in URLs,
stay) and the same transactions always give the same rows.

Foreign keys of derived rows (to their portfolio, assets, connections, transactions and to
each other) have no database constraint: a recompute writes them from rows it read in the
same transaction while holding the portfolio's lock, and checking ~900,000 references at
commit took longer than the engine on a 200,000-activity account; the last 200,000 of them,
to the portfolio (each a key-share lock of the same row), made most of a first build's
1.6 s commit (benchmarks/ledger.py). Deletes still cascade, null out or are protected as declared
(Django applies on_delete itself). The user's own entries (picks, basis) and the state row
keep every constraint. Derived rows have no index of their own on
the portfolio (the unique (portfolio, key) index serves it) nor on the asset (only deleting
an asset looks rows up by it alone): every index is maintained for every row a build writes.
"""
from __future__ import annotations

from django.db import models

from backend.connections.models import BrokerConnection
from backend.core.fields import decimal_field
from backend.portfolio.models import Asset, Portfolio


class Term(models.TextChoices):
    SHORT = "short"
    LONG = "long"
    MIXED = "mixed"


class Lot(models.Model):
    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="lots",
                                  db_index=False, db_constraint=False)
    key = models.CharField(max_length=255)
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="+", db_constraint=False,
                              db_index=False)
    connection = models.ForeignKey(BrokerConnection, on_delete=models.CASCADE, related_name="lots",
                                   db_constraint=False)
    transaction = models.ForeignKey("sync.BrokerTransaction", on_delete=models.SET_NULL, null=True, blank=True,
                                    related_name="+", db_constraint=False)
    origin = models.CharField(max_length=16, help_text="buy, short, reward, transfer, deposit, adjust")
    quantity = decimal_field(help_text="Opened with; negative for a short lot.")
    remaining = decimal_field(help_text="Still open; 0 once closed.")
    cost_basis = decimal_field(null=True, blank=True, help_text="Of the remaining quantity, base currency, fees "
                                                               "included. Null: unknown basis.")
    acquired_at = models.DateTimeField()
    holding_from = models.DateTimeField(help_text="Start of the holding period (earlier than acquired_at when a "
                                                  "wash sale carried one in).")
    parent_key = models.CharField(max_length=255, blank=True, default="")
    wash_adjustment = decimal_field(default=0)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.CharField(max_length=24, blank=True, default="")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["portfolio", "key"], name="lot_unique_key")]
        indexes = [models.Index(fields=["portfolio", "asset", "closed_at"], name="lot_open_idx")]
        ordering = ["acquired_at", "key"]

    @property
    def needs_basis(self) -> bool:
        """Unknown basis, open or sold (a short lot's "basis" is its proceeds, never asked)."""
        return self.cost_basis is None and self.origin != "short"


class Disposal(models.Model):
    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="disposals",
                                  db_index=False, db_constraint=False)
    key = models.CharField(max_length=255)
    source_key = models.CharField(max_length=255, help_text="connection:broker_id of the transaction.")
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="+", db_constraint=False,
                              db_index=False)
    connection = models.ForeignKey(BrokerConnection, on_delete=models.CASCADE, related_name="disposals",
                                   db_constraint=False)
    transaction = models.ForeignKey("sync.BrokerTransaction", on_delete=models.SET_NULL, null=True, blank=True,
                                    related_name="+", db_constraint=False)
    kind = models.CharField(max_length=24)
    disposed_at = models.DateTimeField()
    quantity = decimal_field()
    proceeds = decimal_field(null=True, blank=True)
    cost_basis = decimal_field(null=True, blank=True)
    gain = decimal_field(null=True, blank=True)
    wash_disallowed = decimal_field(default=0)
    term = models.CharField(max_length=8, choices=Term.choices)
    incomplete = models.BooleanField(default=False, help_text="Touches a lot of unknown basis or an unpriced "
                                                              "value: the gain is not known.")
    pick_status = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["portfolio", "key"], name="disposal_unique_key")]
        indexes = [models.Index(fields=["portfolio", "disposed_at"], name="disposal_time_idx")]
        ordering = ["-disposed_at", "-key"]


class DisposalLot(models.Model):
    """One lot (or part of one) a disposal closed: one line of Form 8949."""

    disposal = models.ForeignKey(Disposal, on_delete=models.CASCADE, related_name="links", db_constraint=False)
    lot_key = models.CharField(max_length=255)
    lot = models.ForeignKey(Lot, on_delete=models.SET_NULL, null=True, blank=True, related_name="disposal_links",
                            db_constraint=False)
    position = models.PositiveIntegerField()
    quantity = decimal_field()
    cost_basis = decimal_field(null=True, blank=True)
    proceeds = decimal_field(null=True, blank=True)
    gain = decimal_field(null=True, blank=True)
    acquired_at = models.DateTimeField()
    holding_from = models.DateTimeField()
    term = models.CharField(max_length=8, choices=Term.choices)
    wash_disallowed = decimal_field(default=0)

    class Meta:
        ordering = ["disposal_id", "position"]


class Income(models.Model):
    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="income",
                                  db_index=False, db_constraint=False)
    key = models.CharField(max_length=255)
    kind = models.CharField(max_length=32)
    connection = models.ForeignKey(BrokerConnection, on_delete=models.CASCADE, related_name="+",
                                   db_constraint=False)
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                              db_constraint=False, db_index=False)
    transaction = models.ForeignKey("sync.BrokerTransaction", on_delete=models.SET_NULL, null=True, blank=True,
                                    related_name="+", db_constraint=False)
    occurred_at = models.DateTimeField()
    amount = decimal_field(null=True, blank=True, help_text="Base currency; null when it could not be converted.")
    currency = models.CharField(max_length=16, blank=True, default="")
    original_amount = decimal_field()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["portfolio", "key"], name="income_unique_key")]
        indexes = [models.Index(fields=["portfolio", "occurred_at"], name="income_time_idx")]
        ordering = ["-occurred_at", "-key"]


class LotPick(models.Model):
    """Specific identification: which lots a sale closed, keyed by the sale's stable identity
    (connection + broker id), so it survives re-syncs and recomputes."""

    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="lot_picks")
    disposal_key = models.CharField(max_length=255)
    lots = models.JSONField(help_text='[{"lot_key": ..., "quantity": "..."}]')
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["portfolio", "disposal_key"], name="lotpick_unique")]


class BasisOverride(models.Model):
    """The user's basis and acquisition date for a lot the feeds gave no basis for (a deposit
    from outside), keyed by the deposit's stable identity."""

    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="basis_overrides")
    source_key = models.CharField(max_length=255)
    cost_basis = decimal_field()
    acquired_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["portfolio", "source_key"], name="basisoverride_unique")]


class LedgerState(models.Model):
    portfolio = models.OneToOneField(Portfolio, on_delete=models.CASCADE, related_name="ledger_state")
    settings = models.JSONField(default=dict, help_text="Method, wash sales and base currency it was computed with.")
    as_of = models.DateTimeField(null=True, blank=True, help_text="Time of the last event applied.")
    snapshot = models.JSONField(default=dict, help_text="Engine state after the last event (open lots, lots in "
                                                        "transit, pending wash sales).")
    computed_at = models.DateTimeField(null=True, blank=True)
    full = models.BooleanField(default=True, help_text="Whether the last recompute replayed the whole history.")
    events = models.PositiveIntegerField(default=0)
    duration_ms = models.PositiveIntegerField(default=0)
    dirty_since = models.DateTimeField(null=True, blank=True, help_text="Earliest change not yet applied.")
    needs_full = models.BooleanField(default=False)
    read_at = models.DateTimeField(null=True, blank=True, help_text="When the last recompute began reading the "
                                                                    "history: rows updated since are the changes.")
    history_only = models.BooleanField(default=True, help_text="Every change not yet applied is in transactions "
                                                               "(not closes): only their assets are replayed.")


class LedgerCheckpoint(models.Model):
    """One asset's engine state (open lots, lots in transit, losses waiting for wash-sale
    replacements) at the start of a calendar month (UTC): before the first event at or after
    `at`. A change to the asset's history replays it from the checkpoint before the change.
    The row without an asset marks that the instant was captured (an asset with nothing open
    then has no row)."""

    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="ledger_checkpoints")
    asset_id = models.IntegerField(null=True, blank=True)
    at = models.DateTimeField()
    state = models.JSONField(default=dict)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["portfolio", "at", "asset_id"], name="checkpoint_unique",
                                               nulls_distinct=False)]
