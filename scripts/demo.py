"""`make demo`: the whole service end to end against the sandbox, then exit.

Starts the sandbox, the web API and a real Celery worker; creates a demo user; connects
one sandbox account per broker through the REST API (which checks the keys and queues
the first sync); waits for each sync; prints what was synced; stops what it started."""
from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts import procs  # noqa: E402
from scripts.services import check  # noqa: E402
from sandbox.endpoints import free_port_block, port_free  # noqa: E402

# One account per broker, small enough to sync in seconds at each broker's real rate limit.
DEMO_ACCOUNTS = [
    {"broker": "alpaca", "environment": "paper", "seed": 7, "positions": 25, "activities": 2000},
    {"broker": "coinbase", "environment": "live", "seed": 7, "positions": 8, "activities": 400},
    {"broker": "binance", "environment": "live", "seed": 7, "positions": 8, "activities": 400},
    # Kraken's real budget (15 calls, 0.33/s back; history calls cost 2) makes big ones slow.
    {"broker": "kraken", "environment": "live", "seed": 7, "positions": 6, "activities": 120},
    # IBKR's Flex Web Service: statements of up to 365 days, 10 requests a minute per token.
    {"broker": "ibkr", "environment": "live", "seed": 7, "positions": 6, "activities": 200},
]
SYNC_TIMEOUT = 600


