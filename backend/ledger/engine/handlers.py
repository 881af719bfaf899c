"""What each kind of event does to the ledger. One function per kind, each small enough to
read against the rule it implements (IRS Publication 550; Notice 2014-21 for crypto)."""
from __future__ import annotations

from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING

from .types import ZERO, Event, Kind, Lot

# Shares split between lots are cut at the places the database stores (the last lot takes
# the rest), so the stored lots add up to exactly what the broker delivered.
STORED = Decimal(1).scaleb(-18)

if TYPE_CHECKING:
    from .ledger import Ledger


def trade(ledger: "Ledger", event: Event) -> None:
    """Buy, sell or swap. With cash and one asset, the cash is the price. Coin for coin, both
    sides are worth the fair value of what was received (else of what was given) at the trade.
    Fees paid in an asset that is not traded are disposals of it at fair value, capitalised
    into the acquisition's basis (or taken off the sale's proceeds)."""
    if len(event.legs) == 1 and event.cash and not event.fee_legs:    # most events: one asset for cash
        leg, cash = event.legs[0], ledger.cash_value(event.cash, event.at)
        value = None if cash is None else abs(cash)
        if leg.quantity < 0:
            ledger.dispose(event, leg.asset_id, -leg.quantity, value, kind="sale")
        else:
            ledger.acquire(event, leg.asset_id, leg.quantity, value)
        return
    fee_value = _fee_legs(ledger, event)
    gained = [leg for leg in event.legs if leg.quantity > 0]
    given = [leg for leg in event.legs if leg.quantity < 0]
    cash = ledger.cash_value(event.cash, event.at) if event.cash else None
    if len(event.legs) == 1 and event.cash:
        values = {event.legs[0].asset_id: None if cash is None else abs(cash)}
    elif len(gained) == 1 and len(given) == 1:
        fair = ledger.fair_value(gained[0].asset_id, gained[0].quantity, event.at)
        if fair is None:
            fair = ledger.fair_value(given[0].asset_id, -given[0].quantity, event.at)
        values = {gained[0].asset_id: fair, given[0].asset_id: fair}
    else:
        values = {leg.asset_id: ledger.fair_value(leg.asset_id, abs(leg.quantity), event.at) for leg in event.legs}
    for leg in given:
        proceeds = values[leg.asset_id]
        if not gained and fee_value != ZERO and proceeds is not None:
            proceeds = None if fee_value is None else proceeds - fee_value
            fee_value = ZERO
        ledger.dispose(event, leg.asset_id, -leg.quantity, proceeds, kind="sale" if event.cash else "swap")
    for i, leg in enumerate(gained):
        cost = values[leg.asset_id]
        if i == 0 and fee_value != ZERO and cost is not None:
            cost = None if fee_value is None else cost + fee_value
            fee_value = ZERO
        ledger.acquire(event, leg.asset_id, leg.quantity, cost)
    if fee_value != ZERO:             # nothing to capitalise it into: an expense
        ledger.add_income(event, "fee", None if fee_value is None else -fee_value, "", ZERO, None, suffix=":fee")


def _fee_legs(ledger: "Ledger", event: Event) -> Decimal | None:
    total: Decimal | None = ZERO
    for leg in event.fee_legs:
        value = ledger.fair_value(leg.asset_id, -leg.quantity, event.at)
        ledger.dispose(event, leg.asset_id, -leg.quantity, value, kind="fee", suffix=":fee")
        total = None if total is None or value is None else total + value
    return total


def income(ledger: "Ledger", event: Event) -> None:
    """Cash income is its amount; a reward in kind opens a lot at its fair value when received,
    and that value is the income (Rev. Rul. 2023-14). A clawback reverses it."""
    if not event.legs:
        amount = ledger.cash_value(event.cash, event.at)
        currency, original = event.cash[0] if event.cash else ("", ZERO)
        ledger.add_income(event, event.income_kind, amount, currency, original, event.asset_id)
        return
    for leg in event.legs:
        value = _reward_value(ledger, event, leg.asset_id, abs(leg.quantity))
        if value is None and leg.quantity > 0:      # unpriced: the user's value, if given
            value = ledger.overrides.get(event.key, (None, None))[0]
        if leg.quantity > 0:
            ledger.acquire(event, leg.asset_id, leg.quantity, value, origin="reward")
        else:
            ledger.dispose(event, leg.asset_id, -leg.quantity, value, kind="clawback")
        signed = value if value is None or leg.quantity > 0 else -value
        ledger.add_income(event, event.income_kind, signed, "", leg.quantity, leg.asset_id, suffix=f"#{leg.asset_id}")


