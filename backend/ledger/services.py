"""Ledger services: recompute (full or from where the last one stopped), queue a recompute,
specific-lot picks and basis entries.

A recompute reads the portfolio's stored transactions, runs the engine and writes lots,
disposals and income in one transaction with the engine's state, so a failure leaves the
previous ledger whole. When every changed transaction is newer than the last event applied
(a sync that brought new fills), it carries on from the saved state and reads only the new
rows; a change in the past replays only the assets it touched from the month-start
checkpoint before it (`scoped`); anything else (a transfer, a setting, a pick, a basis entry,
a corrected close) replays the history in memory and writes only what differs.
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from datetime import datetime
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from backend.connections.models import BrokerConnection
from backend.core.gcpause import collector_paused
from backend.portfolio.models import Portfolio

from . import checkpoints, engine, writing
from .events import SPINOFF_CODE, build_events
from .loading import BookPricer, fiat_codes, foreign_withdrawals, rows_for_portfolio, rows_since
from .models import BasisOverride, LedgerState, LotPick
from .scoped import recompute_assets

log = logging.getLogger("brokersync.ledger")
WASH_ASSET_CLASSES = ("equity",)       # Pub 550 covers stock and securities; crypto is not covered today


def portfolio_settings(portfolio: Portfolio) -> dict:
    return {"method": portfolio.cost_basis_method, "wash_sales": bool(portfolio.wash_sales),
            "base_currency": portfolio.base_currency, "engine": engine.state.VERSION}


def ledger_inputs(portfolio: Portfolio, *, asset_ids: set[int]) -> dict:
    """The engine's keyword arguments besides the pricer: method, wash-sale assets, picks, basis."""
    from backend.portfolio.models import Asset

    wash = set()
    if portfolio.wash_sales and portfolio.base_currency == "USD":
        wash = set(Asset.objects.filter(id__in=asset_ids, asset_class__in=WASH_ASSET_CLASSES)
                   .values_list("id", flat=True))
    picks = {p.disposal_key: [(item["lot_key"], Decimal(item["quantity"])) for item in p.lots]
             for p in LotPick.objects.filter(portfolio=portfolio)}
    overrides = {o.source_key: (o.cost_basis, o.acquired_at) for o in BasisOverride.objects.filter(portfolio=portfolio)}
    return {"method": portfolio.cost_basis_method, "wash_assets": wash, "picks": picks, "overrides": overrides}


def ledger_replay(*, portfolio: Portfolio, extra_picks: dict | None = None, strict: bool = False,
                  capture: bool = False) -> engine.Ledger:
    """The whole history through the engine, in memory (nothing is written). With `capture`,
    each asset's state at every month start is kept in `ledger.checkpoints`."""
    rows = rows_for_portfolio(portfolio_id=portfolio.pk)
    foreign = foreign_withdrawals(portfolio_id=portfolio.pk)
    own = {r.connection_id for r in rows}
    asset_ids = {r.asset_id for r in rows if r.asset_id is not None}
    start = min((r.occurred_at for r in rows), default=None)
    currencies = _cash_currencies(rows)
    # The owner's withdrawals in other portfolios only pair: their lots leave in that ledger.
    events = [e for e in build_events(rows + foreign, fiat=fiat_codes()) if e.connection_id in own]
    del rows                    # the engine reads events only: the rows' memory is free before it runs
    pricer = BookPricer.load(asset_ids=asset_ids, base=portfolio.base_currency, currencies=currencies,
                             start=start.date() if start else None)
    kwargs = ledger_inputs(portfolio, asset_ids=asset_ids)
    kwargs["picks"].update(extra_picks or {})
    ledger = engine.Ledger(pricer=pricer, strict_picks=strict, **kwargs)
    ledger.parked.update(_in_transit(foreign, {e.withdrawal_key for e in events if e.withdrawal_key}))
    instants = checkpoints.month_starts(start, max((e.at for e in events), default=None)) if capture else ()
    return ledger.run(events, checkpoints=instants, capture=engine.asset_states)


def _cash_currencies(rows: list) -> set[str]:
    return {r.currency for r in rows if r.amount and r.currency}


