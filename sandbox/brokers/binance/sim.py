"""BinanceSim: accounts, keys, rate-limit state and the control hooks (advance, revoke, truth).

One environment, "live": Binance's testnet has no /sapi, so a sync cannot be tested there.
Rate limits are counted per client IP across every account, as Binance does; the limit
and the ban length are attributes (`weights.limit`, `weights.ban_seconds`) for tests.
"""
from __future__ import annotations

import math
import os
import random
import string
from typing import Any

from ...base import AccountNotFound, BrokerSim, SimClock
from ...http import Request, Response
from . import api
from .generator import CORE, QUOTES, HistoryGenerator
from .limits import SapiLimiter, WeightLimiter
from .state import Account
from .truth import truth as account_truth
from .universe import DAY_MS, SymbolInfo, universe

_KEY_CHARS = string.ascii_letters + string.digits
# 5xx bodies by status (errors.md: -1001 internal, -1007 backend timeout, -1008 overloaded).
_SERVER_ERRORS = {
    500: (-1001, "Internal error; unable to process your request. Please try again."),
    503: (-1008, "Server is currently overloaded with other requests. Please try again in a few minutes."),
    504: (-1007, "Timeout waiting for response from backend server. Send status unknown; execution status unknown."),
}
ADVANCE_DEFAULTS = {"fills": 3, "dividend": True, "deposit": True, "close_position": True, "orders": 2,
                    "cancel_orders": 1}


class BinanceSim(BrokerSim):
    name = "binance"
    environments = ("live",)
    record_fault_kinds = frozenset({"drop"})        # "SYMBOL:trade id", a deposit id or a withdrawal id

    def __init__(self, clock: SimClock):
        super().__init__(clock)
        self.accounts: dict[str, Account] = {}
        self._by_key: dict[str, Account] = {}
        self._advance_rngs: dict[str, random.Random] = {}
        # Binance's real limits by default; an operator can raise them for a busy shared test
        # sandbox (one IP for every test; one account synced many times a minute).
        self.weights = WeightLimiter(limit=int(os.environ.get("SANDBOX_BINANCE_WEIGHT_LIMIT", 6000)))
        self.sapi_weights = SapiLimiter(uid_limit=int(os.environ.get("SANDBOX_BINANCE_UID_LIMIT", 180_000)))
        universe()                                      # build the symbol table before the first request

    def now_ms(self) -> int:
        return int(self.clock.now() * 1000)

    def rate_now_ms(self) -> int:
        """The clock of the weight windows: server time (tests may pin it to one minute)."""
        return self.now_ms()

    def reset_limits(self) -> None:
        self.weights.reset()
        self.sapi_weights.reset()

    def account_for_key(self, key: str) -> Account | None:
        return self._by_key.get(key)

    def has_account(self, account_id: str) -> bool:
        return account_id in self.accounts

    def check_record_fault(self, account_id: str, fault) -> None:
        account = self._account(account_id)
        symbol, _, trade_id = fault.record.partition(":")
        book = account.books.get(symbol)
        if book is not None and trade_id.isdigit() and int(trade_id) in set(book.trade_ids):
            return
        if not any(r.id == fault.record for r in account.deposits.items + account.withdrawals.items):
            raise ValueError(f"no trade (SYMBOL:id), deposit or withdrawal {fault.record!r}")

    def _account(self, account_id: str) -> Account:
        try:
            return self.accounts[account_id]
        except KeyError:
            raise AccountNotFound(account_id) from None

    # -- control ----------------------------------------------------------------------------
    def create_account(self, environment: str, *, seed: int, positions: int, activities: int,
                       **options: Any) -> dict[str, Any]:
        """Options: can_trade / can_withdraw (the key's permissions, default read-only)."""
        with self.lock:
            n = len(self.accounts) + 1
            keys = random.Random(f"binance-keys/{seed}/{n}")
            account = Account(
                account_id=f"binance:{n}", uid=100_000_000 + keys.randrange(800_000_000),
                api_key="".join(keys.choice(_KEY_CHARS) for _ in range(64)),
                api_secret="".join(keys.choice(_KEY_CHARS) for _ in range(64)),
                environment=environment, seed=seed, created_ms=self.now_ms(),
                restrictions=_restrictions(bool(options.get("can_trade")), bool(options.get("can_withdraw")),
                                           self.now_ms() - 30 * DAY_MS))
            day_start = account.created_ms // DAY_MS * DAY_MS      # same seed, same bytes all day
            HistoryGenerator(account, random.Random(seed), day_start).run(positions, activities)
            self.accounts[account.account_id] = account
            self._by_key[account.api_key] = account
            self._advance_rngs[account.account_id] = random.Random(f"binance-advance/{seed}")
        return {"account_id": account.account_id, "broker_account_id": str(account.uid),
                "environment": environment,
                "credentials": {"api_key": account.api_key, "api_secret": account.api_secret}}

    def revoke(self, account_id: str) -> None:
        with self.lock:
            self._account(account_id).revoked = True

    def truth(self, account_id: str) -> dict[str, Any]:
        with self.lock:
            return account_truth(self._account(account_id), self.now_ms())

    def advance(self, account_id: str, **changes: Any) -> dict[str, Any]:
        """New fills (one on a pair never traded before), a dividend, a deposit, a coin
        sold to zero, new open orders and a cancellation; `changes` picks which. Also
        `pending_deposit` (not credited yet) and `settle_deposits` (credit them)."""
        with self.lock:
            account = self._account(account_id)
            wanted = changes or ADVANCE_DEFAULTS
            return _Advance(account, self._advance_rngs[account_id], self.now_ms()).run(wanted)

    # -- HTTP -------------------------------------------------------------------------------
    def handle(self, environment: str, request: Request) -> Response:
        with self.lock:
            return api.handle(self, environment, request)

    def rate_limited_response(self, retry_after: float) -> Response:
        return Response.json({"code": -1003, "msg": api.TOO_MUCH_WEIGHT.format(limit=self.weights.limit)}, 429,
                             {"Retry-After": str(math.ceil(retry_after))})

    def server_error_response(self, status: int) -> Response:
        code, msg = _SERVER_ERRORS.get(status, (-1000, "An unknown error occurred while processing the request."))
        return Response.json({"code": code, "msg": msg}, status)


