"""`make demo`: the whole service end to end against the sandbox, then exit.

Starts the sandbox, the web API and a real Celery worker; creates a demo user; connects one
sandbox account per broker through the REST API (which checks the keys and queues the first
sync; a 503 with Retry-After is waited out and asked again, as any client should); imports
a Fidelity CSV export into a portfolio of its own; moves the Kraken portfolio to EUR; runs
the market refresh (latest prices and daily closes) through the worker; waits until the
worker is idle (value histories and ledgers rebuilt); then prints what a portfolio tracker
shows (scripts/demo_report.py) and checks it. Exits 1, saying why, when a sync or the import
failed, a holding a market-data source lists has no price, or a reconcile break is open.
Stops everything it started and flushes only its own Redis database."""
from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts import demo_report as report  # noqa: E402
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
EUR_BROKER = "kraken"                      # the portfolio shown in a base currency other than USD
FIDELITY_SAMPLE = ROOT / "tests" / "fixtures" / "imports" / "fidelity.csv"
SYNC_TIMEOUT = 300
IDLE_TIMEOUT = 300
RETRY_TIMEOUT = 120                        # how long a 503/429 with Retry-After is waited out in all
BOOK_QUEUES = ("portfolio", "ledger")


class DemoFailed(Exception):
    """A step the demo cannot go on without failed; the message says which and why."""


# -- HTTP ------------------------------------------------------------------------------------------
def http(method: str, url: str, body: dict | None = None, token: str | None = None, *,
         raw: bytes | None = None, content_type: str = "application/json") -> tuple[int, dict, dict]:
    """(status, JSON body, headers). A 503 or 429 with Retry-After is waited out and asked
    again (the IBKR key check answers so while its statement is generated)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    headers = {"Content-Type": content_type, **({"Authorization": f"Token {token}"} if token else {})}
    deadline = time.monotonic() + RETRY_TIMEOUT
    while True:
        status, answer, got = _once(urllib.request.Request(url, data=data, method=method, headers=headers))
        wait = got.get("Retry-After")
        if status not in (429, 503) or not wait or not wait.isdigit() or time.monotonic() + int(wait) > deadline:
            return status, answer, got
        print(f"   {method} {url.split('/api/v1')[-1]}: {status}, Retry-After {wait}s: waiting, then asking again")
        time.sleep(int(wait))


def _once(request: urllib.request.Request) -> tuple[int, dict, dict]:
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"{}"), dict(response.headers)
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return exc.code, json.loads(body or b"{}"), dict(exc.headers)
        except ValueError:
            return exc.code, {"message": body[:300].decode(errors="replace")}, dict(exc.headers)


class Api:
    def __init__(self, base: str, token: str):
        self.base, self.token = base, token

    def get(self, path: str) -> dict | list:
        status, body, _ = http("GET", self.base + path, token=self.token)
        if status != 200:
            raise DemoFailed(f"GET {path} answered {status}: {body}")
        return body

    def send(self, method: str, path: str, body: dict, expect: int) -> dict:
        status, answer, _ = http(method, self.base + path, body, self.token)
        if status != expect:
            raise DemoFailed(f"{method} {path} answered {status}: {answer}")
        return answer

    def all_pages(self, path: str) -> list[dict]:
        rows, url = [], self.base + path + ("&" if "?" in path else "?") + "page_size=500"
        while url:
            status, page, _ = http("GET", url, token=self.token)
            if status != 200:
                raise DemoFailed(f"GET {url} answered {status}: {page}")
            rows += page.get("results", [])
            url = page.get("next")
        return rows


# -- processes -------------------------------------------------------------------------------------
def setup_env() -> dict[str, str]:
    var = ROOT / "var"
    var.mkdir(exist_ok=True)
    db = var / "demo.sqlite3"
    db.unlink(missing_ok=True)                     # every demo starts from an empty database
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "backend.config.settings",
           "DATABASE_URL": os.environ.get("DEMO_DATABASE_URL", f"sqlite:///{db}"),
           "REDIS_URL": os.environ.get("DEMO_REDIS_URL", "redis://127.0.0.1:6379/14"),
           "BROKER_SANDBOX": f"127.0.0.1:{free_port_block()}", "PYTHONUNBUFFERED": "1"}
    env.pop("CACHE_URL", None)                     # the cache lives in the demo's Redis database too
    os.environ.update(env)
    return env


def flush_redis(url: str) -> None:
    """Only the demo's own database: queues, locks, limiter windows and cache of this run."""
    import redis

    redis.Redis.from_url(url).flushdb()


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


