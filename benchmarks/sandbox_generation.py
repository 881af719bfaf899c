"""How long the sandbox takes to generate the largest account of each broker (2,000 positions,
200,000 activities), and, for Kraken, to answer a ledger page deep in that history and at
its start (a page must not scan the history: the two stay close).

    python benchmarks/sandbox_generation.py

Needs no database, Redis or worker: the simulators alone, in this process. The tests check
that these accounts are generated whole; the seconds are measured here, not asserted there.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox.base import SimClock  # noqa: E402
from sandbox.brokers.alpaca.generator import generate  # noqa: E402
from sandbox.brokers.binance import BinanceSim  # noqa: E402
from sandbox.brokers.coinbase import CoinbaseSim  # noqa: E402
from sandbox.brokers.kraken import KrakenSim  # noqa: E402
from sandbox.brokers.kraken.api import ledgers  # noqa: E402

POSITIONS, ACTIVITIES = 2000, 200_000


def timed(fn):
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def main() -> int:
    print(f"largest account ({POSITIONS:,} positions, {ACTIVITIES:,} activities): seconds to generate")
    seconds, _ = timed(lambda: generate(1, POSITIONS, ACTIVITIES))
    print(f"  alpaca    {seconds:6.2f} s")
    for name, sim_class in (("binance", BinanceSim), ("coinbase", CoinbaseSim)):
        seconds, _ = timed(lambda: sim_class(SimClock()).create_account("live", seed=1, positions=POSITIONS,
                                                                         activities=ACTIVITIES))
        print(f"  {name:<9} {seconds:6.2f} s")
    kraken = KrakenSim(SimClock())
    seconds, created = timed(lambda: kraken.create_account("live", seed=1, positions=POSITIONS,
                                                           activities=ACTIVITIES))
    print(f"  kraken    {seconds:6.2f} s")
    account = kraken.accounts[created["account_id"]]
    end = account.ledger.items[-1].id
    for offset in (0, 150_000):
        samples = [timed(lambda: ledgers(account, {"ofs": str(offset), "end": end}))[0] for _ in range(20)]
        print(f"  kraken ledger page at offset {offset:>7,}: median {1000 * sorted(samples)[10]:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