def _in_transit(foreign: list, keys: set[str]) -> dict[str, list]:
    """Lots on their way here from another portfolio: the pieces its ledger parked under the
    withdrawals a deposit here pairs with (with their dates and basis). Until that ledger has
    computed them, the deposit has unknown basis; its recompute then queues this one."""
    wanted: dict[int, set[str]] = defaultdict(set)
    portfolio_of = dict(BrokerConnection.objects.filter(id__in={r.connection_id for r in foreign})
                        .values_list("id", "portfolio_id"))
    for row in foreign:
        if row.key in keys:
            wanted[portfolio_of[row.connection_id]].add(row.key)
    pieces: dict[str, list] = {}
    for state in LedgerState.objects.filter(portfolio_id__in=wanted):
        pieces.update(engine.parked_pieces(state.snapshot, wanted[state.portfolio_id]))
    return pieces


def _receivers_of(portfolio: Portfolio, before: dict, after: dict) -> list[int]:
    """The owner's other portfolios that may receive lots whose transit changed here: those
    with a deposit of one of those assets."""
    changed = {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}
    assets = {piece["asset_id"] for key in changed for piece in (after.get(key) or before.get(key) or [])}
    if not assets:
        return []
    from backend.sync.models import BrokerTransaction

    return sorted(set(BrokerTransaction.objects.filter(connection__owner_id=portfolio.owner_id, asset_id__in=assets,
                                                       type__in=("transfer", "deposit"), quantity__gt=0)
                      .exclude(portfolio_id=portfolio.pk).values_list("portfolio_id", flat=True).distinct()))


def ledger_recompute(*, portfolio_id: int, since: datetime | None = None, full: bool = False) -> dict:
    started = time.perf_counter()
    with collector_paused(), transaction.atomic():
        _commit_without_waiting_for_disk()
        portfolio = Portfolio.objects.select_for_update().get(pk=portfolio_id)
        state, _ = LedgerState.objects.select_for_update().get_or_create(portfolio=portfolio)
        settings = portfolio_settings(portfolio)
        since = _earliest(since, state.dirty_since)
        read_at = timezone.now()
        ledger = scoped = None
        if not (full or state.needs_full) and state.settings == settings and state.snapshot:
            ledger = _carry_on(portfolio, state, since)
            if ledger is None:
                scoped = recompute_assets(portfolio, state, since,
                                          lambda assets: ledger_inputs(portfolio, asset_ids=assets))
        incremental = ledger is not None or scoped is not None
        parked_before = (state.snapshot or {}).get("parked") or {}
        if scoped is not None:
            ledger = scoped.ledger
            snapshot = engine.replace_assets(state.snapshot, scoped.assets, ledger, scoped.as_of)
        elif ledger is None:
            ledger = ledger_replay(portfolio=portfolio, capture=True)
            writing.write(portfolio_id=portfolio.pk, lots=ledger.lots.values(), disposals=ledger.disposals.values(),
                          income=ledger.income, full=True)
            checkpoints.save(portfolio_id=portfolio.pk, captured=ledger.checkpoints)
            snapshot = engine.snapshot(ledger)
        else:
            writing.write(portfolio_id=portfolio.pk, lots=[ledger.lots[k] for k in sorted(ledger.touched_lots)],
                          disposals=[ledger.disposals[k] for k in sorted(ledger.touched_disposals)],
                          income=ledger.income, full=False)
            checkpoints.save(portfolio_id=portfolio.pk, captured=ledger.checkpoints, after=state.as_of)
            snapshot = engine.snapshot(ledger)
        duration = int((time.perf_counter() - started) * 1000)
        as_of = datetime.fromisoformat(snapshot["as_of"]) if snapshot.get("as_of") else None
        state.settings, state.snapshot, state.as_of = settings, snapshot, as_of
        state.read_at, state.history_only = read_at, True
        state.computed_at, state.full, state.duration_ms = timezone.now(), not incremental, duration
        state.events, state.dirty_since, state.needs_full = ledger.applied, None, False
        state.save()
        receivers = _receivers_of(portfolio, parked_before, state.snapshot["parked"])
    # After commit, outside this portfolio's locks: the receiving ledger reads what was saved.
    for receiver in receivers:
        ledger_request(portfolio_id=receiver, full=True)
    log.info("ledger.recomputed portfolio=%s incremental=%s ms=%s", portfolio_id, incremental, duration)
    return {"incremental": incremental, "assets": sorted(scoped.assets) if scoped else None, "duration_ms": duration}


