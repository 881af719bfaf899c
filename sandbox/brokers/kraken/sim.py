"""The simulated Kraken Spot REST API (endpoint "kraken", environment "live")."""
from __future__ import annotations

import base64
import hashlib
from collections import Counter
from decimal import Decimal
from typing import Any

from sandbox.base import AccountNotFound, BrokerSim, SimClock
from sandbox.http import Request, Response

from .api import METHODS, PUBLIC_DECAY, PUBLIC_MAX, KrakenApi, error
from .generator import History, advance, generate
from .market import FIAT_CANONICAL, FIATS, SCALE_DECIMALS, Market, fmt_amount
from .state import PAGE, PERMISSIONS, READ_ONLY, T4, TIERS, Account

PERMISSION_PRESETS = {"read_only": READ_ONLY, "full": PERMISSIONS}


def _permissions(value: Any) -> frozenset[str]:
    names = PERMISSION_PRESETS.get(value, value) if isinstance(value, str) else value
    names = frozenset(names)
    unknown = names - set(PERMISSIONS)
    if unknown:
        raise ValueError(f"unknown permissions {sorted(unknown)}; have {list(PERMISSIONS)}")
    return names


class KrakenSim(BrokerSim):
    name = "kraken"
    environments = ("live",)
    record_fault_kinds = frozenset({"drop"})        # a ledger id

    def __init__(self, clock: SimClock):
        super().__init__(clock)
        self.market = Market()
        self.accounts: dict[str, Account] = {}
        self.by_key: dict[str, Account] = {}
        self.histories: dict[str, History] = {}
        self.nonces: dict[str, int] = {}                        # api key -> last accepted nonce
        self.counters: dict[str, list[float]] = {}              # api key -> [counter, at]
        self.public_counters: dict[str, list[float]] = {}       # client ip -> [counter, at]
        self.error_counts: Counter[str] = Counter()
        self.api = KrakenApi(self)

    # -- accounts ---------------------------------------------------------------------------
    def create_account(self, environment: str, *, seed: int, positions: int, activities: int,
                       permissions: Any = "read_only", tier: str = "intermediate", can_trade: bool = False,
                       can_withdraw: bool = False, **options: Any) -> dict[str, Any]:
        """Options: permissions ("read_only" default, "full", or a list of PERMISSIONS),
        can_trade / can_withdraw (add Create & Modify Orders / Withdraw Funds to them, as the
        other simulators' options say), and tier ("starter", "intermediate" default: the usual
        verified account, "pro", or "none" for benchmarks that measure us rather than Kraken's
        budget)."""
        if options:
            raise ValueError(f"unknown kraken options {sorted(options)}; have permissions, can_trade, "
                             "can_withdraw, tier")
        permissions = _permissions(permissions) | {name for name, on in (("trade", can_trade),
                                                                          ("withdraw", can_withdraw)) if on}
        if tier not in TIERS:
            raise ValueError(f"unknown tier {tier!r}; have {sorted(TIERS)}")
        with self.lock:
            n = len(self.accounts) + 1
            key, secret = _credentials(seed, n)
            account = Account(f"kraken:{n}", seed, key, secret, frozenset(permissions), tier, self.market)
            history = generate(account, self.market, positions=positions, activities=activities)
            self.accounts[account.account_id] = account
            self.record_faults[account.account_id] = account.faults
            self.by_key[key] = account
            self.histories[account.account_id] = history
        return {"account_id": account.account_id, "broker_account_id": account.broker_account_id,
                "environment": environment, "credentials": {"api_key": key, "api_secret": secret}}

    def has_account(self, account_id: str) -> bool:
        return account_id in self.accounts

    def check_record_fault(self, account_id: str, fault) -> None:
        if fault.record not in self.account(account_id).ledger_by_id:
            raise ValueError(f"no ledger row {fault.record!r}")

    def receive_in(self, account_id: str, asset: str, amount: Decimal) -> dict[str, Any]:
        row = self._move(account_id, asset, amount, deposit=True)
        return {"record": row.id, "at": row.t4 / T4}

    def send_out(self, account_id: str, asset: str, amount: Decimal, fee: Decimal) -> dict[str, Any]:
        row = self._move(account_id, asset, amount, fee=fee, deposit=False)
        return {"record": row.id, "at": row.t4 / T4}

    def _move(self, account_id: str, asset: str, amount: Decimal, *, deposit: bool, fee: Decimal = Decimal(0)):
        """A deposit or withdrawal posted now (after everything the account has)."""
        history = self.histories[self.account(account_id).account_id]
        code = self._code(asset)
        units, fee_units = int(amount.scaleb(SCALE_DECIMALS)), int(fee.scaleb(SCALE_DECIMALS))
        t4 = max(int(self.clock.now() * T4), history.b.a.last_t4 + 1)
        if deposit:
            return history.b.deposit(t4, code, units)[0]
        if history.b.balance(code) < units + fee_units:
            raise ValueError(f"{account_id} holds less than {amount + fee} {asset}")
        return history.b.withdrawal(t4, code, units, fee_units)[0]

    def _code(self, asset: str) -> str:
        """The Kraken asset id of a code we write (BTC -> XXBT, USD -> ZUSD)."""
        for code in self.market.assets_payload():
            ours = FIAT_CANONICAL.get(code) or self.market.coin_of(code).canonical
            if asset in (code, ours) and "." not in code:
                return code
        raise ValueError(f"kraken has no asset {asset!r}")

    def account(self, account_id: str) -> Account:
        try:
            return self.accounts[account_id]
        except KeyError:
            raise AccountNotFound(account_id) from None

    def advance(self, account_id: str, **changes: Any) -> dict[str, Any]:
        with self.lock:
            self.account(account_id)
            return advance(self.histories[account_id], int(self.clock.now() * T4), changes)

    def revoke(self, account_id: str) -> None:
        with self.lock:
            self.account(account_id).revoked = True

    def corrupt(self, account_id: str, record_id: str, **fields: Any) -> None:
        """Test hook: serve a ledger row, trade or order with some fields replaced."""
        with self.lock:
            self.account(account_id).overrides[record_id] = fields

    def reset_limits(self) -> None:
        with self.lock:
            self.counters.clear()
            self.public_counters.clear()

    # -- truth ------------------------------------------------------------------------------
    def truth(self, account_id: str) -> dict[str, Any]:
        with self.lock:
            a = self.account(account_id)
            return {"broker_account_id": a.broker_account_id, "positions": _positions(a),
                    "cash": {FIAT_CANONICAL[c]: fmt_amount(a.balances.get(c, 0), 4) for c in FIATS if c in a.balances},
                    "transactions": [_transaction(a, row) for row in a.ledger.items],
                    "orders": [{"broker_id": o.txid, "status": _order_status(o)} for o in a.orders.values()],
                    "minimum": minimum(a)}

    # -- HTTP -------------------------------------------------------------------------------
    def handle(self, environment: str, request: Request) -> Response:
        return self.api.handle(request)

    def rate_limited_response(self, retry_after: float) -> Response:
        # Kraken sends no Retry-After; the counter's decay is the only clock (§4.5).
        return error("EAPI:Rate limit exceeded")

    def server_error_response(self, status: int) -> Response:
        if status == 503:
            return Response.json({"error": ["EService:Unavailable"]}, status)
        if status in (502, 504, 520, 522):       # Cloudflare in front of Kraken answers these in HTML
            return Response(status, f"<html><body><h1>Error {status}</h1>cloudflare</body></html>".encode(),
                            {"Content-Type": "text/html"})
        return Response.json({"error": ["EGeneral:Internal error"]}, status)

    def refuse(self, message: str) -> Response:
        self.error_counts[message] += 1
        return error(message)

    # -- the call counters (caller holds self.lock) ----------------------------------------
    def spend(self, account: Account, cost: float) -> bool:
        limit, decay = TIERS[account.tier]
        return _spend(self.counters, account.api_key, cost, limit, decay, self.clock.now())

    def spend_public(self, ip: str) -> bool:
        return _spend(self.public_counters, ip, 1, PUBLIC_MAX, PUBLIC_DECAY, self.clock.now())


