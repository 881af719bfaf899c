"""The control API: create accounts and get their keys, make time pass, revoke keys,
inject faults, read the truth and the request counts.

    POST   /control/accounts                 {"broker", "environment", "seed", "positions", "activities", ...}
    GET    /control/accounts/{id}/truth
    GET    /control/accounts/{id}/history[?from=&to=&currency=]
                                             daily holdings x the market's closes (sandbox/history.py)
    POST   /control/accounts/{id}/advance    {"fills": 2, "dividend": true, "split": true, ...}
    POST   /control/accounts/{id}/revoke
    GET    /control/accounts/{id}/faults     | POST {kind, record | symbol, decimals} | DELETE [/{fault id}]
    POST   /control/transfers                {"from", "to", "asset", "amount", "fee"}: a withdrawal at one
                                             account and its deposit at another (record_faults.py)
    POST   /control/clock                    {"advance_seconds": 3600}
    GET    /control/faults | POST {FaultPlan fields} | DELETE [?target=]
    GET    /control/stats  | DELETE (reset)
    GET    /control/health                   {"urls": {...}}
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from datetime import date

from . import history
from .base import AccountNotFound
from .faults import FaultPlan
from .http import Request, Response

if TYPE_CHECKING:
    from .server import SandboxServer

_ACCOUNT = re.compile(r"^/control/accounts/(?P<id>[^/]+)/(?P<action>truth|history|advance|revoke)$")
_FAULTS = re.compile(r"^/control/accounts/(?P<id>[^/]+)/faults(?:/(?P<fault>[^/]+))?$")
MAX_POSITIONS = 2_000
MAX_ACTIVITIES = 200_000


def _error(message: str, status: int = 400) -> Response:
    return Response.json({"error": message}, status)


class ControlApi:
    def __init__(self, server: "SandboxServer"):
        self.server = server

    def dispatch(self, request: Request) -> Response:
        try:
            return self._route(request)
        except AccountNotFound as exc:
            return _error(f"no such account: {exc.args[0]}", 404)
        except (ValueError, TypeError, KeyError, InvalidOperation) as exc:
            return _error(f"bad request: {exc}")

    def _route(self, request: Request) -> Response:
        path, method = request.path.rstrip("/"), request.method
        if path == "/control/health":
            return Response.json({"status": "ok", "urls": self.server.urls})
        if path == "/control/accounts" and method == "POST":
            return self.create_account(request.json() or {})
        if path == "/control/clock" and method == "POST":
            self.server.clock.advance(float((request.json() or {}).get("advance_seconds", 0)))
            return Response.json({"now": self.server.clock.now()})
        if path == "/control/faults":
            return self.faults(request)
        if path == "/control/stats":
            if method == "DELETE":
                with self.server.stats_lock:
                    self.server.stats.clear()
            return Response.json({"endpoints": self.server.stats, "injected": self.server.faults.injected,
                                  "budgets": self._budgets_spent()})
        match = _ACCOUNT.match(path)
        if match:
            return self.account_action(match["id"], match["action"], request)
        match = _FAULTS.match(path)
        if match:
            return self.record_faults(match["id"], match["fault"], request)
        if path == "/control/transfers" and method == "POST":
            return self.transfer(request.json() or {})
        return _error("not found", 404)

    def _budgets_spent(self) -> dict[str, int]:
        """Shared budgets spent so far: {"binance_ip_weight": n} (the /api weight of every IP)."""
        binance = self.server.sims.get("binance")
        weights = getattr(binance, "weights", None)
        return {"binance_ip_weight": weights.spent} if weights is not None else {}

    def _sim_for(self, account_id: str):
        broker = account_id.split(":", 1)[0]
        sim = self.server.sims.get(broker)
        if sim is None:
            raise AccountNotFound(account_id)
        return sim

    def create_account(self, body: dict[str, Any]) -> Response:
        broker = body.pop("broker", None)
        sim = self.server.sims.get(broker)
        if sim is None:
            return _error(f"unknown broker {broker!r}; have {sorted(self.server.sims)}")
        environment = body.pop("environment", sim.environments[0])
        if environment not in sim.environments:
            return _error(f"{broker} has no environment {environment!r}")
        positions = int(body.pop("positions", 3))
        activities = int(body.pop("activities", 20))
        if not (0 <= positions <= MAX_POSITIONS and 0 <= activities <= MAX_ACTIVITIES):
            return _error(f"positions must be 0..{MAX_POSITIONS} and activities 0..{MAX_ACTIVITIES}")
        seed = int(body.pop("seed", 1))
        with sim.lock:
            account = sim.create_account(environment, seed=seed, positions=positions, activities=activities, **body)
        return Response.json(account, 201)

    def account_action(self, account_id: str, action: str, request: Request) -> Response:
        sim = self._sim_for(account_id)
        with sim.lock:
            if action == "truth":
                return Response.json(sim.truth(account_id))
            if action == "history":
                first, last = request.arg("from"), request.arg("to")
                days = history.for_account(sim, account_id, first=date.fromisoformat(first) if first else None,
                                           last=date.fromisoformat(last) if last else None,
                                           currency=request.arg("currency") or None)
                return Response.json({"account_id": account_id, "days": days})
            if action == "revoke":
                sim.revoke(account_id)
                return Response.json({"revoked": account_id})
            return Response.json(sim.advance(account_id, **(request.json() or {})))

    def record_faults(self, account_id: str, fault_id: str | None, request: Request) -> Response:
        sim = self._sim_for(account_id)
        with sim.lock:
            if not sim.has_account(account_id):
                raise AccountNotFound(account_id)
            if request.method == "POST" and fault_id is None:
                return Response.json(sim.add_record_fault(account_id, request.json() or {}).public(), 201)
            faults = sim.faults_of(account_id)
            if request.method == "DELETE":
                if fault_id is not None and fault_id not in faults.faults:
                    return _error(f"no such fault: {fault_id}", 404)
                removed = faults.remove(fault_id) if faults else []
                return Response.json({"removed": [f.public() for f in removed]})
            return Response.json({"faults": [f.public() for f in faults.faults.values()]})

    def transfer(self, body: dict[str, Any]) -> Response:
        """A withdrawal at `from` and its deposit at `to`, both now (two brokers' own records)."""
        source, target = str(body.get("from") or ""), str(body.get("to") or "")
        asset = str(body.get("asset") or "")
        amount, fee = Decimal(str(body.get("amount") or "0")), Decimal(str(body.get("fee") or "0"))
        if not asset or amount <= 0 or fee < 0:
            return _error("a transfer needs an asset, an amount > 0 and a fee >= 0")
        out_sim, in_sim = self._sim_for(source), self._sim_for(target)
        with out_sim.lock:
            sent = out_sim.send_out(source, asset, amount, fee)
        with in_sim.lock:
            received = in_sim.receive_in(target, asset, amount)
        return Response.json({"withdrawal": sent, "deposit": received}, 201)

    def faults(self, request: Request) -> Response:
        board = self.server.faults
        if request.method == "POST":
            body = request.json() or {}
            plan = FaultPlan(**body)
            if plan.target != "*" and plan.target not in self.server.urls:
                return _error(f"unknown target {plan.target!r}")
            board.set(plan)
        elif request.method == "DELETE":
            board.clear(request.arg("target"))
        return Response.json({"plans": [p.public() for p in board.plans.values()]})