def _reward_value(ledger: "Ledger", event: Event, asset_id: int, quantity: Decimal) -> Decimal | None:
    if event.price is not None and event.price_currency:
        rate = ledger.pricer.fx(event.price_currency, event.at.date())
        if rate is not None:
            return quantity * event.price * rate
    return ledger.fair_value(asset_id, quantity, event.at)


def fee(ledger: "Ledger", event: Event) -> None:
    """A fee on its own: cash is an expense; in kind, a disposal of the coin at fair value."""
    for leg in event.legs:
        value = ledger.fair_value(leg.asset_id, -leg.quantity, event.at)
        ledger.dispose(event, leg.asset_id, -leg.quantity, value, kind="fee")
        ledger.add_income(event, "fee", None if value is None else -value, "", leg.quantity, leg.asset_id,
                          suffix=f"#{leg.asset_id}")
    if event.cash:
        currency, original = event.cash[0]
        ledger.add_income(event, event.income_kind or "fee", ledger.cash_value(event.cash, event.at), currency,
                          original, event.asset_id)


def split(ledger: "Ledger", event: Event) -> None:
    """Quantities times the ratio, unit costs divided by it, total basis and dates unchanged.
    What the broker did not deliver (a fraction) is sold for the cash in lieu."""
    book = ledger.book(event.asset_id, event.connection_id)
    held = book.quantity()
    delta = sum((leg.quantity for leg in event.legs), ZERO)
    if not held:
        return
    ratio = event.ratio if event.ratio else (held + delta) / held
    for lot in list(book.lots.values()):
        lot.quantity *= ratio
        lot.remaining *= ratio
        ledger.touch(lot)
    fraction = held * ratio - (held + delta)
    if fraction > 0 and book.sign() > 0:
        proceeds = ledger.cash_value(event.cash, event.at) if event.cash else ZERO
        ledger.dispose(event, event.asset_id, fraction, proceeds, kind="cash_in_lieu")


def return_of_capital(ledger: "Ledger", event: Event) -> None:
    """Lowers the basis of the open lots pro rata; beyond zero it is a capital gain."""
    amount = ledger.cash_value(event.cash, event.at)
    book = ledger.book(event.asset_id, event.connection_id)
    lots = [lot for lot in book.lots.values() if not lot.is_short and lot.basis is not None and lot.remaining]
    excess = amount or ZERO
    held = sum((lot.remaining for lot in lots), ZERO)
    if amount and held:
        excess = ZERO
        for lot in lots:
            cut = amount * lot.remaining / held
            applied = min(cut, lot.basis)
            lot.basis -= applied
            excess += cut - applied
            ledger.repush(lot)
    if excess > 0:
        ledger.dispose(event, event.asset_id, ZERO, excess, kind="return_of_capital")


def transfer_out(ledger: "Ledger", event: Event) -> None:
    """Lots leave in the method's order and wait, with their dates and basis, for the deposit
    that pairs with this withdrawal (a withdrawal to outside simply never pairs)."""
    for leg in event.legs:
        book = ledger.book(leg.asset_id, event.connection_id)
        left, parked = -leg.quantity, []
        for lot in book.in_order():
            if left <= 0 or lot.is_short:
                break
            q = min(left, lot.remaining)
            piece = Lot(key=lot.key, asset_id=lot.asset_id, connection_id=lot.connection_id, quantity=q,
                        remaining=q, basis=lot.take(q), acquired_at=lot.acquired_at, holding_from=lot.holding_from,
                        origin=lot.origin, source_key=lot.source_key, tx_id=lot.tx_id)
            parked.append(piece)
            ledger.close_if_empty(lot, event.at, "transfer")
            left -= q
        if left > 0:                  # more left than the history shows: basis unknown
            parked.append(Lot(key=f"{event.key}#{leg.asset_id}", asset_id=leg.asset_id,
                              connection_id=event.connection_id, quantity=left, remaining=left, basis=None,
                              acquired_at=event.at, holding_from=event.at, origin="deposit", source_key=event.key,
                              tx_id=event.tx_id))
        ledger.parked[event.key] = parked