def web_port() -> int:
    if os.environ.get("DEMO_WEB_PORT"):
        return int(os.environ["DEMO_WEB_PORT"])
    return next(p for p in range(8001, 8100) if port_free("127.0.0.1", p))


def start_services(env: dict[str, str]) -> tuple[str, str]:
    from workers.routing import all_queue_names

    sandbox_port = int(env["BROKER_SANDBOX"].rpartition(":")[2])
    port = web_port()
    logs = ROOT / "var"
    sandbox = procs.start("sandbox", procs.sandbox_cmd(sandbox_port), env, logs / "demo-sandbox.log")
    control = f"http://127.0.0.1:{sandbox_port}/control"
    procs.wait_http(control + "/health", sandbox, "sandbox")
    # Value histories and ledgers are CPU work: a process of their own, so they neither wait
    # behind the syncs nor slow them (the README's "Scaling workers").
    books = [q for q in all_queue_names() if q in BOOK_QUEUES]
    workers = [procs.start("worker", procs.worker_cmd([q for q in all_queue_names() if q not in books], 8, "demo"),
                           env, logs / "demo-worker.log"),
               procs.start("worker", procs.worker_cmd(books, 2, "demo-books"), env, logs / "demo-books-worker.log")]
    web = procs.start("web", procs.web_cmd(port), env, logs / "demo-web.log")
    procs.wait_http(f"http://127.0.0.1:{port}/healthz", web, "web")
    for worker in workers:
        procs.wait_worker(celery_app(), worker)
    return control, f"http://127.0.0.1:{port}/api/v1"


def celery_app():
    from workers.celery_app import app

    return app


def wait_idle(what: str, timeout: float = IDLE_TIMEOUT) -> None:
    """Until every queue is empty and the worker holds no task (running, prefetched or
    waiting for its countdown), twice in a row: syncs queue history and ledger rebuilds,
    which queue nothing further."""
    import redis

    from workers.routing import all_queue_names

    app, queues = celery_app(), all_queue_names()
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    deadline, quiet = time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        queued = sum(client.llen(key) for q in queues for key in client.scan_iter(match=f"{q}*", count=1000)
                     if client.type(key) == b"list")
        inspect = app.control.inspect(timeout=1.0)
        held = sum(len(tasks) for reply in (inspect.active(), inspect.reserved(), inspect.scheduled())
                   for tasks in (reply or {}).values())
        quiet = quiet + 1 if queued == 0 and held == 0 else 0
        if quiet >= 2:
            return
        time.sleep(0.5)
    raise DemoFailed(f"the worker was still busy {timeout:.0f}s after {what}")


# -- the demo's steps ------------------------------------------------------------------------------
def connect(spec: dict, control: str, api: Api, *, inject_break: bool = False) -> dict:
    """Create a sandbox account and connect it through the REST API (which queues its first sync)."""
    status, account, _ = http("POST", control + "/accounts", spec)
    if status != 201:
        raise DemoFailed(f"the sandbox refused to create a {spec['broker']} account: {account}")
    if inject_break:
        round_a_holding(control, account["account_id"])
    body = {"broker": spec["broker"], "environment": spec["environment"],
            "label": f"demo {spec['broker']} {spec['environment']}", **account["credentials"]}
    try:
        return api.send("POST", "/connections/", body, 201)
    except DemoFailed as exc:
        raise DemoFailed(f"connecting {spec['broker']}: {exc}") from None


