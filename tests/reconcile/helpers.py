"""Sandbox record faults over the control API (real HTTP), and syncs through the pipeline."""
from __future__ import annotations

import requests

from backend.reconcile.models import Break
from backend.sync import pipeline
from backend.sync.models import SyncRun
from tests.factories import sandbox_requests

CHAIN = ("positions", "transactions", "orders", "reconcile", "write_log")


def inject(sandbox, account_id: str, **spec) -> dict:
    response = requests.post(f"{sandbox.urls['control']}/control/accounts/{account_id}/faults", json=spec, timeout=30)
    assert response.status_code == 201, response.text
    return response.json()


def put_right(sandbox, account_id: str) -> list[dict]:
    response = requests.delete(f"{sandbox.urls['control']}/control/accounts/{account_id}/faults", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["removed"]


def transfer(sandbox, **body) -> dict:
    response = requests.post(f"{sandbox.urls['control']}/control/transfers", json=body, timeout=30)
    assert response.status_code == 201, response.text
    return response.json()


def sync(connection, endpoint: str, sandbox) -> tuple[SyncRun, int]:
    """A whole run in-process (the code the tasks call), and the requests its reconcile step
    made, as the sandbox counted them."""
    run = SyncRun.objects.create(connection=connection, trigger="test")
    for step in CHAIN[:3]:
        pipeline.run_step(run, step)
    before = sandbox_requests(sandbox, endpoint)
    pipeline.run_step(run, "reconcile")
    made = sandbox_requests(sandbox, endpoint) - before
    pipeline.run_step(run, "write_log")
    run.refresh_from_db()
    return run, made


def open_breaks(connection) -> list[Break]:
    return list(Break.objects.filter(connection=connection, resolved_at__isnull=True).select_related("asset"))