def transfer_in(ledger: "Ledger", event: Event) -> None:
    """A paired deposit re-opens the withdrawal's lots here, dates and basis kept; what was lost
    on the way is a disposal at fair value (the network fee). Otherwise the lot's basis is
    the unit cost an import or manual entry gave, or unknown until the user gives it."""
    for leg in event.legs:
        pieces = ledger.parked.pop(event.withdrawal_key, None) if event.withdrawal_key else None
        if pieces is None:
            basis, acquired = ledger.overrides.get(event.key, (None, None))
            if basis is None and event.price is not None:       # an opening holding with its unit cost
                rate = ledger.pricer.fx(event.price_currency, event.at.date())
                basis = None if rate is None else leg.quantity * event.price * rate
            ledger.acquire(event, leg.asset_id, leg.quantity, basis, origin="deposit", acquired_at=acquired)
            continue
        if event.fee_quantity > 0:
            _transfer_fee(ledger, event, leg.asset_id, pieces)
        for i, piece in enumerate(p for p in pieces if p.remaining):
            ledger.new_lot(key=f"{event.key}#{leg.asset_id}.{i}", asset_id=leg.asset_id,
                           connection_id=event.connection_id, quantity=piece.remaining, basis=piece.basis,
                           acquired_at=piece.acquired_at, holding_from=piece.holding_from, origin="transfer",
                           source_key=event.key, tx_id=event.tx_id, parent_key=piece.key)


def _transfer_fee(ledger: "Ledger", event: Event, asset_id: int, pieces: list[Lot]) -> None:
    """Close the fee out of the parked pieces (first in, first out) as a disposal at fair value."""
    from .ledger import term_of
    from .types import Disposal, LotLink

    value = ledger.fair_value(asset_id, event.fee_quantity, event.at)
    disposal = Disposal(key=f"{event.key}#{asset_id}:fee", asset_id=asset_id, connection_id=event.connection_id,
                        disposed_at=event.at, quantity=event.fee_quantity, proceeds=value, kind="transfer_fee",
                        tx_id=event.tx_id, source_key=event.key)
    left = event.fee_quantity
    for piece in pieces:
        if left <= 0:
            break
        q = min(left, piece.remaining)
        basis = piece.take(q)
        proceeds = None if value is None else value * q / event.fee_quantity
        disposal.links.append(LotLink(lot_key=piece.key, quantity=q, basis=basis, proceeds=proceeds,
                                      acquired_at=piece.acquired_at, holding_from=piece.holding_from,
                                      term=term_of(piece.holding_from, event.at)))
        left -= q
    ledger._record(disposal)
    ledger.add_income(event, "fee", None if value is None else -value, "", -event.fee_quantity, asset_id,
                      suffix=":fee")


def adjust(ledger: "Ledger", event: Event) -> None:
    """Holding changes without a price (reorganisations, option expiry or assignment): what
    leaves is sold for the cash it brought (0 when none: a cash merger is a sale); what arrives
    costs the cash paid, or has unknown basis. One security exchanged for another (a
    stock-for-stock merger) is a reorganisation instead."""
    cash = ledger.cash_value(event.cash, event.at) if event.cash else ZERO
    if len(event.legs) == 2 and event.legs[0].quantity * event.legs[1].quantity < 0:
        reorganize(ledger, event, cash)
        return
    for leg in event.legs:
        if leg.quantity < 0:
            ledger.dispose(event, leg.asset_id, -leg.quantity, max(cash or ZERO, ZERO), kind="sale")
        else:
            basis, acquired = ledger.overrides.get(event.key, (None, None))
            if basis is None and cash is not None and cash < 0:
                basis = -cash
            ledger.acquire(event, leg.asset_id, leg.quantity, basis, origin="adjust", acquired_at=acquired)


