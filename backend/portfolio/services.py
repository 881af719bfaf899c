"""Writes on portfolios and assets: create, change, delete a portfolio; give a new connection
a portfolio of its own; move a connection, with everything synced from it, to another."""
from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from contextlib import contextmanager

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Min

from backend.brokers.dtos import AssetRef
from backend.brokers.symbols import FIAT
from backend.core.exceptions import ApplicationError

from .models import Asset, DailyValue, Portfolio
from .signals import portfolio_settings_changed

log = logging.getLogger("brokersync.portfolio")
BASE_CURRENCIES = tuple(sorted(FIAT))
# What a change recomputes elsewhere (backend/portfolio/signals.py): the ledger reads all
# three, value history the currency.
LEDGER_SETTINGS = ("base_currency", "cost_basis_method", "wash_sales")
NAME_LENGTH = Portfolio._meta.get_field("name").max_length
# A connection's sync steps hold its lock while they write rows (with the portfolio id they
# read when the step began); a move waits this long for the step in progress to finish.
MOVE_LOCK_WAIT_SECONDS = 10.0


def portfolio_create(*, owner: AbstractBaseUser, name: str, base_currency: str = "USD",
                     cost_basis_method: str = Portfolio.CostBasisMethod.FIFO, wash_sales: bool = True) -> Portfolio:
    _check(base_currency=base_currency, cost_basis_method=cost_basis_method)
    try:
        with transaction.atomic():
            portfolio = Portfolio.objects.create(owner=owner, name=_name(name), base_currency=base_currency,
                                                 cost_basis_method=cost_basis_method, wash_sales=wash_sales)
    except IntegrityError:
        raise _name_taken(name) from None
    log.info("portfolio.created portfolio=%s", portfolio.pk)
    return portfolio


def portfolio_update(*, portfolio: Portfolio, name: str | None = None, base_currency: str | None = None,
                     cost_basis_method: str | None = None, wash_sales: bool | None = None) -> Portfolio:
    """Rename, or change the base currency or the ledger settings. A settings change is
    announced (portfolio_settings_changed) once it has committed: the ledger recomputes,
    and the value history is rebuilt in the new currency."""
    _check(base_currency=base_currency, cost_basis_method=cost_basis_method)
    wanted = {"name": None if name is None else _name(name), "base_currency": base_currency,
              "cost_basis_method": cost_basis_method, "wash_sales": wash_sales}
    try:
        with transaction.atomic():
            locked = Portfolio.objects.select_for_update().get(pk=portfolio.pk)
            changed = {f for f, v in wanted.items() if v is not None and getattr(locked, f) != v}
            for f in changed:
                setattr(locked, f, wanted[f])
            if changed:
                locked.save(update_fields=sorted(changed) + ["updated_at"])
            settings_changed = changed & set(LEDGER_SETTINGS)
            if settings_changed:
                transaction.on_commit(lambda: portfolio_settings_changed.send(
                    sender=Portfolio, portfolio_id=locked.pk, changed=settings_changed))
    except IntegrityError:
        raise _name_taken(name) from None
    log.info("portfolio.updated portfolio=%s fields=%s", portfolio.pk, ",".join(sorted(changed)))
    return locked


def portfolio_delete(*, portfolio: Portfolio) -> None:
    """Delete an empty portfolio (with its value history). A portfolio that a connection
    feeds is refused with a 409 naming them: deleting it would delete their data."""
    with transaction.atomic():
        locked = Portfolio.objects.select_for_update().get(pk=portfolio.pk)
        feeding = list(locked.connections.order_by("id").values_list("id", "label", "broker", "environment"))
        if feeding:
            names = [f"#{pk} {label or broker} ({broker} {env})" for pk, label, broker, env in feeding]
            raise ApplicationError(
                f"Portfolio {locked.name!r} is fed by {len(feeding)} connection(s): {'; '.join(names)}. "
                "Move them to another portfolio or delete them first.",
                fields={"connections": names}, status=409)
        locked.delete()
    log.info("portfolio.deleted portfolio=%s", portfolio.pk)


def portfolio_for_connection(*, owner: AbstractBaseUser, name: str) -> Portfolio:
    """A new portfolio of its own for a new connection, named `name`, or `name (2)`, `(3)`...
    when the owner already has one by that name: two connections never share a portfolio
    because their default names collide."""
    base = _name(name) or "Portfolio"
    for _ in range(5):                       # another request may take the same name first
        taken = set(Portfolio.objects.filter(owner=owner, name__startswith=base[:NAME_LENGTH - 8])
                    .values_list("name", flat=True))
        candidate = next(c for c in _candidates(base) if c not in taken)
        try:
            with transaction.atomic():
                return Portfolio.objects.create(owner=owner, name=candidate)
        except IntegrityError:
            continue
    raise ApplicationError("Could not name a new portfolio; try again.", status=409)


