"""Transfers between a user's own connections: what pairs, what does not, and the fee."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given, settings, strategies as st

from backend.ledger.transfers import Movement, match_transfers, tx_hash_of, unmatched

D = Decimal
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
BTC, ETH = 1, 2
COINBASE, KRAKEN, BINANCE = 10, 20, 30


def move(pk, conn, qty, minutes=0, asset=BTC, fee=None, tx_hash=""):
    return Movement(id=pk, connection_id=conn, asset_id=asset, quantity=D(qty),
                    occurred_at=T0 + timedelta(minutes=minutes), fee=D(fee) if fee else None, tx_hash=tx_hash)


def test_a_send_and_its_receipt_pair_and_the_difference_is_the_network_fee():
    # 0.5 BTC leave Coinbase, 0.4995 BTC arrive at Kraken 40 minutes later: one transfer,
    # fee 0.5 - 0.4995 = 0.0005 BTC (0.1% of what was sent, under the 5% cap).
    [match] = match_transfers([move(1, COINBASE, "-0.5"), move(2, KRAKEN, "0.4995", minutes=40)])
    assert (match.withdrawal_id, match.deposit_id, match.fee, match.matched_by) == (1, 2, D("0.0005"), "amount_time")


def test_the_same_hash_pairs_even_far_apart_in_time_and_wins_over_a_closer_amount():
    w = move(1, BINANCE, "-2", asset=ETH, tx_hash="0xABC")
    decoy = move(2, KRAKEN, "2", minutes=5, asset=ETH)
    real = move(3, COINBASE, "1.99", minutes=60 * 24 * 20, asset=ETH, tx_hash="0xabc")
    [match] = match_transfers([w, decoy, real])
    assert (match.deposit_id, match.matched_by, match.fee) == (3, "tx_hash", D("0.01"))
    assert [m.id for m in unmatched([w, decoy, real], [match])] == [2]


def test_what_does_not_pair():
    cases = [
        [move(1, COINBASE, "-1"), move(2, KRAKEN, "1.0001", minutes=10)],           # more arrived than left
        [move(1, COINBASE, "-1"), move(2, KRAKEN, "0.9", minutes=10)],              # 10% lost: not a fee
        [move(1, COINBASE, "-1"), move(2, KRAKEN, "1", minutes=60 * 24 * 9)],       # 9 days later
        [move(1, COINBASE, "-1"), move(2, KRAKEN, "1", minutes=-120)],              # 2 hours before it left
        [move(1, COINBASE, "-1"), move(2, KRAKEN, "1", minutes=10, asset=ETH)],     # another asset
    ]
    for movements in cases:
        assert match_transfers(movements) == [], movements


def test_a_reported_withdrawal_fee_larger_than_the_cap_still_pairs():
    # A small withdrawal whose fixed fee is 20% of it: the feed reports the fee, so it pairs.
    [match] = match_transfers([move(1, BINANCE, "-0.001", fee="0.0002"), move(2, KRAKEN, "0.0008", minutes=30)])
    assert match.fee == D("0.0002")


def test_moves_inside_one_connection_pair_as_internal():
    # Kraken: 3 ETH from spot to staking, the same minute; and a real send to Coinbase.
    movements = [move(1, KRAKEN, "-3", asset=ETH), move(2, KRAKEN, "3", asset=ETH),
                 move(3, KRAKEN, "-1", minutes=90, asset=ETH), move(4, COINBASE, "1", minutes=100, asset=ETH)]
    matches = match_transfers(movements)
    assert [(m.withdrawal_id, m.deposit_id, m.internal) for m in matches] == [(1, 2, True), (3, 4, False)]


def test_hashes_from_each_feed():
    assert tx_hash_of("binance", {"txId": "0xdead"}) == "0xdead"
    assert tx_hash_of("binance", {"txId": "Internal transfer 123"}) == ""
    assert tx_hash_of("coinbase", {"network": {"hash": "abc"}}) == "abc"
    assert tx_hash_of("kraken", {"refid": "X"}) == ""


amounts = st.decimals(min_value=D("0.0001"), max_value=D("100"), places=4)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(amounts, st.integers(0, 2), st.integers(0, 2), st.integers(0, 600),
                          st.integers(0, 30)), min_size=1, max_size=12), st.randoms())
def test_pairs_are_sound_and_do_not_depend_on_order(legs, rnd):
    movements = []
    for i, (amount, src, dst, minutes, fee_bp) in enumerate(legs):
        movements.append(move(2 * i + 1, src, -amount, minutes=minutes))
        movements.append(move(2 * i + 2, dst, amount - amount * fee_bp / 10000, minutes=minutes + 5))
    matches = match_transfers(movements)
    shuffled = list(movements)
    random.Random(rnd.random()).shuffle(shuffled)
    assert match_transfers(shuffled) == matches                   # deterministic
    by_id = {m.id: m for m in movements}
    used = [i for m in matches for i in (m.withdrawal_id, m.deposit_id)]
    assert len(used) == len(set(used))                             # each leg in at most one pair
    for m in matches:
        w, d = by_id[m.withdrawal_id], by_id[m.deposit_id]
        assert w.quantity < 0 < d.quantity and w.asset_id == d.asset_id
        assert m.fee == m.sent - m.received >= 0                   # nothing is created on the way
        assert m.internal == (w.connection_id == d.connection_id)
