"""`make demo`'s verdict on the API's answers: each fault it must fail on, and what it must
let pass (a holding no source lists is unpriced by right). The answers are shaped as the API
serves them; the demo itself runs end to end with `make demo` (and `--inject-break`)."""
from __future__ import annotations

import copy

from scripts.demo import history_unpriced, problems

RUN_OK = {"id": 1, "state": "succeeded", "failed_step": "", "error_message": ""}
SYNCED = [{"connection": {"broker": "alpaca"}, "run": RUN_OK}]
IMPORTED = {"status": "succeeded", "errors": []}
FIGURES = {
    "portfolio": {"id": 1, "name": "demo alpaca paper"},
    "value": {"unpriced": [{"asset": {"symbol": "SAP:IBIS"}, "reason": "no price from any source"}]},
    "returns": {"history": {"through": "2026-11-30", "rebuilding": False}},
    "breaks": [],
}
LISTED = {"AAPL", "BTC"}


def figures(**changes) -> list[dict]:
    out = copy.deepcopy(FIGURES)
    out.update(changes)
    return [out]


def test_all_good_passes_and_an_unlisted_holding_may_be_unpriced():
    assert problems(SYNCED, IMPORTED, figures(), LISTED) == []


def test_a_failed_sync_fails_naming_its_step():
    failed = [{"connection": {"broker": "kraken"},
               "run": {"id": 4, "state": "failed", "failed_step": "transactions", "error_message": "ibkr: 1012"}}]
    assert problems(failed, IMPORTED, figures(), LISTED) == ["kraken sync 4 failed at transactions: ibkr: 1012"]


def test_a_listed_holding_without_a_price_fails():
    value = {"unpriced": [{"asset": {"symbol": "AAPL"}, "reason": "no price from any source"}]}
    assert problems(SYNCED, IMPORTED, figures(value=value), LISTED) == [
        "demo alpaca paper: AAPL is listed by a market-data source but unpriced (no price from any source)"]


def test_an_open_break_fails():
    found = {"type": "history_missing", "symbol": "ADBE", "connection": 1, "broker_quantity": "106.08",
             "ledger_quantity": "106.079194"}
    assert problems(SYNCED, IMPORTED, figures(breaks=[found]), LISTED) == [
        "demo alpaca paper: open history_missing break on ADBE (connection 1): broker 106.08, history 106.079194"]


def test_a_history_still_rebuilding_or_never_built_fails():
    for state in ({"through": "2026-11-30", "rebuilding": True}, {"through": None, "rebuilding": False}):
        assert problems(SYNCED, IMPORTED, figures(returns={"history": state}), LISTED) == [
            "demo alpaca paper: its value history is not built"]


def test_a_failed_import_fails():
    assert problems(SYNCED, {"status": "failed", "errors": ["row 3"]}, figures(), LISTED) == [
        "the Fidelity import failed: ['row 3']"]


def test_history_unpriced_counts_days_per_holding():
    points = [{"unpriced": ["BUSD"]}, {"unpriced": []}, {"unpriced": ["BUSD", "VOD:LSE"]}]
    assert history_unpriced(points) == {"BUSD": 2, "VOD:LSE": 1}