def minimum(a: Account) -> dict[str, Any]:
    """The fewest private requests, and the least call-counter cost, a complete first sync
    of the account can make.

    Counted (costs from api.METHODS, 50 records a page, api.PAGE): Balance once (1);
    Ledgers over every ledger row, TradesHistory over every trade (the price, side and
    order of each trade row; 2 each) and ClosedOrders over every closed order (1):
    ceil(n / 50) pages each, one for an empty list, because every answer carries `count`
    (the end is known without an extra request); OpenOrders once (1), which lists every
    open order. Not counted: public calls (Assets, AssetPairs and Ticker are the same for
    every user, and answer on Kraken's per-IP budget, not the key's counter), verifying
    the key, a last look for records that arrived while paging, and QueryOrders (a first
    sync holds no open orders to refresh).
    """
    pages = {"ledgers": (len(a.ledger), "Ledgers"), "trades_history": (len(a.trades), "TradesHistory"),
             "closed_orders": (len(a.closed), "ClosedOrders")}
    detail = {"balance": 1, **{name: max(1, -(-n // PAGE)) for name, (n, _) in pages.items()}, "open_orders": 1}
    cost = METHODS["Balance"].cost + METHODS["OpenOrders"].cost + sum(
        detail[name] * METHODS[method].cost for name, (_, method) in pages.items())
    return {"requests": sum(detail.values()), "cost": float(cost), "detail": detail}


def _spend(counters: dict[str, list[float]], key: str, cost: float, limit: float, decay: float, now: float) -> bool:
    """Kraken's call counter: +cost per call, -decay per second, refuse past `limit`."""
    value, at = counters.get(key, (0.0, now))
    value = max(0.0, value - decay * max(0.0, now - at))
    if value + cost > limit:
        counters[key] = [value, now]
        return False
    counters[key] = [value + cost, now]
    return True


def _credentials(seed: int, n: int) -> tuple[str, str]:
    key_bytes = hashlib.sha256(f"kraken-key:{seed}:{n}".encode()).digest()
    key_bytes += hashlib.sha256(key_bytes).digest()[:10]                     # 42 bytes: 56 chars, as Kraken's keys
    secret = hashlib.sha512(f"kraken-secret:{seed}:{n}".encode()).digest()  # a 64-byte private key
    return base64.b64encode(key_bytes).decode(), base64.b64encode(secret).decode()


def _canonical(account: Account, code: str) -> tuple[str, bool]:
    """(our symbol, is fiat) for a Kraken asset id, shadows merged into their coin."""
    if code in FIATS:
        return FIAT_CANONICAL[code], True
    return account.market.coin_of(code).canonical, False


def _positions(a: Account) -> list[dict[str, str]]:
    merged: dict[str, int] = {}
    for code, units in a.balances.items():
        symbol, fiat = _canonical(a, code)
        if not fiat:
            merged[symbol] = merged.get(symbol, 0) + units
    return [{"symbol": s, "quantity": fmt_amount(u, SCALE_DECIMALS)} for s, u in sorted(merged.items()) if u]


# Ledger type -> our TransactionType for the rows this simulator writes.
_TYPES = {"trade": "trade", "transfer": "transfer", "staking": "reward"}


def _transaction(a: Account, row) -> dict[str, Any]:
    symbol, fiat = _canonical(a, row.asset)
    net = fmt_amount(row.amount - row.fee, 4 if fiat else SCALE_DECIMALS)
    if row.type == "deposit":
        kind = "deposit" if fiat else "transfer"
    elif row.type == "withdrawal":
        kind = "withdrawal" if fiat else "transfer"
    elif row.type == "earn":
        kind = "reward" if row.subtype == "reward" else "transfer"
    else:
        kind = _TYPES.get(row.type, "other")
    return {"broker_id": row.id, "type": kind, "symbol": "" if fiat else symbol,
            "quantity": None if fiat else net, "amount": net if fiat else None, "status": "executed"}


def _order_status(order) -> str:
    if order.status == "open":
        return "partially_filled" if order.vol_exec else "open"
    return {"closed": "filled", "canceled": "canceled", "expired": "expired"}.get(order.status, "other")