def connection_move(*, connection, portfolio: Portfolio):
    """Move a connection to another of its owner's portfolios: its positions, transactions,
    orders follow it in one transaction, its value history is dropped (it is recomputed in
    the new portfolio's currency), and `history_changed` (reason "moved") is sent for both
    portfolios, from the connection's first transaction, so both histories and both
    ledgers are recomputed."""
    from backend.connections.models import BrokerConnection
    from backend.sync.models import BrokerOrder, BrokerPosition, BrokerTransaction
    from backend.sync.signals import history_changed

    if portfolio.owner_id != connection.owner_id:
        raise ApplicationError("Invalid input.", fields={"portfolio": ["No such portfolio."]})
    if portfolio.pk == connection.portfolio_id:
        return connection
    with _sync_paused(connection.pk), transaction.atomic():
        locked = BrokerConnection.objects.select_for_update().get(pk=connection.pk)
        old = locked.portfolio_id
        for model in (BrokerPosition, BrokerTransaction, BrokerOrder):
            model.objects.filter(connection=locked).update(portfolio=portfolio)
        DailyValue.objects.filter(connection=locked).delete()
        locked.portfolio = portfolio
        locked.save(update_fields=["portfolio", "updated_at"])
        since = BrokerTransaction.objects.filter(connection=locked).aggregate(first=Min("occurred_at"))["first"]
        transaction.on_commit(lambda: [history_changed.send(
            sender=BrokerConnection, connection_id=locked.pk, portfolio_id=pk, since=since, reason="moved")
            for pk in (old, portfolio.pk)])
    log.info("connection.moved connection=%s from=%s to=%s", connection.pk, old, portfolio.pk)
    return locked


@contextmanager
def _sync_paused(connection_id: int):
    """Hold the connection's sync lock (workers.tasks.connection_lock) for the move, waiting a
    little for a step that is writing rows; a move during a long step is refused."""
    from workers.tasks import connection_lock

    deadline = time.monotonic() + MOVE_LOCK_WAIT_SECONDS
    while True:
        with connection_lock(connection_id) as locked:
            if locked:
                yield
                return
        if time.monotonic() > deadline:
            raise ApplicationError("A sync of this connection is writing right now; move it again in a minute.",
                                   status=409)
        time.sleep(0.2)


def assets_resolve(refs: Iterable[AssetRef]) -> dict[tuple[str, str], Asset]:
    """(asset_class, symbol) -> Asset for every ref, creating the missing ones in bulk."""
    wanted = {(str(r.asset_class), r.symbol): r for r in refs}
    if not wanted:
        return {}
    found = _existing(wanted)
    missing = [Asset(symbol=r.symbol, asset_class=str(r.asset_class), exchange=r.exchange, currency=r.currency,
                     multiplier=r.multiplier)
               for key, r in wanted.items() if key not in found]
    if missing:
        # Another worker may create the same asset at the same moment: ignore and re-read.
        Asset.objects.bulk_create(missing, ignore_conflicts=True)
        found = _existing(wanted)
    return found


def _existing(wanted) -> dict[tuple[str, str], Asset]:
    symbols = {s for _, s in wanted}
    return {(a.asset_class, a.symbol): a for a in Asset.objects.filter(symbol__in=symbols)
            if (a.asset_class, a.symbol) in wanted}


# -- helpers -----------------------------------------------------------------------------
def _name(name: str) -> str:
    return " ".join(name.split())[:NAME_LENGTH]


def _candidates(base: str):
    yield base
    n = 2
    while True:
        suffix = f" ({n})"
        yield base[:NAME_LENGTH - len(suffix)] + suffix
        n += 1


def _check(*, base_currency: str | None, cost_basis_method: str | None) -> None:
    errors = {}
    if base_currency is not None and base_currency not in BASE_CURRENCIES:
        errors["base_currency"] = [f"{base_currency!r} is not supported. Choose one of: {', '.join(BASE_CURRENCIES)}."]
    if cost_basis_method is not None and cost_basis_method not in Portfolio.CostBasisMethod.values:
        errors["cost_basis_method"] = [f"Choose one of: {', '.join(Portfolio.CostBasisMethod.values)}."]
    if errors:
        raise ApplicationError("Invalid input.", fields=errors)


def _name_taken(name: str | None) -> ApplicationError:
    return ApplicationError("Invalid input.", fields={"name": [f"You already have a portfolio named {name!r}."]})
