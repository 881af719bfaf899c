"""python -m sandbox [serve|create-account|advance|revoke|fault|clear-faults|record-fault|put-right|
                     transfer|stats|truth] ...

`serve` (the default) runs every simulated broker; the other commands drive a running
sandbox through its control API (see sandbox/control.py)."""
from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request

from .endpoints import DEFAULT_HOST, DEFAULT_PORT


def _control_url(args) -> str:
    return f"http://{args.host}:{args.port}/control"


def _call(args, method: str, path: str, body: dict | None = None) -> int:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(_control_url(args) + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            print(json.dumps(json.loads(response.read()), indent=2))
            return 0
    except urllib.error.HTTPError as exc:
        print(f"sandbox: {exc.code} {exc.read().decode()}", file=sys.stderr)
        return 1
    except urllib.error.URLError as exc:
        print(f"sandbox: cannot reach {_control_url(args)} ({exc.reason}); start it with `python -m sandbox serve`",
              file=sys.stderr)
        return 1


def _serve(args) -> int:
    from .server import SandboxServer, port_free

    if not port_free(args.host, args.port):
        print(f"sandbox: port {args.port} on {args.host} is taken (is a sandbox already running?)", file=sys.stderr)
        return 1
    server = SandboxServer(args.host, args.port).start()
    for name, url in server.urls.items():
        print(f"sandbox {name:13s} {url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("SANDBOX_HOST", DEFAULT_HOST))
    parser.add_argument("--port", type=int, default=int(os.environ.get("SANDBOX_PORT", DEFAULT_PORT)))
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the sandbox in the foreground")
    create = sub.add_parser("create-account", help="create a deterministic account and print its keys")
    create.add_argument("--broker", required=True)
    create.add_argument("--environment")
    create.add_argument("--seed", type=int, default=1)
    create.add_argument("--positions", type=int, default=3)
    create.add_argument("--activities", type=int, default=20)
    advance = sub.add_parser("advance", help="make time pass for an account")
    advance.add_argument("account_id")
    advance.add_argument("--changes", default="{}", help='JSON, e.g. {"fills": 2, "split": true}')
    for name in ("revoke", "truth"):
        sub.add_parser(name).add_argument("account_id")
    fault = sub.add_parser("fault", help="inject faults into one endpoint")
    fault.add_argument("plan", help='JSON FaultPlan, e.g. {"target": "alpaca-paper", "error_rate": 0.2}')
    sub.add_parser("clear-faults")
    record = sub.add_parser("record-fault", help="make one account's feed wrong (sandbox/record_faults.py)")
    record.add_argument("account_id")
    record.add_argument("spec", help='JSON, e.g. {"kind": "drop", "record": "<id>"} or '
                                     '{"kind": "round", "symbol": "ETH", "decimals": 8}')
    put_right = sub.add_parser("put-right", help="remove an account's record faults (or one of them)")
    put_right.add_argument("account_id")
    put_right.add_argument("fault_id", nargs="?")
    move = sub.add_parser("transfer", help="a withdrawal at one account and its deposit at another")
    move.add_argument("source")
    move.add_argument("target")
    move.add_argument("asset")
    move.add_argument("amount")
    move.add_argument("--fee", default="0")
    sub.add_parser("stats")
    args = parser.parse_args(argv)

    if args.command in (None, "serve"):
        return _serve(args)
    if args.command == "create-account":
        body = {k: v for k, v in vars(args).items()
                if k in ("broker", "environment", "seed", "positions", "activities") and v is not None}
        return _call(args, "POST", "/accounts", body)
    if args.command == "advance":
        return _call(args, "POST", f"/accounts/{args.account_id}/advance", json.loads(args.changes))
    if args.command in ("revoke", "truth"):
        method = "POST" if args.command == "revoke" else "GET"
        return _call(args, method, f"/accounts/{args.account_id}/{args.command}")
    if args.command == "fault":
        return _call(args, "POST", "/faults", json.loads(args.plan))
    if args.command == "clear-faults":
        return _call(args, "DELETE", "/faults")
    if args.command == "record-fault":
        return _call(args, "POST", f"/accounts/{args.account_id}/faults", json.loads(args.spec))
    if args.command == "put-right":
        one = f"/{args.fault_id}" if args.fault_id else ""
        return _call(args, "DELETE", f"/accounts/{args.account_id}/faults{one}")
    if args.command == "transfer":
        return _call(args, "POST", "/transfers", {"from": args.source, "to": args.target, "asset": args.asset,
                                                  "amount": args.amount, "fee": args.fee})
    return _call(args, "GET", "/stats")


if __name__ == "__main__":
    sys.exit(main())
