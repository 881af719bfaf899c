from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from fernet_fields import EncryptedTextField

from backend.brokers.dtos import Credentials
from backend.portfolio.models import Portfolio

DEFAULT_SYNC_INTERVAL = timedelta(hours=1)
MIN_SYNC_INTERVAL = timedelta(minutes=5)
# Accounts with no feed: nothing to fetch, so never synced or scheduled. Their rows come from
# file imports (csv) or are typed in (manual); backend/imports creates and fills them.
FEEDLESS_KINDS = {"csv": "CSV import", "manual": "Manual entry"}


def mask_secret(value: str) -> str:
    """The only form in which a credential is ever shown: its last four characters."""
    if not value:
        return ""
    return "****" + value[-4:] if len(value) > 8 else "****"


class BrokerConnection(models.Model):
    """One account at one broker, reached with the user's API keys.

    A user may hold several connections at one broker (paper and live, two accounts),
    so uniqueness is on the broker's own account id, not on the broker."""

    class Status(models.TextChoices):
        PENDING = "pending"           # created, first sync not finished yet
        ACTIVE = "active"
        ERROR = "error"               # five failed runs in a row; schedule stopped
        EXPIRED = "expired"           # the broker rejected the key; schedule stopped
        REVOKED = "revoked"           # revoked at the broker or disconnected by the user

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="broker_connections")
    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="connections")
    broker = models.CharField(max_length=32)
    environment = models.CharField(max_length=16, default="live")
    broker_account_id = models.CharField(max_length=128)
    label = models.CharField(max_length=128, blank=True, default="")

    # Fernet-encrypted at rest (bytea/BLOB holding a token); never returned by the API.
    api_key = EncryptedTextField(blank=True, default="")
    api_secret = EncryptedTextField(blank=True, default="")
    access_token = EncryptedTextField(blank=True, default="")
    refresh_token = EncryptedTextField(blank=True, default="")
    key_hint = models.CharField(max_length=16, blank=True, default="", help_text="Masked API key, e.g. ****7QX2.")

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    status_reason = models.CharField(max_length=255, blank=True, default="")
    warnings = models.JSONField(default=list, blank=True)
    # Per-connection switches a broker reads (e.g. Binance {"deep": true}); never a secret.
    options = models.JSONField(default=dict, blank=True)

    sync_interval = models.DurationField(default=DEFAULT_SYNC_INTERVAL)
    sync_positions = models.BooleanField(default=True)
    sync_transactions = models.BooleanField(default=True)
    sync_orders = models.BooleanField(default=True)
    next_sync_at = models.DateTimeField(null=True, blank=True)

    last_sync_at = models.DateTimeField(null=True, blank=True)
    last_successful_sync_at = models.DateTimeField(null=True, blank=True)
    last_sync_state = models.CharField(max_length=16, blank=True, default="")
    last_error = models.CharField(max_length=500, blank=True, default="")
    error_count = models.PositiveIntegerField(default=0, help_text="Failed runs in a row.")

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner", "broker", "environment", "broker_account_id"],
                                    name="connection_unique_owner_broker_env_account"),
        ]
        indexes = [models.Index(fields=["status", "next_sync_at"], name="connection_due_idx")]
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.broker}/{self.environment} {self.label or self.broker_account_id}"

    @property
    def has_feed(self) -> bool:
        return self.broker not in FEEDLESS_KINDS

    @property
    def schedulable(self) -> bool:
        return self.has_feed and self.status in (self.Status.PENDING, self.Status.ACTIVE)

    def credentials(self) -> Credentials:
        return Credentials(api_key=self.api_key, api_secret=self.api_secret,
                           access_token=self.access_token, refresh_token=self.refresh_token)

    def set_credentials(self, credentials: Credentials) -> None:
        self.api_key = credentials.api_key
        self.api_secret = credentials.api_secret
        self.access_token = credentials.access_token
        self.refresh_token = credentials.refresh_token
        self.key_hint = mask_secret(credentials.api_key)

    def enabled_streams(self) -> list[str]:
        return [s for s, on in (("positions", self.sync_positions), ("transactions", self.sync_transactions),
                                ("orders", self.sync_orders)) if on]
