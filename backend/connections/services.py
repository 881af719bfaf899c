"""Connections: create one from a user's keys, change it, sync it, disconnect it, delete it.

Keys are checked against the broker (keycheck.py) before anything is stored, and outside any database
transaction (a slow broker must not hold a transaction open). The rows are then written
in one transaction, and the first sync is queued on its commit (sync_request does that).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from backend.brokers import registry
from backend.brokers.base import BrokerAdapter
from backend.brokers.dtos import AccountInfo, Credentials
from backend.core.exceptions import ApplicationError
from backend.portfolio.models import Portfolio
from backend.portfolio.services import portfolio_for_connection
from backend.sync.models import SyncRun
from backend.sync.services import sync_cancel, sync_request

from .keycheck import credentials_check_characters, credentials_verify
from .models import DEFAULT_SYNC_INTERVAL, FEEDLESS_KINDS, MIN_SYNC_INTERVAL, BrokerConnection

log = logging.getLogger("brokersync.connections")

Status = BrokerConnection.Status
ENCRYPTED_FIELDS = ("api_key", "api_secret", "access_token", "refresh_token")
STREAM_FIELDS = {"positions": "sync_positions", "transactions": "sync_transactions", "orders": "sync_orders"}
# Statuses in which the stored keys are known not to work: a sync would only fail again.
NEEDS_NEW_KEYS = (Status.EXPIRED, Status.REVOKED)
# Statuses that new, verified keys bring back to life.
REACTIVATED_BY_NEW_KEYS = (Status.EXPIRED, Status.REVOKED, Status.ERROR)
DISCONNECTED_REASON = "disconnected by user"


def connection_create(*, owner: AbstractBaseUser, broker: str, environment: str, label: str,
                      credentials: Credentials, portfolio: Portfolio | None = None,
                      sync_interval: timedelta | None = None,
                      streams: Mapping[str, bool] | None = None) -> BrokerConnection:
    """Verify the keys with the broker, then store the connection and queue its first sync.
    Nothing is stored when the broker rejects the keys or cannot be reached."""
    adapter_cls = _adapter_class(broker, environment)
    credentials = _declared_credentials(adapter_cls, credentials)
    interval = _interval(sync_interval if sync_interval is not None else DEFAULT_SYNC_INTERVAL)
    flags = _stream_flags(adapter_cls, streams, current={s: s in adapter_cls.capabilities for s in STREAM_FIELDS})
    if portfolio is not None and portfolio.owner_id != owner.pk:
        raise ApplicationError("Invalid input.", fields={"portfolio": ["No such portfolio."]})

    account = credentials_verify(adapter_cls=adapter_cls, environment=environment, credentials=credentials)
    with transaction.atomic():
        if _already_connected(owner, broker, environment, account.account_id):
            raise _duplicate_error(adapter_cls, account.account_id)
        connection = BrokerConnection(
            owner=owner, broker=broker, environment=environment, broker_account_id=account.account_id,
            label=label,
            portfolio=portfolio or portfolio_for_connection(
                owner=owner, name=label or f"{adapter_cls.display_name} ({environment})"),
            status=Status.PENDING, warnings=list(account.warnings), sync_interval=interval,
            next_sync_at=timezone.now() + interval, **flags)
        connection.set_credentials(credentials)
        try:
            with transaction.atomic():
                connection.save()
        except IntegrityError:
            # A parallel request connected the same account between our check and the insert.
            if _already_connected(owner, broker, environment, account.account_id):
                raise _duplicate_error(adapter_cls, account.account_id) from None
            raise
        sync_request(connection=connection, trigger="initial")
    log.info("connection.created connection=%s broker=%s environment=%s", connection.pk, broker, environment)
    return connection


def connection_update(*, connection: BrokerConnection, label: str | None = None,
                      sync_interval: timedelta | None = None, streams: Mapping[str, bool] | None = None,
                      credentials: Credentials | None = None) -> BrokerConnection:
    """Change what the owner may change. New keys are verified exactly like on create and
    must reach the same broker account; they bring an expired, revoked or failing
    connection back (pending, due now)."""
    adapter_cls = _adapter_class(connection.broker, connection.environment) if (credentials or streams) else None
    account = None
    if credentials is not None:
        credentials = _declared_credentials(adapter_cls, credentials)
        account = credentials_verify(adapter_cls=adapter_cls, environment=connection.environment,
                                     credentials=credentials)
        if account.account_id != connection.broker_account_id:
            raise ApplicationError("These keys belong to a different account.", fields={
                adapter_cls.credential_fields[0].name: [
                    f"These keys reach {adapter_cls.display_name} account {account.account_id}, not "
                    f"{connection.broker_account_id}. Add them as a new connection instead."]})

    with transaction.atomic():
        locked = BrokerConnection.objects.select_for_update().get(pk=connection.pk)
        changed = _apply_settings(locked, adapter_cls, label=label, sync_interval=sync_interval, streams=streams)
        if account is not None:
            changed += _apply_new_keys(locked, credentials, account)
        if changed:
            locked.save(update_fields=sorted(set(changed)) + ["updated_at"])
    log.info("connection.updated connection=%s fields=%s", connection.pk, ",".join(sorted(set(changed))))
    return locked


def connection_delete(*, connection: BrokerConnection) -> None:
    """Delete the connection with everything synced from it (runs, cursors, positions,
    transactions, orders cascade). Its portfolio stays: it may hold other connections."""
    connection_id = connection.pk
    connection.delete()
    log.info("connection.deleted connection=%s", connection_id)


def connection_disconnect(*, connection: BrokerConnection) -> BrokerConnection:
    """Forget the keys and stop syncing; keep the synced data. A run still queued or
    running is ended too, or it would fail on the wiped keys and mark the connection
    expired instead of disconnected."""
    now = timezone.now()
    with transaction.atomic():
        locked = BrokerConnection.objects.select_for_update().get(pk=connection.pk)
        locked.set_credentials(Credentials())
        locked.status = Status.REVOKED
        locked.status_reason = DISCONNECTED_REASON
        locked.next_sync_at = None
        locked.save(update_fields=[*ENCRYPTED_FIELDS, "key_hint", "status", "status_reason", "next_sync_at",
                                   "updated_at"])
        ended = sync_cancel(connection=locked, reason="The connection was disconnected by its owner.", now=now)
    log.info("connection.disconnected connection=%s runs_ended=%s", connection.pk, ended)
    return locked


def connection_sync(*, connection: BrokerConnection) -> tuple[SyncRun, bool]:
    """Queue a sync now, or return the run already queued or running: (run, created)."""
    if not connection.has_feed:
        raise ApplicationError(_feedless_reason(connection.broker, "has no feed to sync"), status=409)
    if connection.status in NEEDS_NEW_KEYS:
        raise ApplicationError(
            f"This connection is {connection.status} ({connection.status_reason or 'the broker rejected its keys'}): "
            "update the keys first.", status=409)
    return sync_request(connection=connection, trigger="api")


# -- helpers -----------------------------------------------------------------------------
def _feedless_reason(broker: str, what: str) -> str:
    where = ("POST /api/v1/portfolios/{id}/imports/ adds a file to it" if broker == "csv"
             else "POST /api/v1/portfolios/{id}/manual/transactions/ adds to it")
    return f"A {FEEDLESS_KINDS[broker]} account {what}: {where}."


def _adapter_class(broker: str, environment: str) -> type[BrokerAdapter]:
    if broker in FEEDLESS_KINDS:         # create, or new keys or streams for a feedless account
        reason = _feedless_reason(broker, "is not connected with keys and has no streams")
        raise ApplicationError("Invalid input.", fields={"broker": [reason]})
    try:
        adapter_cls = registry.get_adapter_class(broker)
    except (registry.UnknownBroker, ModuleNotFoundError):     # not a broker, or its adapter is not installed
        supported = ", ".join(registry.broker_keys()) or "none"
        raise ApplicationError("Invalid input.", fields={
            "broker": [f"Unknown broker {broker!r}. Supported: {supported}."]}) from None
    if environment not in adapter_cls.environments:
        raise ApplicationError("Invalid input.", fields={
            "environment": [f"{adapter_cls.display_name} has no environment {environment!r}. "
                            f"Choose one of: {', '.join(adapter_cls.environments)}."]})
    return adapter_cls


def _declared_credentials(adapter_cls: type[BrokerAdapter], credentials: Credentials) -> Credentials:
    """Keep only the fields this broker uses, and require every one of them."""
    names = [f.name for f in adapter_cls.credential_fields]
    missing = {name: ["This field is required."] for name in names if not getattr(credentials, name)}
    if missing:
        raise ApplicationError("Invalid input.", fields=missing)
    declared = Credentials(**{name: getattr(credentials, name) for name in names})
    credentials_check_characters(adapter_cls, declared)
    return declared


def _interval(value: timedelta) -> timedelta:
    if value < MIN_SYNC_INTERVAL:
        raise ApplicationError("Invalid input.", fields={
            "sync_interval": [f"Must be at least {int(MIN_SYNC_INTERVAL.total_seconds())} seconds."]})
    return value


def _stream_flags(adapter_cls: type[BrokerAdapter], streams: Mapping[str, bool] | None,
                  *, current: Mapping[str, bool]) -> dict[str, bool]:
    wanted = {**current, **(streams or {})}
    errors = {}
    for stream, on in (streams or {}).items():
        if stream not in STREAM_FIELDS:
            errors[stream] = ["Unknown stream."]
        elif on and stream not in adapter_cls.capabilities:
            errors[STREAM_FIELDS[stream]] = [f"{adapter_cls.display_name} does not provide {stream}."]
    if not errors and not any(wanted.values()):
        errors["non_field_errors"] = ["Sync at least one of positions, transactions and orders."]
    if errors:
        raise ApplicationError("Invalid input.", fields=errors)
    return {STREAM_FIELDS[s]: bool(on) for s, on in wanted.items()}


def _already_connected(owner, broker: str, environment: str, account_id: str) -> bool:
    return BrokerConnection.objects.filter(owner=owner, broker=broker, environment=environment,
                                           broker_account_id=account_id).exists()


def _duplicate_error(adapter_cls: type[BrokerAdapter], account_id: str) -> ApplicationError:
    return ApplicationError(f"You have already connected {adapter_cls.display_name} account {account_id}.",
                            fields={"non_field_errors": ["This broker account is already connected."]})


def _apply_settings(connection: BrokerConnection, adapter_cls, *, label, sync_interval, streams) -> list[str]:
    changed = []
    if label is not None:
        connection.label = label
        changed.append("label")
    if sync_interval is not None:
        connection.sync_interval = _interval(sync_interval)
        changed.append("sync_interval")
        if connection.schedulable:
            # From the last sync, so a shorter interval takes effect at once.
            connection.next_sync_at = (connection.last_sync_at or timezone.now()) + connection.sync_interval
            changed.append("next_sync_at")
    if streams:
        current = {s: getattr(connection, f) for s, f in STREAM_FIELDS.items()}
        for field, on in _stream_flags(adapter_cls, streams, current=current).items():
            setattr(connection, field, on)
            changed.append(field)
    return changed


def _apply_new_keys(connection: BrokerConnection, credentials: Credentials, account: AccountInfo) -> list[str]:
    connection.set_credentials(credentials)
    connection.warnings = list(account.warnings)
    changed = [*ENCRYPTED_FIELDS, "key_hint", "warnings"]
    if connection.status in REACTIVATED_BY_NEW_KEYS:
        connection.status = Status.PENDING
        connection.status_reason = ""
        connection.error_count = 0
        connection.last_error = ""
        connection.next_sync_at = timezone.now()       # due now: the dispatcher queues it next tick
        changed += ["status", "status_reason", "error_count", "last_error", "next_sync_at"]
    return changed