def round_a_holding(control: str, account_id: str) -> None:
    """--inject-break: the broker reports one fractional holding rounded to 2 places, so its
    history no longer adds up to it: the demo must find the break and fail."""
    _, truth, _ = http("GET", f"{control}/accounts/{account_id}/truth")
    symbol = next(p["symbol"] for p in truth["positions"] if "." in p["quantity"].rstrip("0").rstrip("."))
    status, fault, _ = http("POST", f"{control}/accounts/{account_id}/faults",
                            {"kind": "round", "symbol": symbol, "decimals": 2})
    if status != 201:
        raise DemoFailed(f"the sandbox refused the rounding fault: {fault}")
    print(f"demo: --inject-break: the sandbox reports {symbol} rounded to 2 places")


def wait_for_run(api: Api, connection_id: int) -> dict:
    deadline = time.monotonic() + SYNC_TIMEOUT
    while time.monotonic() < deadline:
        runs = api.get(f"/connections/{connection_id}/sync-runs/").get("results", [])
        if runs and runs[0]["state"] in ("succeeded", "failed"):
            return runs[0]
        time.sleep(0.5)
    raise DemoFailed(f"connection {connection_id}: its sync did not finish in {SYNC_TIMEOUT}s")


def synced(connection: dict, api: Api) -> dict:
    run = wait_for_run(api, connection["id"])
    base = f"/connections/{connection['id']}"
    return {"connection": connection, "run": run,
            "positions": len(api.all_pages(f"{base}/positions/?is_open=true")),
            "transactions": api.get(f"{base}/transactions/").get("count", 0),
            "orders": api.get(f"{base}/orders/").get("count", 0)}


def import_fidelity(api: Api) -> dict:
    """The Fidelity sample export, uploaded into a portfolio of its own."""
    portfolio = api.send("POST", "/portfolios/", {"name": "Fidelity (CSV import)"}, 201)
    boundary = "brokersync-demo-boundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"format\"\r\n\r\nfidelity\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{FIDELITY_SAMPLE.name}\"\r\n"
            "Content-Type: text/csv\r\n\r\n")
    body = head.encode() + FIDELITY_SAMPLE.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    status, record, _ = http("POST", f"{api.base}/portfolios/{portfolio['id']}/imports/", token=api.token, raw=body,
                             content_type=f"multipart/form-data; boundary={boundary}")
    if status != 201:
        raise DemoFailed(f"importing the Fidelity sample answered {status}: {record}")
    return record


def refresh_market() -> None:
    """What beat does every minute (latest prices) and every day (daily closes), sent to the
    worker now: one refresh per source, on that broker's queue."""
    app = celery_app()
    app.send_task("market.dispatch_latest")
    app.send_task("market.dispatch_closes")


def portfolio_figures(api: Api, portfolio: dict, year: int) -> dict:
    base = f"/portfolios/{portfolio['id']}"
    return {"portfolio": portfolio, "value": api.get(base + "/value/"), "returns": api.get(base + "/returns/"),
            "holdings": api.all_pages(base + "/holdings/"),
            "disposals": api.all_pages(f"{base}/disposals/?year={year}"),
            "income": api.get(f"{base}/income/?period=year&year={year}"),
            "breaks": api.all_pages(base + "/breaks/?status=open"),
            "history_unpriced": history_unpriced(api.all_pages(base + "/history/"))}


def history_unpriced(points: list[dict]) -> dict[str, int]:
    """What the value history could not price, and on how many days."""
    days: dict[str, int] = {}
    for point in points:
        for what in point["unpriced"]:
            days[what] = days.get(what, 0) + 1
    return days


