"""Record makers shared by the history generator and advance(): orders with their fills,
deposits, withdrawals and dividends, each applied to the account's balances at once.

Quantities follow Binance's habits: commission is taken from the asset received (base on
a buy, quote on a sell) unless paid in BNB at a discount; withdrawals are debited
amount + transactionFee; fills of one order share its orderId.
"""
from __future__ import annotations

import random

from .state import OPEN_STATUSES, Account, Deposit, Dividend, Order, Trade, Withdrawal
from .universe import UNIT, SymbolInfo, price_units, stable_hash, usd_price

NETWORKS = {"BTC": "BTC", "ETH": "ETH", "BNB": "BSC", "USDT": "TRX", "SOL": "SOL", "XRP": "XRP", "TRX": "TRX"}
DIVIDEND_INFO = ("BNB Vault", "Launchpool", "ETH 2.0 Staking", "Simple Earn Flexible Airdrop", "Airdrop",
                 "{asset} distribution")
TAKER_FEE = 1000          # 0.1 % = 1/1000 of the amount received
BNB_FEE_USD = 0.00075     # 0.075 % of the notional, paid in BNB (25 % discount)


def to_units(amount: float) -> int:
    return int(amount * UNIT)


class Maker:
    def __init__(self, account: Account, rng: random.Random):
        self.account = account
        self.rng = rng
        last = account.dividends.items[-1] if account.dividends.items else None   # ids only grow
        self._div_id = last.id if last else 1_500_000_000 + rng.randrange(10_000_000)
        self._tran_id = last.tran_id if last else 100_000_000_000 + rng.randrange(1_000_000_000)

    # -- trades ---------------------------------------------------------------------------
    def buy_qty(self, info: SymbolInfo, t: int, usd: float) -> int:
        """Base quantity worth `usd`, shrunk to half the free quote when that is short."""
        qty = to_units(usd / usd_price(info.base, t))
        price = price_units(info.base, info.quote, t)
        affordable = self.account.free(info.quote) // 2 * UNIT // price
        return min(qty, affordable)

    def order(self, info: SymbolInfo, side: str, qty: int, t: int, *, fills: int = 1,
              bnb_fee: bool = False, fee_rate: int = TAKER_FEE, status: str = "FILLED",
              order_type: str = "LIMIT", filled_share: float = 1.0,
              price_factor: float = 1.0, price: int | None = None) -> tuple[Order, list[Trade]]:
        """An order of `qty` base units; `filled_share` of it fills in `fills` trades."""
        book = self.account.book(info)
        price = price or max(1, int(price_units(info.base, info.quote, t) * price_factor))
        book.next_order_id += 1 + int(self.rng.random() * 40)     # other users' orders in between
        order = Order(symbol=info.symbol, order_id=book.next_order_id, client_order_id=self._client_id(),
                      side=side, type=order_type, price=price if order_type == "LIMIT" else 0, orig_qty=qty,
                      executed_qty=0, cumm_quote=0, status=status, time_in_force="GTC", time=t, update_time=t)
        filled = int(qty * filled_share) if filled_share < 1 else qty
        trades = self._fills(info, order, filled, price, t, fills, bnb_fee, fee_rate)
        if status in OPEN_STATUSES:           # what is left of an open order is held back
            left = qty - filled
            order.locked_asset, order.locked = (info.base, left) if side == "SELL" else (info.quote, left * price // UNIT)
        self.account.open_order(order, info)
        for trade in trades:
            self.account.add_trade(trade, info)
        return order, trades

    def _fills(self, info, order, filled, price, t, fills, bnb_fee, fee_rate) -> list[Trade]:
        trades = []
        book = self.account.book(info)
        remaining = filled
        for n in range(fills if filled else 0):
            part = remaining if n == fills - 1 else max(1, filled // fills)
            remaining -= part
            quote = part * price // UNIT
            book.next_trade_id += 1 + int(self.rng.random() * 60)
            fee, fee_asset = self._commission(info, order.side, part, quote, t, bnb_fee, fee_rate)
            trades.append(Trade(symbol=info.symbol, id=book.next_trade_id, order_id=order.order_id, price=price,
                                qty=part, quote_qty=quote, commission=fee, commission_asset=fee_asset,
                                time=t + n, is_buyer=order.side == "BUY",
                                is_maker=order.type == "LIMIT" and self.rng.random() < 0.5))
            order.executed_qty += part
            order.cumm_quote += quote
            order.update_time = t + n
        return trades

    def _commission(self, info, side, qty, quote, t, bnb_fee, fee_rate) -> tuple[int, str]:
        if fee_rate == 0:
            return 0, "BNB"                   # zero-fee promotion pairs (BUSD, 2022-23)
        if bnb_fee:
            usd = quote / UNIT * usd_price(info.quote, t)
            fee = to_units(usd * BNB_FEE_USD / usd_price("BNB", t))
            if fee and self.account.free("BNB") - (qty if info.base == "BNB" and side == "SELL" else 0) > fee:
                return fee, "BNB"
        if side == "BUY":
            return qty // fee_rate, info.base
        return quote // fee_rate, info.quote

    def _client_id(self) -> str:
        return "web_" + format(self.rng.getrandbits(96), "024x")

    # -- wallet ---------------------------------------------------------------------------
    def deposit(self, coin: str, amount: int, t: int, status: int = 1) -> Deposit:
        network = NETWORKS.get(coin, "BSC" if coin != "ETH" else "ETH")
        deposit = Deposit(id=str(10 ** 17 + self.rng.getrandbits(56)), coin=coin, amount=amount, network=network,
                          status=status, address=self._address(coin), tx_id=self._tx_id(), insert_time=t,
                          complete_time=t + self.rng.randint(60_000, 1_800_000))
        self.account.add_deposit(deposit)
        return deposit

    def withdrawal(self, coin: str, amount: int, fee: int, t: int, status: int = 6) -> Withdrawal:
        withdrawal = Withdrawal(id=format(self.rng.getrandbits(128), "032x"), coin=coin, amount=amount, fee=fee,
                                status=status, address=self._address(coin + "/out"),
                                tx_id=self._tx_id() if status == 6 else "", apply_time=t,
                                network=NETWORKS.get(coin, "BSC"))
        self.account.add_withdrawal(withdrawal)
        return withdrawal

    def dividend(self, asset: str, amount: int, t: int) -> Dividend:
        self._div_id += self.rng.randint(1, 5000)
        self._tran_id += self.rng.randint(1, 50_000)
        info = self.rng.choice(DIVIDEND_INFO).format(asset=asset)
        dividend = Dividend(id=self._div_id, asset=asset, amount=amount, div_time=t, en_info=info,
                            tran_id=self._tran_id)
        self.account.add_dividend(dividend)
        return dividend

    def withdrawal_fee(self, coin: str, t: int) -> int:
        """About one dollar's worth, as network fees roughly are."""
        return max(1, to_units(1.0 / usd_price(coin, t)))

    def _address(self, coin: str) -> str:
        return "0x" + format(stable_hash(f"{self.account.seed}/{coin}") * 2654435761 % 2 ** 160, "040x")

    def _tx_id(self) -> str:
        return "0x" + format(self.rng.getrandbits(256), "064x")
