"""Ledger API shapes. Money is a decimal string in the portfolio's base currency."""
from __future__ import annotations

from decimal import Decimal

from rest_framework import serializers

from .models import Disposal, DisposalLot, Lot

MONEY = dict(max_digits=38, decimal_places=18, read_only=True)
UNIT_PLACES = Decimal("1e-10")
MONEY_PLACES = Decimal("1e-18")


class LotOutputSerializer(serializers.ModelSerializer):
    asset = serializers.CharField(source="asset.symbol", read_only=True, help_text="Asset symbol.")
    asset_class = serializers.CharField(source="asset.asset_class", read_only=True)
    connection = serializers.IntegerField(source="connection_id", read_only=True)
    transaction = serializers.IntegerField(source="transaction_id", read_only=True, allow_null=True,
                                           help_text="The transaction that opened it.")
    unit_cost = serializers.SerializerMethodField(help_text="cost_basis / remaining; null when unknown or closed.")
    needs_basis = serializers.BooleanField(read_only=True, help_text="Unknown basis (open or sold): PATCH it on "
                                                                     "needs-basis/{id}/.")
    status = serializers.SerializerMethodField(help_text="open or closed.")
    market_value = serializers.SerializerMethodField(help_text="Open lots at the latest price; null when unpriced.")
    unrealized = serializers.SerializerMethodField(help_text="market_value - cost_basis (a short: proceeds - cost "
                                                             "to buy back); null when unpriced or basis unknown.")

    class Meta:
        model = Lot
        fields = ["id", "key", "asset", "asset_class", "connection", "transaction", "origin", "status", "quantity",
                  "remaining", "cost_basis", "unit_cost", "market_value", "unrealized", "acquired_at",
                  "holding_from", "wash_adjustment", "needs_basis", "parent_key", "closed_at", "closed_by"]
        read_only_fields = fields

    def _valued(self, lot: Lot, index: int) -> str | None:
        value = self.context.get("values", {}).get(lot.pk, (None, None))[index]
        return None if value is None else str(value.quantize(MONEY_PLACES))

    def get_market_value(self, lot: Lot) -> str | None:
        return self._valued(lot, 0)

    def get_unrealized(self, lot: Lot) -> str | None:
        return self._valued(lot, 1)

    def get_unit_cost(self, lot: Lot) -> str | None:
        if lot.cost_basis is None or not lot.remaining:
            return None
        return str(abs(lot.cost_basis / lot.remaining).quantize(UNIT_PLACES))

    def get_status(self, lot: Lot) -> str:
        return "open" if lot.remaining else "closed"


class DisposalLotOutputSerializer(serializers.ModelSerializer):
    lot = serializers.IntegerField(source="lot_id", read_only=True, allow_null=True)

    class Meta:
        model = DisposalLot
        fields = ["lot", "lot_key", "quantity", "cost_basis", "proceeds", "gain", "acquired_at", "holding_from",
                  "term", "wash_disallowed"]
        read_only_fields = fields


class DisposalOutputSerializer(serializers.ModelSerializer):
    asset = serializers.CharField(source="asset.symbol", read_only=True)
    connection = serializers.IntegerField(source="connection_id", read_only=True)
    transaction = serializers.IntegerField(source="transaction_id", read_only=True, allow_null=True)
    lots = DisposalLotOutputSerializer(source="links", many=True, read_only=True,
                                       help_text="The lots it closed, each with its own dates, basis and term.")
    wash_sale = serializers.SerializerMethodField(help_text="Form 8949 code W when a loss was disallowed.")

    class Meta:
        model = Disposal
        fields = ["id", "key", "asset", "connection", "transaction", "kind", "disposed_at", "quantity", "proceeds",
                  "cost_basis", "gain", "term", "incomplete", "wash_disallowed", "wash_sale", "pick_status", "lots"]
        read_only_fields = fields

    def get_wash_sale(self, d: Disposal) -> str:
        return "W" if d.wash_disallowed else ""


class HoldingOutputSerializer(serializers.Serializer):
    asset = serializers.CharField(source="symbol")
    asset_class = serializers.CharField()
    quantity = serializers.DecimalField(**MONEY)
    cost_basis = serializers.DecimalField(**MONEY, allow_null=True,
                                          help_text="Null when a lot has unknown basis (see needs-basis/).")
    average_cost = serializers.DecimalField(**MONEY, allow_null=True)
    market_value = serializers.DecimalField(**MONEY, allow_null=True, help_text="Null: no recent price (unpriced).")
    unrealized = serializers.DecimalField(**MONEY, allow_null=True, help_text="market_value - cost_basis.")
    weight = serializers.DecimalField(**MONEY, allow_null=True, help_text="Share of the priced holdings' value.")
    connections = serializers.ListField(child=serializers.IntegerField())


class IncomeOutputSerializer(serializers.Serializer):
    period = serializers.CharField(help_text="YYYY-MM (period=month) or YYYY (period=year).")
    kind = serializers.CharField(help_text="dividend, withholding, foreign_tax_withheld, dividend_fee, interest, "
                                           "reward, capital_gain_long/short, tax_exempt_dividend, fee")
    amount = serializers.DecimalField(**MONEY, help_text="Base currency; negative for withholding and fees.")
    incomplete = serializers.BooleanField(help_text="Some entries could not be converted to the base currency.")
    asset = serializers.CharField(required=False)
    connection = serializers.IntegerField(required=False)


class LotPickItemSerializer(serializers.Serializer):
    lot = serializers.IntegerField(help_text="Lot id (from lots/).")
    quantity = serializers.DecimalField(max_digits=38, decimal_places=18, min_value=0,
                                        help_text="How much of that lot this sale closed.")


class LotPickInputSerializer(serializers.Serializer):
    lots = LotPickItemSerializer(many=True, help_text="Empty: go back to the portfolio's method.")


class LotSelectionOutputSerializer(serializers.Serializer):
    disposal = serializers.IntegerField()
    method = serializers.CharField(help_text="The portfolio's method, used when there is no pick.")
    pick = serializers.ListField(child=serializers.DictField(), help_text="[{lot_key, quantity}] or [].")
    pick_status = serializers.CharField(help_text='"applied", "refused: why", or "" (no pick, or not yet '
                                                  'recomputed).')
    lots = DisposalLotOutputSerializer(many=True)


class BasisInputSerializer(serializers.Serializer):
    cost_basis = serializers.DecimalField(max_digits=38, decimal_places=18, min_value=0,
                                          help_text="Total basis of the lot in the portfolio's base currency.")
    acquired_at = serializers.DateTimeField(required=False, allow_null=True,
                                            help_text="When it was really acquired (sets the holding period).")