def reorganize(ledger: "Ledger", event: Event, cash: Decimal | None) -> None:
    """A stock-for-stock merger (IRC 354/358): the new shares take the old lots' basis and
    dates, lot by lot, in the exchange ratio. Cash received with them (boot) is reported as a
    gain in full, a disposal of no shares; IRC 356 caps the gain at the boot, so this is the
    most it can be. Old shares the history does not show arrive with unknown basis."""
    old = next(leg for leg in event.legs if leg.quantity < 0)
    new = next(leg for leg in event.legs if leg.quantity > 0)
    book = ledger.book(old.asset_id, event.connection_id)
    ratio, left, made = new.quantity / -old.quantity, -old.quantity, ZERO
    for lot in book.in_order():
        if left <= 0 or lot.is_short:
            break
        q = min(left, lot.remaining)
        left -= q
        quantity = new.quantity - made if left <= 0 else (q * ratio).quantize(STORED, ROUND_DOWN)
        made += quantity
        basis = lot.take(q)
        ledger.close_if_empty(lot, event.at, "reorganization")
        ledger.new_lot(key=f"{event.key}#{new.asset_id}.{lot.key}", asset_id=new.asset_id,
                       connection_id=event.connection_id, quantity=quantity, basis=basis, acquired_at=lot.acquired_at,
                       holding_from=lot.holding_from, origin="reorg", source_key=event.key, tx_id=event.tx_id,
                       parent_key=lot.key)
    if left > 0:
        basis, acquired = ledger.overrides.get(event.key, (None, None))
        ledger.acquire(event, new.asset_id, new.quantity - made, basis, origin="adjust", acquired_at=acquired)
    if cash is None or cash > 0:
        ledger.dispose(event, old.asset_id, ZERO, cash, kind="merger_cash")


def spinoff(ledger: "Ledger", event: Event) -> None:
    """Shares of a spun-off company arrive for the parent's held shares (IRC 355/358, Pub 550
    "Stock Rights"/"Nontaxable stock distributions"): the parent's basis is split between the
    two by fair value on the distribution day (the closes of both), lot by lot; each new lot
    keeps its parent lot's dates. A basis the user gives for the new shares (from the company's
    Form 8937) is taken from the parent's instead. Unpriced and not given: the new shares'
    basis is unknown and the parent keeps its own."""
    [leg] = event.legs
    parents = [lot for lot in ledger.book(event.asset_id, event.connection_id).in_order() if not lot.is_short]
    held = sum((lot.remaining for lot in parents), ZERO)
    if not held:
        ledger.acquire(event, leg.asset_id, leg.quantity, None, origin="spinoff")
        return
    share = _spinoff_share(ledger, event, leg, parents, held)
    made = ZERO
    for i, lot in enumerate(parents):
        quantity = leg.quantity - made if i == len(parents) - 1 else \
            (leg.quantity * lot.remaining / held).quantize(STORED, ROUND_DOWN)
        made += quantity
        moved = None if share is None or lot.basis is None else lot.basis * share
        if moved is not None:
            lot.basis -= moved
            ledger.repush(lot)
        ledger.new_lot(key=f"{event.key}#{leg.asset_id}.{lot.key}", asset_id=leg.asset_id,
                       connection_id=event.connection_id, quantity=quantity, basis=moved, acquired_at=lot.acquired_at,
                       holding_from=lot.holding_from, origin="spinoff", source_key=event.key, tx_id=event.tx_id,
                       parent_key=lot.key)


def _spinoff_share(ledger: "Ledger", event: Event, leg, parents: list[Lot], held: Decimal) -> Decimal | None:
    """The share of the parent's basis that moves to the spun-off shares."""
    given = ledger.overrides.get(event.key, (None, None))[0]
    if given is not None:
        total = sum((lot.basis for lot in parents if lot.basis is not None), ZERO)
        return min(given / total, Decimal(1)) if total > 0 else None
    parent = ledger.fair_value(event.asset_id, held, event.at)
    child = ledger.fair_value(leg.asset_id, leg.quantity, event.at)
    if parent is None or child is None or parent + child <= 0:
        return None
    return child / (parent + child)


HANDLERS = {Kind.TRADE: trade, Kind.INCOME: income, Kind.FEE: fee, Kind.SPLIT: split, Kind.ROC: return_of_capital,
            Kind.TRANSFER_OUT: transfer_out, Kind.TRANSFER_IN: transfer_in, Kind.ADJUST: adjust,
            Kind.SPINOFF: spinoff}