def _commit_without_waiting_for_disk() -> None:
    """The ledger is derived from the stored transactions: its commit need not wait for the
    write-ahead log to reach the disk (a flush per recompute, of every sync). It stays
    atomic; a server crash in the next fraction of a second loses the recompute and its state
    together, and the change it covered is still recorded as to be recomputed (`dirty_since`,
    committed by the sync that made it)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    return min((x for x in (a, b) if x is not None), default=None)


def _carry_on(portfolio: Portfolio, state: LedgerState, since: datetime | None):
    """The saved state carried on with the new rows, or None when the change reaches back
    before the last event applied (then only a replay is right)."""
    if since is None or (state.as_of is not None and since <= state.as_of):
        return None
    rows, moves, fiat = rows_since(portfolio_id=portfolio.pk, since=since)
    events = build_events(rows + moves, fiat=fiat)
    old_keys, new_keys = {m.key for m in moves}, {r.key for r in rows}
    new = [e for e in events if e.key not in old_keys]
    # An old deposit now paired with a new withdrawal, or a new move found internal, changes the past.
    if any(e.key in old_keys and e.withdrawal_key in new_keys for e in events):
        return None
    moving = {r.key for r in rows if r.type in ("transfer", "deposit", "withdrawal") and r.quantity
              and r.asset_id is not None}
    if moving - {e.key for e in new}:
        return None
    # A deposit may be lots in transit from another portfolio: pairing it is a replay's work.
    if any(r.key in moving and r.quantity > 0 for r in rows) and foreign_withdrawals(portfolio_id=portfolio.pk):
        return None
    asset_ids = {r.asset_id for r in rows if r.asset_id is not None}
    pricer = BookPricer.load(asset_ids=asset_ids, base=portfolio.base_currency, currencies=_cash_currencies(rows),
                             start=since.date())
    ledger = engine.restore(state.snapshot, pricer=pricer, **ledger_inputs(portfolio, asset_ids=asset_ids))
    instants = checkpoints.month_starts(state.as_of, max((e.at for e in new), default=None))
    return ledger.run(new, checkpoints=instants, capture=engine.asset_states)


# -- queueing ----------------------------------------------------------------------------------
# Several syncs of one portfolio's connections often finish within seconds of each other:
# one recompute a few seconds later covers them all.
DEBOUNCE_SECONDS = 3


def ledger_request(*, portfolio_id: int, since: datetime | None = None, full: bool = False,
                   history: bool = True) -> None:
    """Remember what changed and queue one recompute (after commit, debounced): requests that
    arrive before it runs fold into it. `history` False: something besides transactions
    changed from `since` (closes), so every asset replays from there."""
    with transaction.atomic():
        state, _ = LedgerState.objects.select_for_update().get_or_create(portfolio_id=portfolio_id)
        if full:
            state.needs_full = True
        if since is not None:
            state.dirty_since = _earliest(since, state.dirty_since)
        if not history:
            state.history_only = False
        state.save(update_fields=["needs_full", "dirty_since", "history_only"])
        transaction.on_commit(lambda: _queue(portfolio_id))


def _queue(portfolio_id: int) -> None:
    """Runs after the sender's commit (inside a sync step, an import, an API call): a broker
    outage here must not fail the sender. The change stays recorded on the ledger state, so
    the portfolio's next request queues it."""
    from .tasks import recompute_ledger, recompute_queued

    try:
        if recompute_queued(portfolio_id, DEBOUNCE_SECONDS * 10):
            recompute_ledger.apply_async(args=[portfolio_id], queue="ledger", countdown=DEBOUNCE_SECONDS)
    except Exception as exc:  # Redis or the Celery broker unreachable
        log.warning("ledger.queue_failed portfolio=%s error=%s", portfolio_id, type(exc).__name__)


