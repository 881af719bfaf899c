"""Serializers shared by several connection APIs. Credentials are write-only: a
connection is only ever shown with `key_hint` (its key's last four characters)."""
from __future__ import annotations

from datetime import timedelta

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import empty

from backend.brokers.dtos import Credentials
from backend.core.fields import StrictBooleanField
from backend.portfolio.models import Portfolio

from .models import MIN_SYNC_INTERVAL, BrokerConnection

CREDENTIAL_FIELDS = ("api_key", "api_secret", "access_token", "refresh_token")
MIN_INTERVAL_SECONDS = int(MIN_SYNC_INTERVAL.total_seconds())


@extend_schema_field(OpenApiTypes.INT)
class SecondsField(serializers.Field):
    """A duration as whole seconds."""

    def to_representation(self, value: timedelta) -> int:
        return int(value.total_seconds())


@extend_schema_field(OpenApiTypes.INT)
class OwnedPortfolioField(serializers.PrimaryKeyRelatedField):
    """A portfolio id, accepted only if it is one of the requesting user's portfolios."""

    def get_queryset(self):
        return Portfolio.objects.filter(owner=self.context["request"].user)


def credential_field() -> serializers.CharField:
    return serializers.CharField(write_only=True, required=False, allow_blank=True, max_length=4096,
                                 style={"input_type": "password"})


class CredentialsInputMixin(serializers.Serializer):
    """The credential fields a broker may ask for (GET /brokers/ says which)."""

    api_key = credential_field()
    api_secret = credential_field()
    access_token = credential_field()
    refresh_token = credential_field()


class SwitchField(StrictBooleanField):
    # DRF reads a boolean missing from form-encoded input as False; a switch left out of a
    # PATCH must stay as it is instead.
    default_empty_html = empty


class StreamSwitchesMixin(serializers.Serializer):
    sync_positions = SwitchField(required=False)
    sync_transactions = SwitchField(required=False)
    sync_orders = SwitchField(required=False)


def credentials_from(data: dict) -> Credentials | None:
    """The Credentials in validated input, or None when no key was given."""
    values = {name: data.get(name) or "" for name in CREDENTIAL_FIELDS}
    return Credentials(**values) if any(values.values()) else None


def streams_from(data: dict) -> dict[str, bool]:
    return {name: data[f"sync_{name}"] for name in ("positions", "transactions", "orders")
            if f"sync_{name}" in data}


def interval_from(data: dict) -> timedelta | None:
    seconds = data.get("sync_interval")
    return timedelta(seconds=seconds) if seconds is not None else None


class ConnectionOutputSerializer(serializers.ModelSerializer):
    sync_interval = SecondsField(help_text="Seconds between scheduled syncs.")
    warnings = serializers.ListField(child=serializers.CharField(),
                                     help_text="What the broker told us about these keys.")

    class Meta:
        model = BrokerConnection
        fields = ["id", "broker", "environment", "broker_account_id", "label", "portfolio", "key_hint",
                  "status", "status_reason", "warnings", "sync_interval", "sync_positions",
                  "sync_transactions", "sync_orders", "next_sync_at", "last_sync_at",
                  "last_successful_sync_at", "last_sync_state", "last_error", "error_count",
                  "created_at", "updated_at"]
        read_only_fields = fields


class ErrorOutputSerializer(serializers.Serializer):
    """The one error shape of the API (backend/core/api.py)."""

    message = serializers.CharField()
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()),
                                   help_text="Messages per input field; empty when the error is not about a field.")