def http(method: str, url: str, body: dict | None = None, token: str | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Token {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return exc.code, json.loads(body or b"{}")
        except ValueError:
            return exc.code, {"message": body[:300].decode(errors="replace")}


def setup_env() -> dict[str, str]:
    var = ROOT / "var"
    var.mkdir(exist_ok=True)
    db = var / "demo.sqlite3"
    db.unlink(missing_ok=True)                     # every demo starts from an empty database
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "backend.config.settings",
           "DATABASE_URL": os.environ.get("DEMO_DATABASE_URL", f"sqlite:///{db}"),
           "REDIS_URL": os.environ.get("DEMO_REDIS_URL", "redis://127.0.0.1:6379/14"),
           "BROKER_SANDBOX": f"127.0.0.1:{free_port_block()}", "PYTHONUNBUFFERED": "1"}
    os.environ.update(env)
    return env


def prepare_database() -> str:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from knox.models import AuthToken

    call_command("migrate", verbosity=0)
    user, _ = get_user_model().objects.get_or_create(username="demo", defaults={"email": "demo@example.com"})
    user.set_password("demo-password")
    user.save()
    _, token = AuthToken.objects.create(user=user)       # stored as a digest; shown only here
    return token


def start_services(env: dict[str, str]) -> tuple[str, str]:
    from workers.celery_app import app
    from workers.routing import all_queue_names

    sandbox_port = int(env["BROKER_SANDBOX"].rpartition(":")[2])
    web_port = next(p for p in range(8000, 8100) if port_free("127.0.0.1", p))
    logs = ROOT / "var"
    sandbox = procs.start("sandbox", procs.sandbox_cmd(sandbox_port), env, logs / "demo-sandbox.log")
    control = f"http://127.0.0.1:{sandbox_port}/control"
    procs.wait_http(control + "/health", sandbox, "sandbox")
    app.control.purge()                            # nothing left over from an earlier demo
    worker = procs.start("worker", procs.worker_cmd(all_queue_names(), 4, "demo"), env, logs / "demo-worker.log")
    web = procs.start("web", procs.web_cmd(web_port), env, logs / "demo-web.log")
    api = f"http://127.0.0.1:{web_port}/api/v1"
    procs.wait_http(f"http://127.0.0.1:{web_port}/healthz", web, "web")
    procs.wait_worker(app, worker)
    return control, api


def connect(spec: dict, control: str, api: str, token: str) -> dict:
    """Create a sandbox account and connect it through the REST API (which queues its first sync)."""
    status, account = http("POST", control + "/accounts", spec)
    if status != 201:
        raise SystemExit(f"sandbox refused to create a {spec['broker']} account: {account}")
    body = {"broker": spec["broker"], "environment": spec["environment"],
            "label": f"demo {spec['broker']} {spec['environment']}", **account["credentials"]}
    status, connection = http("POST", api + "/connections/", body, token)
    if status != 201:
        raise SystemExit(f"connecting {spec['broker']} failed ({status}): {connection}")
    return {"spec": spec, "connection": connection}


def collect(pending: dict, api: str, token: str) -> dict:
    connection = pending["connection"]
    run = wait_for_run(api, connection["id"], token)
    return {"spec": pending["spec"], "connection": connection, "run": run,
            "seconds": run_seconds(run),
            "positions": fetch_all(api, f"/connections/{connection['id']}/positions/?is_open=true", token),
            "transactions": count(api, f"/connections/{connection['id']}/transactions/", token),
            "orders": count(api, f"/connections/{connection['id']}/orders/", token)}


def wait_for_run(api: str, connection_id: int, token: str) -> dict:
    deadline = time.monotonic() + SYNC_TIMEOUT
    while time.monotonic() < deadline:
        _, runs = http("GET", f"{api}/connections/{connection_id}/sync-runs/", token=token)
        results = runs.get("results", [])
        if results and results[0]["state"] in ("succeeded", "failed"):
            return results[0]
        time.sleep(0.5)
    raise SystemExit(f"connection {connection_id}: sync did not finish in {SYNC_TIMEOUT}s")


def run_seconds(run: dict) -> float:
    from datetime import datetime

    started, finished = (datetime.fromisoformat(run[k].replace("Z", "+00:00")) for k in ("queued_at", "finished_at"))
    return (finished - started).total_seconds()


def count(api: str, path: str, token: str) -> int:
    _, page = http("GET", api + path, token=token)
    return int(page.get("count", 0))


def fetch_all(api: str, path: str, token: str) -> list[dict]:
    rows, url = [], api + path + "&page_size=500"
    while url:
        _, page = http("GET", url, token=token)
        rows += page.get("results", [])
        url = page.get("next")
    return rows


def report(result: dict) -> bool:
    spec, run, conn = result["spec"], result["run"], result["connection"]
    value = sum((Decimal(p["market_value"]) for p in result["positions"] if p.get("market_value")), Decimal(0))
    ok = run["state"] == "succeeded"
    print(f"\n== {spec['broker']} ({spec['environment']}) connection {conn['id']} account {conn['broker_account_id']}")
    print(f"   sync run {run['id']}: {run['state']} in {result['seconds']:.1f}s"
          + ("" if ok else f" -- failed at {run['failed_step']}: {run['error_message']}"))
    for step, info in (run.get("steps") or {}).items():
        if step.startswith("_"):
            continue
        figures = ", ".join(f"{k}={info[k]}" for k in ("fetched", "created", "updated", "closed", "skipped",
                                                         "requests", "duration_ms") if k in info)
        print(f"   {step:13s} {figures}")
    print(f"   stored: {len(result['positions'])} open positions, {result['transactions']} transactions, "
          f"{result['orders']} orders; position value {value:,.2f}")
    print(f"   reconcile differences: {len(run.get('reconcile_differences') or [])}")
    return ok


FIDELITY_SAMPLE = ROOT / "tests" / "fixtures" / "imports" / "fidelity.csv"


def import_fidelity(portfolio_id: int, api: str, token: str) -> dict:
    """Upload the Fidelity sample export into the portfolio of a synced sandbox account, then
    read back its import account like any connection."""
    boundary = "brokersync-demo-boundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"format\"\r\n\r\nfidelity\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{FIDELITY_SAMPLE.name}\"\r\n"
            "Content-Type: text/csv\r\n\r\n")
    body = head.encode() + FIDELITY_SAMPLE.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"{api}/portfolios/{portfolio_id}/imports/", data=body, method="POST", headers={
        "Authorization": f"Token {token}", "Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            record = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"importing the Fidelity sample failed ({exc.code}): {exc.read()[:300]!r}") from None
    connection_id = record["connection"]
    return {"import": record, "positions": fetch_all(api, f"/connections/{connection_id}/positions/?is_open=true",
                                                     token),
            "transactions": count(api, f"/connections/{connection_id}/transactions/", token)}


def report_import(result: dict) -> bool:
    record = result["import"]
    ok = record["status"] == "succeeded"
    held = ", ".join(f"{p['broker_symbol']} {p['quantity']}" for p in result["positions"])
    print(f"\n== CSV import ({record['format']}) connection {record['connection']} into portfolio {record['portfolio']}")
    print(f"   import {record['id']}: {record['status']}; rows read={record['rows_read']}, "
          f"imported={record['rows_imported']}, duplicates={record['rows_duplicate']}, errors={record['rows_error']}")
    print(f"   stored: {result['transactions']} transactions; holdings from history: {held}")
    return ok


HISTORY_TIMEOUT = 120
TOP_HOLDINGS = 5


def report_values(api: str, token: str) -> bool:
    """For every portfolio: its live value in its base currency, cash, the top holdings with
    price and price age, and TWR / XIRR since inception (once its value history is built:
    each sync asks for it on the portfolio queue). Until prices are refreshed, holdings are
    listed as unpriced and left out of the totals."""
    _, portfolios = http("GET", api + "/portfolios/", token=token)
    ok = True
    for portfolio in portfolios:
        pid, name = portfolio["id"], portfolio["name"]
        status, value = http("GET", f"{api}/portfolios/{pid}/value/", token=token)
        returns = wait_for_history(api, pid, token)
        if status != 200 or returns is None:
            print(f"\n== portfolio {pid} {name}: value {status}, history not built in {HISTORY_TIMEOUT}s")
            ok = False
            continue
        ccy = value["currency"]
        print(f"\n== portfolio {pid} {name!r} in {ccy}: value {Decimal(value['total']):,.2f}, "
              f"cash {Decimal(value['cash']):,.2f}"
              + (f" (excludes {value['excludes_unpriced']} unpriced holding(s))" if value["excludes_unpriced"] else ""))
        for h in value["holdings"][:TOP_HOLDINGS]:
            age = price_age(h["price_at"])
            print(f"   {h['asset']['symbol']:10s} {h['quantity']:>14s} x {h['price']} {h['quote']} ({h['source']}, "
                  f"{age} old) = {Decimal(h['value']):,.2f} {ccy}")
        if value["unpriced"]:
            symbols = ", ".join(u["asset"]["symbol"] for u in value["unpriced"][:8])
            print(f"   unpriced: {symbols}{' ...' if len(value['unpriced']) > 8 else ''}")
        print(f"   since inception ({returns['start']} .. {returns['end']}): TWR {percent(returns['twr'])}, "
              f"XIRR {percent(returns['xirr']['rate']) if returns['xirr']['rate'] else returns['xirr']['status']}, "
              f"gain {Decimal(returns['gain']):,.2f}, flows {Decimal(returns['flows']):,.2f}"
              + (f"; {returns['unpriced_days']} day(s) with unpriced holdings" if returns["unpriced_days"] else ""))
    return ok


def wait_for_history(api: str, portfolio_id: int, token: str) -> dict | None:
    deadline = time.monotonic() + HISTORY_TIMEOUT
    while time.monotonic() < deadline:
        status, returns = http("GET", f"{api}/portfolios/{portfolio_id}/returns/", token=token)
        if status == 200 and returns["history"]["through"] and not returns["history"]["rebuilding"]:
            return returns
        time.sleep(0.5)
    return None


def price_age(at: str) -> str:
    from datetime import datetime, timezone

    seconds = (datetime.now(timezone.utc) - datetime.fromisoformat(at.replace("Z", "+00:00"))).total_seconds()
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def percent(value: str | None) -> str:
    return "n/a" if value is None else f"{Decimal(value) * 100:.2f}%"
def report_breaks(api: str, token: str) -> int:
    """Each portfolio's open reconcile breaks (none for the demo accounts: their histories add
    up to what the sandbox reports). Returns how many there are."""
    _, portfolios = http("GET", api + "/portfolios/", token=token)
    rows = portfolios if isinstance(portfolios, list) else portfolios.get("results", [])
    total = 0
    print("\n== open reconcile breaks")
    for portfolio in rows:
        _, page = http("GET", f"{api}/portfolios/{portfolio['id']}/breaks/?status=open&page_size=500", token=token)
        breaks = page.get("results", [])
        total += len(breaks)
        print(f"   {portfolio['name']}: {len(breaks) or 'none'}")
        for b in breaks:
            print(f"     {b['type']:20s} {b['symbol']:8s} broker {b['broker_quantity']} history {b['ledger_quantity']} "
                  f"(connection {b['connection']}): {b['resolution']}")
    return total
def ledger_report(api: str, token: str) -> None:
    """Per portfolio: holdings with cost basis and unrealized P&L, realized P&L and income this
    year. The ledger recomputes on its own queue after each sync: wait until it settles."""
    from datetime import datetime, timezone

    year = datetime.now(timezone.utc).year
    _, portfolios = http("GET", api + "/portfolios/", token=token)
    for portfolio in portfolios if isinstance(portfolios, list) else portfolios.get("results", []):
        base = f"/portfolios/{portfolio['id']}"
        holdings = _settled(lambda: fetch_all(api, base + "/holdings/?page=1", token))
        disposals = fetch_all(api, f"{base}/disposals/?year={year}", token)
        _, income = http("GET", f"{api}{base}/income/?period=year&year={year}", token=token)
        print(f"\n== portfolio {portfolio['name']} ({portfolio['base_currency']}): {len(holdings)} holdings")
        money = lambda v, none="unpriced": none if v is None else f"{Decimal(v):,.2f}"
        ranked = sorted(holdings, key=lambda h: Decimal(h["market_value"] or 0), reverse=True)
        for h in ranked[:10]:
            basis = money(h["cost_basis"], "unknown")
            print(f"   {h['asset']:<8} qty {Decimal(h['quantity']):>16,.6f}  basis {basis:>14}  "
                  f"value {money(h['market_value']):>14}  unrealized {money(h['unrealized'], 'n/a'):>12}")
        if len(ranked) > 10:
            print(f"   ... and {len(ranked) - 10} more")
        realized = sum((Decimal(d["gain"]) for d in disposals if d["gain"] is not None), Decimal(0))
        incomplete = sum(1 for d in disposals if d["incomplete"])
        unrealized = sum((Decimal(h["unrealized"]) for h in holdings if h["unrealized"] is not None), Decimal(0))
        unknown = sum(1 for h in holdings if h["unrealized"] is None)
        print(f"   unrealized P&L {unrealized:,.2f}" + (f" ({unknown} holdings unpriced or of unknown basis)"
                                                        if unknown else "")
              + f"; realized P&L {year}: {realized:,.2f} over {len(disposals)} disposals"
              + (f" ({incomplete} incomplete: unknown basis or no price)" if incomplete else ""))
        totals: dict[str, tuple[Decimal, bool]] = {}
        for row in income if isinstance(income, list) else []:
            amount, partial = totals.get(row["kind"], (Decimal(0), False))
            totals[row["kind"]] = (amount + Decimal(row["amount"]), partial or row["incomplete"])
        print(f"   income {year}: " + (", ".join(f"{k} {v:,.2f}" + (" (part unpriced)" if partial else "")
                                               for k, (v, partial) in sorted(totals.items())) or "none"))


def _settled(read, polls: int = 3, timeout: float = 120.0):
    """Read until the answer stops changing (the ledger task has caught up with the syncs)."""
    deadline, last, same = time.monotonic() + timeout, None, 0
    while time.monotonic() < deadline:
        value = read()
        same = same + 1 if value == last and value else 0
        if same >= polls:
            break
        last = value
        time.sleep(1)
    return last or []


def main() -> int:
    if check(["redis"]):
        print("make demo needs Redis on localhost (Celery's broker).", file=sys.stderr)
        return 1
    env = setup_env()
    token = prepare_database()
    control, api = start_services(env)
    _, brokers = http("GET", api + "/brokers/", token=token)
    available = {b["key"] for b in (brokers if isinstance(brokers, list) else brokers.get("results", []))}
    started = time.monotonic()
    # Every broker has its own queue: the four syncs run side by side.
    pending = [connect(spec, control, api, token) for spec in DEMO_ACCOUNTS if spec["broker"] in available]
    results = [collect(p, api, token) for p in pending]
    all_ok = all([report(r) for r in results])
    if results:                              # a broker without an API, beside a synced account
        all_ok = report_import(import_fidelity(results[0]["connection"]["portfolio"], api, token)) and all_ok
    report_breaks(api, token)
    ledger_report(api, token)
    print(f"\ndemo: {len(results)} broker(s) synced in {time.monotonic() - started:.1f}s; "
          f"{'all succeeded' if all_ok else 'SOME FAILED'}")
    all_ok = report_values(api, token) and all_ok
    procs.stop_all()
    return 0 if all_ok and results else 1


if __name__ == "__main__":
    sys.exit(main())