def _restrictions(can_trade: bool, can_withdraw: bool, created: int) -> dict[str, Any]:
    return {"ipRestrict": False, "createTime": created, "enableReading": True, "enableWithdrawals": can_withdraw,
            "enableInternalTransfer": False, "enableMargin": False, "enableFutures": False,
            "permitsUniversalTransfer": False, "enableVanillaOptions": False, "enableFixApiTrade": False,
            "enableFixReadOnly": False, "enableSpotAndMarginTrading": can_trade,
            "enablePortfolioMarginTrading": False}


class _Advance:
    """One advance(): events a millisecond or two apart in the last moment before now
    (so a sync started after advance() returns sees them all)."""

    def __init__(self, account: Account, rng: random.Random, now: int):
        self.account = account
        self.rng = rng
        self.t = max(account.last_ms, now - 200)
        self.gen = HistoryGenerator(account, rng, now)
        self._refresh()

    def _refresh(self) -> None:
        held = [a for a, units in self.account.totals.items() if units > 0]
        self.gen.held = sorted(held)
        self.gen.active = self.gen.active_symbols(set(held))

    def _tick(self) -> int:
        self.t += self.rng.randint(1, 3)
        return self.t

    def run(self, wanted: dict[str, Any]) -> dict[str, Any]:
        added: dict[str, Any] = {}
        if wanted.get("cancel_orders"):
            added["canceled_orders"] = self._cancel(int(wanted["cancel_orders"]))
        if wanted.get("fills"):
            added.update(self._fills(int(wanted["fills"])))
        if wanted.get("dividend"):
            added["dividend"] = f"dividend:{self.gen.random_dividend(self._tick()).id}"
        if wanted.get("deposit"):
            added["deposit"] = f"deposit:{self.gen.random_deposit(self._tick()).id}"
        if wanted.get("pending_deposit"):              # seen on-chain, not credited yet (status 0)
            coin = self.rng.choice(self.gen.held or ["USDT"])
            added["pending_deposit"] = f"deposit:{self.gen.maker.deposit(coin, 10 ** 8, self._tick(), status=0).id}"
        if wanted.get("settle_deposits"):
            waiting = [d for d in self.account.deposits.items if d.pending]
            for deposit in waiting:
                self.account.settle_deposit(deposit, self._tick())
            added["settled_deposits"] = [f"deposit:{d.id}" for d in waiting]
        if wanted.get("close_position"):
            added.update(self._close())
        if wanted.get("orders"):
            self._refresh()
            added["orders"] = self._open(int(wanted["orders"]))
        return added

    def _cancel(self, n: int) -> list[str]:
        orders = sorted(self.account.open_orders.values(), key=lambda o: (o.time, o.order_id))[:n]
        for order in orders:
            self.account.cancel_order(order, self._tick())
        return [f"{o.symbol}:{o.order_id}" for o in orders]

    def _fills(self, n: int) -> dict[str, Any]:
        trades, new_symbol = [], None
        info, side = self._untraded_pair()
        if info is not None:
            new_symbol = info.symbol
            trades += self.gen.random_order(self._tick(), max_fills=1, info=info, side=side)
        for _ in range(n * 4):
            if len(trades) >= n:
                break
            trades += self.gen.random_order(self._tick(), max_fills=1)
        return {"trades": [f"trade:{t.symbol}:{t.id}" for t in trades], "new_symbol": new_symbol}

    def _untraded_pair(self) -> tuple[SymbolInfo | None, str]:
        """A pair never traded whose base the account holds: bought with a held quote
        (ETHBNB...), or else sold for a quote it does not hold yet (BTCFDUSD...)."""
        held = set(self.gen.held)
        fresh = [info for coin in sorted(held) for info in universe().pairs_of(coin)
                 if info.base == coin and info.trading and info.symbol not in self.account.books]
        for info in fresh:
            if info.quote in held and info.quote in QUOTES and self.account.free(info.quote) > 10 ** 6:
                return info, "BUY"
        for info in fresh:
            if self.account.free(info.base) > 10 ** 4:
                return info, "SELL"
        return None, ""

    def _close(self) -> dict[str, Any]:
        held = [c for c in self.gen.held if c not in CORE and universe().find(c, "USDT")]
        held = held or [c for c in self.gen.held if c != "USDT" and universe().find(c, "USDT")]
        if not held:
            return {}
        moved = [c for c in held if c in self.account.moved_assets]
        coin = (moved or held)[0]
        record = self.gen.close_coin(coin, self._tick(), sell=True)
        self._refresh()
        return {"closed": coin, "close_record": record}

    def _open(self, n: int) -> list[str]:
        coins = [c for c in self.gen.held if c != "USDT" and universe().find(c, "USDT")]
        opened = []
        for _ in range(n if coins else 0):
            order = self.gen.open_order(universe().find(self.rng.choice(coins), "USDT"), self._tick())
            if order is not None:
                opened.append(f"{order.symbol}:{order.order_id}")
        return opened
