"""The exam every registered adapter sits: credentials, each fetch, cursors that only move
forward, and every error kind mapped. Runs against each broker's sandbox over real HTTP;
a new broker is picked up from the registry with no edit here."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from backend.brokers.dtos import AccountInfo, Credentials, Order, Position, PositionSnapshot, Transaction, TransactionType
from backend.brokers.errors import AuthError, RateLimited, TransientError
from backend.brokers.http import BrokerSession, SessionPolicy
from backend.brokers.registry import ADAPTERS, get_adapter_class
from sandbox.endpoints import endpoint_name
from sandbox.faults import FaultPlan
from tests.factories import sandbox_account, sandbox_advance, sandbox_truth

STRICT = SessionPolicy(transient_retries=0, max_inplace_wait=0, read_timeout=5)


def build(key: str, account: dict, sandbox, policy: SessionPolicy = SessionPolicy()):
    cls = get_adapter_class(key)
    credentials = Credentials(**account["credentials"])
    session = BrokerSession(broker=key, base_url=sandbox.urls[endpoint_name(key, account["environment"])],
                            scope=cls.rate_scope(credentials, account["environment"]), limiter=None,
                            policy=policy, vendor_errors=getattr(cls, "vendor_errors", None),
                            secrets=credentials.secrets(), sleep=lambda s: None)
    return cls(credentials=credentials, environment=account["environment"], session=session)


@pytest.fixture(params=sorted(ADAPTERS))
def broker(request, sandbox, redis_client):
    key = request.param
    environment = get_adapter_class(key).environments[0]
    account = sandbox_account(sandbox, broker=key, environment=environment, seed=5, positions=5, activities=120)
    return key, account


def drain(pages) -> tuple[list, list[dict]]:
    items, cursors = [], []
    for page in pages:
        items += page.items
        cursors.append(page.cursor)
    return items, cursors


def assert_forward(cursors: list[dict]) -> None:
    marks = [c["watermark"] for c in cursors if c.get("watermark")]
    assert marks == sorted(marks), "a cursor moved backwards"


def test_describes_itself(broker):
    key, _ = broker
    described = get_adapter_class(key).describe()
    assert described["key"] == key and described["credential_fields"] and described["environments"]
    assert {f["name"] for f in described["credential_fields"]} <= set(Credentials.__dataclass_fields__)


def test_verify_credentials_returns_the_account_id(broker, sandbox):
    key, account = broker
    info = build(key, account, sandbox).verify_credentials()
    assert isinstance(info, AccountInfo)
    assert info.account_id == str(account["broker_account_id"])


def test_revoked_key_is_an_auth_error_without_the_secret(broker, sandbox):
    key, account = broker
    sandbox.sims[key].revoke(account["account_id"])
    with pytest.raises(AuthError) as caught:
        build(key, account, sandbox, STRICT).verify_credentials()
    for secret in account["credentials"].values():
        assert str(secret)[:12] not in str(caught.value)


def test_positions_are_typed_and_match_the_truth(broker, sandbox):
    key, account = broker
    snapshot = build(key, account, sandbox).fetch_positions()
    assert isinstance(snapshot, PositionSnapshot)
    assert all(isinstance(p, Position) and isinstance(p.quantity, Decimal) for p in snapshot.positions)
    truth = sandbox_truth(sandbox, account["account_id"])
    mine: dict[str, Decimal] = {}
    for p in snapshot.positions:
        mine[p.asset.symbol] = mine.get(p.asset.symbol, Decimal(0)) + p.quantity
    theirs: dict[str, Decimal] = {}
    for p in truth["positions"]:
        theirs[p["symbol"]] = theirs.get(p["symbol"], Decimal(0)) + Decimal(p["quantity"])
    assert {k: v for k, v in mine.items() if v} == {k: v for k, v in theirs.items() if v}


def test_transactions_full_then_incremental(broker, sandbox):
    key, account = broker
    adapter = build(key, account, sandbox)
    items, cursors = drain(adapter.fetch_transactions(None))
    assert cursors, "at least one page, carrying a cursor"
    assert_forward(cursors)
    assert all(isinstance(t, Transaction) and isinstance(t.occurred_at, datetime) and t.occurred_at.tzinfo
               for t in items)
    assert all(isinstance(t.type, TransactionType) for t in items)
    assert all(v is None or isinstance(v, Decimal) for t in items for v in (t.quantity, t.price, t.amount, t.fee))
    ids = [t.broker_id for t in items]
    truth = sandbox_truth(sandbox, account["account_id"])
    assert set(ids) == {t["broker_id"] for t in truth["transactions"]}

    again, later = drain(build(key, account, sandbox).fetch_transactions(cursors[-1]))
    assert not {t.broker_id for t in again} - set(ids), "an unchanged account yields nothing new"
    assert_forward(cursors[-1:] + later)

    sandbox_advance(sandbox, account["account_id"])
    new, _ = drain(build(key, account, sandbox).fetch_transactions(cursors[-1]))
    truth = sandbox_truth(sandbox, account["account_id"])
    assert {t.broker_id for t in new} | set(ids) >= {t["broker_id"] for t in truth["transactions"]}
    assert {t.broker_id for t in new} - set(ids), "the new records arrive"


def test_orders_full_and_open_refresh(broker, sandbox):
    key, account = broker
    orders, cursors = drain(build(key, account, sandbox).fetch_orders(None, ()))
    assert_forward(cursors)
    assert all(isinstance(o, Order) and o.submitted_at.tzinfo for o in orders)
    truth = {o["broker_id"]: o["status"] for o in sandbox_truth(sandbox, account["account_id"])["orders"]}
    assert {o.broker_id: o.status for o in orders} == truth
    open_ids = [o.broker_id for o in orders if o.is_open]
    if not get_adapter_class(key).reports_working_orders:
        assert orders and not open_ids, "a broker that lists executed orders only has nothing open"
        return
    sandbox_advance(sandbox, account["account_id"], cancel_orders=1)
    refreshed, _ = drain(build(key, account, sandbox).fetch_orders(cursors[-1] if cursors else None, open_ids))
    truth = {o["broker_id"]: o["status"] for o in sandbox_truth(sandbox, account["account_id"])["orders"]}
    returned = {o.broker_id: o.status for o in refreshed}
    assert all(truth[i] == status for i, status in returned.items())
    changed = {i for i in open_ids if truth[i] not in Order.OPEN_STATUSES}
    assert changed, "advance(cancel_orders=1) cancels one of the open orders"
    assert changed <= set(returned), "an order stored as open that changed must come back with its new state"


@pytest.mark.parametrize("plan, kind", [
    (dict(error_rate=1.0, error_status=503), TransientError),
    (dict(malformed_rate=1.0), TransientError),
    (dict(burst_429=3, retry_after=7), RateLimited),
])
def test_error_kinds(broker, sandbox, plan, kind):
    key, account = broker
    sandbox.faults.set(FaultPlan(target=endpoint_name(key, account["environment"]), **plan))
    with pytest.raises(kind) as caught:
        snapshot = build(key, account, sandbox, STRICT).fetch_positions()
        list(build(key, account, sandbox, STRICT).fetch_transactions(None))
        assert snapshot is None
    if kind is RateLimited:
        assert caught.value.retry_after > 0
