"""What `make demo` prints: the figures a portfolio tracker shows, from the API's answers
(scripts/demo.py fetches them). Only formatting here: no requests, no checks."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

TOP_HOLDINGS = 5
LEDGER_ROWS = 8


def money(value: str | None, none: str = "unpriced") -> str:
    return none if value is None else f"{Decimal(value):,.2f}"


def percent(value: str | None) -> str:
    return "n/a" if value is None else f"{Decimal(value) * 100:.2f}%"


def age(at: str) -> str:
    seconds = (datetime.now(timezone.utc) - datetime.fromisoformat(at.replace("Z", "+00:00"))).total_seconds()
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} d"
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{max(seconds, 0) / 60:.0f} min"


def syncs(results: list[dict], seconds: float) -> None:
    print(f"\n== syncs ({len(results)} brokers, {seconds:.1f}s from the first key check to the last run's end)")
    for r in results:
        connection, run = r["connection"], r["run"]
        took = (datetime.fromisoformat(run["finished_at"].replace("Z", "+00:00"))
                - datetime.fromisoformat(run["queued_at"].replace("Z", "+00:00"))).total_seconds()
        failure = "" if run["state"] == "succeeded" else f" at {run['failed_step']}: {run['error_message']}"
        print(f"   {connection['broker']:8s} {connection['environment']:5s} "
              f"account {connection['broker_account_id']:>14s}  run {run['id']}: {run['state']} in {took:5.1f}s{failure}; {r['positions']} open positions, "
              f"{r['transactions']} transactions, {r['orders']} orders")


def csv_import(record: dict) -> None:
    print(f"\n== CSV import ({record['format']}) into portfolio {record['portfolio']}: {record['status']}; "
          f"rows read {record['rows_read']}, imported {record['rows_imported']}, "
          f"duplicates {record['rows_duplicate']}, errors {record['rows_error']}")


def portfolio(figures: dict, year: int) -> None:
    p, value, returns = figures["portfolio"], figures["value"], figures["returns"]
    ccy = value["currency"]
    print(f"\n== portfolio {p['id']} {p['name']!r} ({ccy})")
    _value(value)
    _returns(returns, figures["history_unpriced"])
    _ledger(figures["holdings"], figures["disposals"], figures["income"], ccy, year)
    breaks = figures["breaks"]
    print(f"   open reconcile breaks: {len(breaks) or 'none'}")
    for b in breaks:
        print(f"     {b['type']:20s} {b['symbol']:8s} broker {b['broker_quantity']} history {b['ledger_quantity']} "
              f"(connection {b['connection']}): {b['resolution']}")


def _value(value: dict) -> None:
    ccy = value["currency"]
    excluded = f" (excludes {value['excludes_unpriced']} unpriced)" if value["excludes_unpriced"] else ""
    print(f"   value now {money(value['total'])} {ccy}, of which cash {money(value['cash'])}{excluded}")
    for h in value["holdings"][:TOP_HOLDINGS]:
        print(f"     {h['asset']['symbol']:10s} {Decimal(h['quantity']):>14,.6f} x {Decimal(h['price']):>12,.4f} "
              f"{h['quote']:4s} ({h['source']}, {age(h['price_at'])} old) = {money(h['value']):>12} {ccy}")
    if len(value["holdings"]) > TOP_HOLDINGS:
        print(f"     ... and {len(value['holdings']) - TOP_HOLDINGS} more holdings")
    for u in value["unpriced"]:
        print(f"     unpriced: {u['asset']['symbol']} {u['quantity']} ({u['reason']})")


def _returns(returns: dict, unpriced: dict[str, int]) -> None:
    xirr = returns["xirr"]
    print(f"   since inception ({returns['start']} .. {returns['end']}): TWR {percent(returns['twr'])}, "
          f"XIRR {percent(xirr['rate']) if xirr['rate'] is not None else xirr['status']}, "
          f"gain {money(returns['gain'])}, net flows {money(returns['flows'])}")
    if returns.get("unpriced_days"):
        worst = sorted(unpriced.items(), key=lambda item: (-item[1], item[0]))
        print(f"   {returns['unpriced_days']} day(s) of the history with an unpriced holding: "
              + ", ".join(f"{what} ({days} d)" for what, days in worst[:6]) + (" ..." if len(worst) > 6 else ""))


def _ledger(holdings: list[dict], disposals: list[dict], income: list[dict], ccy: str, year: int) -> None:
    ranked = sorted(holdings, key=lambda h: Decimal(h["market_value"] or 0), reverse=True)
    print(f"   holdings ({len(holdings)}), cost basis and unrealized P&L in {ccy}:")
    for h in ranked[:LEDGER_ROWS]:
        print(f"     {h['asset']:10s} {Decimal(h['quantity']):>14,.6f}  basis {money(h['cost_basis'], 'unknown'):>12}"
              f"  value {money(h['market_value']):>12}  unrealized {money(h['unrealized'], 'n/a'):>11}")
    if len(ranked) > LEDGER_ROWS:
        print(f"     ... and {len(ranked) - LEDGER_ROWS} more")
    unrealized = sum((Decimal(h["unrealized"]) for h in holdings if h["unrealized"] is not None), Decimal(0))
    unknown = sum(1 for h in holdings if h["unrealized"] is None)
    realized = sum((Decimal(d["gain"]) for d in disposals if d["gain"] is not None), Decimal(0))
    incomplete = sum(1 for d in disposals if d["incomplete"])
    print(f"   unrealized P&L {unrealized:,.2f}" + (f" ({unknown} without a price or basis)" if unknown else "")
          + f"; realized P&L {year} {realized:,.2f} over {len(disposals)} disposals"
          + (f" ({incomplete} incomplete)" if incomplete else ""))
    totals: dict[str, tuple[Decimal, bool]] = {}
    for row in income:
        amount, partial = totals.get(row["kind"], (Decimal(0), False))
        totals[row["kind"]] = (amount + Decimal(row["amount"]), partial or row["incomplete"])
    print(f"   income {year}: " + (", ".join(f"{kind} {amount:,.2f}" + (" (part unconverted)" if partial else "")
                                           for kind, (amount, partial) in sorted(totals.items())) or "none"))
