"""Input and output shapes of the import and manual-transaction APIs."""
from __future__ import annotations

from datetime import datetime

from django.utils import timezone
from rest_framework import serializers

from backend.brokers.dtos import AssetClass
from backend.core.fields import MONEY_DIGITS, MONEY_PLACES
from backend.sync.serializers import TransactionOutputSerializer

from .formats import LAYOUTS
from .manual import TYPES
from .models import FileImport
from .values import FUTURE_SLACK, CellError, currency_code


class FileImportOutputSerializer(serializers.ModelSerializer):
    # Plain text: the same four states as a sync run's, which the schema already names.
    status = serializers.CharField(help_text="queued, running, succeeded (every row stored, new or already there) "
                                             "or failed (nothing stored; see errors).")
    errors = serializers.JSONField(help_text="The first rows that could not be read: [{row, field, message}] "
                                             "(row: the line in the file; field: its column header).")

    class Meta:
        model = FileImport
        fields = ["id", "portfolio", "connection", "account_name", "format", "file_name", "size", "status", "phase",
                  "rows_read", "rows_imported", "rows_duplicate", "rows_updated", "rows_error", "errors", "message",
                  "since", "created_at", "started_at", "finished_at"]
        read_only_fields = fields


class ImportInputSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="The CSV export, as downloaded (multipart upload).")
    format = serializers.ChoiceField(choices=sorted(LAYOUTS), required=False,
                                     help_text="The file's layout; left out, it is recognised from the header.")
    account = serializers.CharField(max_length=100, required=False, allow_blank=True,
                                    help_text="Name of the import account the rows go to (created on first use; "
                                              "default: the format's name, e.g. Fidelity).")
    connection = serializers.IntegerField(required=False, help_text="Or: the id of an import account of this "
                                                                    "portfolio to add the rows to.")


def money(help_text: str) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, required=False,
                                    allow_null=True, min_value=0, help_text=help_text)


class ManualTransactionInputSerializer(serializers.Serializer):
    """A transaction typed by hand. Numbers are decimal strings and positive: the type sets the sign."""

    type = serializers.ChoiceField(choices=list(TYPES), help_text="buy, sell, holding (an opening balance: "
                                   "shares held since that date at `price` each), dividend, interest, fee, deposit, "
                                   "withdrawal, split.")
    occurred_at = serializers.DateTimeField(input_formats=["iso-8601", "%Y-%m-%d"],
                                            help_text="When (a date is 00:00 UTC); not in the future.")
    symbol = serializers.CharField(max_length=64, required=False, allow_blank=True, allow_null=True)
    asset_class = serializers.ChoiceField(choices=[c.value for c in AssetClass if c != AssetClass.FIAT],
                                          required=False, help_text="Default equity.")
    quantity = money("Shares or units: buy, sell, holding. Positive.")
    price = money("Per unit, in `currency`: buy, sell; holding (its unit cost).")
    fee = money("Commission (buy, sell) or tax withheld (dividend), in `currency`.")
    amount = money("Cash: dividend, interest, fee, deposit, withdrawal. Positive.")
    currency = serializers.CharField(max_length=3, required=False, help_text="ISO 4217 code; default USD.")
    split_to = serializers.IntegerField(min_value=1, required=False, allow_null=True,
                                        help_text="A split: `split_to` new shares for every `split_from` held.")
    split_from = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True)

    def validate_quantity(self, value):
        if value is not None and value == 0:
            raise serializers.ValidationError("Must be greater than 0: the type sets the sign.")
        return value

    validate_amount = validate_quantity

    def validate_currency(self, value: str) -> str:
        try:
            return currency_code(value)
        except CellError as exc:
            raise serializers.ValidationError(str(exc).capitalize() + ".") from None

    def validate_occurred_at(self, value: datetime) -> datetime:
        if value > timezone.now() + FUTURE_SLACK:
            raise serializers.ValidationError("Must not be in the future.")
        return value


class ManualTransactionCreateSerializer(ManualTransactionInputSerializer):
    account = serializers.CharField(max_length=100, required=False, allow_blank=True,
                                    help_text="Name of the manual account (created on first use; default Manual).")
    connection = serializers.IntegerField(required=False, help_text="Or: the id of a manual account of this "
                                                                    "portfolio.")


class ManualTransactionOutputSerializer(TransactionOutputSerializer):
    connection = serializers.IntegerField(source="connection_id", help_text="The manual account.")
    account = serializers.CharField(source="connection.label")
    input = serializers.SerializerMethodField(help_text="What was typed (split ratio, holding's unit cost ...).")

    class Meta(TransactionOutputSerializer.Meta):
        fields = [*TransactionOutputSerializer.Meta.fields, "connection", "account", "input"]

    def get_input(self, row) -> dict:
        return dict(row.raw.get("input", {}))