def listed_symbols() -> set[str]:
    """Symbols some market-data source lists: a holding of one of these must be priced."""
    from backend.market.models import Listing

    return set(Listing.objects.filter(active=True).values_list("asset__symbol", flat=True))


def problems(results: list[dict], imported: dict, figures: list[dict], listed: set[str]) -> list[str]:
    found = [f"{r['connection']['broker']} sync {r['run']['id']} {r['run']['state']} at {r['run']['failed_step']}: "
             f"{r['run']['error_message']}" for r in results if r["run"]["state"] != "succeeded"]
    if imported["status"] != "succeeded":
        found.append(f"the Fidelity import {imported['status']}: {imported.get('errors')}")
    for f in figures:
        name = f["portfolio"]["name"]
        for u in f["value"]["unpriced"]:
            if u["asset"]["symbol"] in listed:
                found.append(f"{name}: {u['asset']['symbol']} is listed by a market-data source but unpriced "
                             f"({u['reason']})")
        for b in f["breaks"]:
            found.append(f"{name}: open {b['type']} break on {b['symbol']} (connection {b['connection']}): "
                         f"broker {b['broker_quantity']}, history {b['ledger_quantity']}")
        if f["returns"]["history"]["rebuilding"] or not f["returns"]["history"]["through"]:
            found.append(f"{name}: its value history is not built")
    return found


def run_demo(control: str, api: Api, *, inject_break: bool = False) -> int:
    started = time.monotonic()
    available = {b["key"] for b in api.get("/brokers/")}
    specs = [spec for spec in DEMO_ACCOUNTS if spec["broker"] in available]
    print(f"demo: connecting {len(specs)} sandbox accounts through the REST API ({', '.join(s['broker'] for s in specs)})")
    # One at a time, in a fixed order: an asset held at several brokers is priced by the one
    # connected first, so the figures are the same every run. Each broker has its own queue:
    # the syncs run side by side meanwhile.
    connections = [connect(spec, control, api, inject_break=inject_break and i == 0)
                   for i, spec in enumerate(specs)]
    with ThreadPoolExecutor(len(specs)) as pool:
        running = pool.map(lambda connection: synced(connection, api), connections)
        eur = next(c["portfolio"] for c in connections if c["broker"] == EUR_BROKER)
        api.send("PATCH", f"/portfolios/{eur}/", {"base_currency": "EUR"}, 200)
        imported = import_fidelity(api)
        results = list(running)
    synced_at = time.monotonic()
    refresh_market()                                   # everything is held now: price it
    wait_idle("the market refresh, value history and ledger rebuilds")
    year = datetime.now(timezone.utc).year
    figures = [portfolio_figures(api, p, year) for p in api.get("/portfolios/")]
    found = problems(results, imported, figures, listed_symbols())

    report.syncs(results, synced_at - started)
    report.csv_import(imported)
    for f in figures:
        report.portfolio(f, year)
    print(f"\ndemo: {len(results)} brokers synced in {synced_at - started:.1f}s, "
          f"{len(figures)} portfolios priced and reported in {time.monotonic() - started:.1f}s in all")
    if found:
        print("demo FAILED:\n  " + "\n  ".join(found), file=sys.stderr)
        return 1
    print("demo: every sync succeeded, everything listed is priced, no reconcile break is open")
    return 0


def main() -> int:
    url = os.environ.get("DEMO_REDIS_URL", "redis://127.0.0.1:6379/14")
    os.environ["REDIS_URL"] = url
    if check(["redis"]):
        print("make demo needs Redis on localhost (Celery's broker).", file=sys.stderr)
        return 1
    env = setup_env()
    flush_redis(url)                               # nothing left over from an earlier demo
    try:
        token = prepare_database()
        control, base = start_services(env)
        return run_demo(control, Api(base, token), inject_break="--inject-break" in sys.argv[1:])
    except DemoFailed as exc:
        print(f"demo FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        procs.stop_all()
        flush_redis(url)


if __name__ == "__main__":
    sys.exit(main())