def closes_changed_portfolios(*, asset_ids, since) -> list[int]:
    """Portfolios whose ledger read these closes on or after `since`. The ledger values only
    what has no cash price of its own at a close: swaps, rewards, fees in kind, transfers (the
    network fee), spin-offs; and converts cash in another currency than the base at that
    currency's close. A trade for cash carries its own price, and unrealized P&L is read at
    the latest price when asked: a backfilled or corrected close of a stock bought and sold
    for dollars changes nothing the ledger stored, so it queues nothing."""
    from django.db.models import F, Q

    from backend.brokers.symbols import FIAT
    from backend.market.rates import PIVOTS
    from backend.portfolio.models import Asset
    from backend.sync.models import BrokerTransaction

    ids = list(asset_ids)
    after = BrokerTransaction.objects.filter(occurred_at__gte=since)
    valued = (Q(type__in=("reward", "other"), quantity__isnull=False)
              | Q(type__in=("transfer", "deposit"), quantity__gt=0)      # the fee is valued on arrival
              | Q(type__in=("trade", "fee"), quantity__isnull=False, amount__isnull=True))
    portfolios = set(after.filter(valued, asset_id__in=ids).values_list("portfolio_id", flat=True).distinct())
    # A spin-off values its parent too (the row names only the new shares).
    spun = set(after.filter(broker_type=SPINOFF_CODE).values_list("portfolio_id", flat=True).distinct())
    if spun:
        portfolios |= set(BrokerTransaction.objects.filter(portfolio_id__in=spun, asset_id__in=ids)
                          .values_list("portfolio_id", flat=True).distinct())
    currencies = set(Asset.objects.filter(id__in=ids).filter(Q(asset_class="fiat") | Q(symbol__in=PIVOTS))
                     .values_list("symbol", flat=True))
    if currencies:
        foreign = after.filter(amount__isnull=False, currency__in=FIAT | currencies) \
            .exclude(currency=F("portfolio__base_currency"))
        portfolios |= set(foreign.values_list("portfolio_id", flat=True).distinct())
    return sorted(portfolios)


# -- the user's choices ------------------------------------------------------------------------
def lot_pick_set(*, portfolio: Portfolio, disposal, lots: list[dict]) -> LotPick | None:
    """Specific identification for one sale: [{"lot": Lot, "quantity": Decimal}], or [] to go
    back to the portfolio's method. The pick is tried against the whole history first; one
    that does not fit the lots open at the sale is refused with the reason."""
    from backend.core.exceptions import ApplicationError

    if disposal.kind not in ("sale", "swap"):
        raise ApplicationError("Only a sale or a swap closes lots you can pick.",
                               fields={"lots": [f"this disposal is a {disposal.kind}"]})
    key = disposal.key
    if not lots:
        LotPick.objects.filter(portfolio=portfolio, disposal_key=key).delete()
        ledger_request(portfolio_id=portfolio.pk, full=True)
        return None
    pick = [(item["lot"].key, item["quantity"]) for item in lots]
    try:
        ledger_replay(portfolio=portfolio, extra_picks={key: pick}, strict=True)
    except engine.PickRefused as refused:
        raise ApplicationError("That pick does not fit this sale.", fields={"lots": [str(refused)]}) from None
    with transaction.atomic():
        saved, _ = LotPick.objects.update_or_create(
            portfolio=portfolio, disposal_key=key,
            defaults={"lots": [{"lot_key": k, "quantity": str(q)} for k, q in pick]})
        ledger_request(portfolio_id=portfolio.pk, full=True)
    return saved


def lot_origin(*, lot):
    """The lot a transferred (or merged-into) lot came from, through every transfer and
    reorganisation: its basis is asked there."""
    from .models import Lot

    seen = 0
    while lot.origin in ("transfer", "reorg") and lot.parent_key and seen < 50:
        parent = Lot.objects.filter(portfolio_id=lot.portfolio_id, key=lot.parent_key).first()
        if parent is None:
            break
        lot, seen = parent, seen + 1
    return lot


def lot_basis_set(*, portfolio: Portfolio, lot, cost_basis: Decimal, acquired_at: datetime | None) -> BasisOverride:
    """The user's basis (total, base currency) and acquisition date for a lot of unknown basis.
    Kept on the deposit that opened it, so it survives every recompute."""
    from backend.core.exceptions import ApplicationError

    root = lot_origin(lot=lot)
    if lot.cost_basis is not None or root.origin not in ("deposit", "adjust", "reward", "spinoff"):
        raise ApplicationError("Only a lot the feeds gave no basis for takes a basis from you.",
                               fields={"cost_basis": [f"this lot's basis comes from its {root.origin}"]})
    source_key = root.key.split("#", 1)[0]
    with transaction.atomic():
        override, _ = BasisOverride.objects.update_or_create(
            portfolio=portfolio, source_key=source_key,
            defaults={"cost_basis": cost_basis, "acquired_at": acquired_at})
        ledger_request(portfolio_id=portfolio.pk, full=True)
    return override
