"""POST/GET /portfolios/{id}/imports/: a file becomes an import account's transactions and
holdings (in the same endpoints as any broker's), all of it or nothing, never twice."""
from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from backend.connections.models import BrokerConnection
from backend.imports.models import FileImport, ImportUpload
from backend.sync.models import BrokerPosition, BrokerTransaction
from backend.reconcile.totals import differences_for
from backend.sync.scheduling import dispatch_due
from backend.sync.signals import history_changed
from tests.api.factories import PortfolioFactory

from .helpers import GENERIC_HEADER, imports_url, post_file, sample

pytestmark = pytest.mark.django_db


@pytest.fixture
def portfolio(user):
    return PortfolioFactory(owner=user)


@pytest.fixture
def signals():
    sent = []

    def receiver(**kw):
        sent.append(kw)

    history_changed.connect(receiver)
    yield sent
    history_changed.disconnect(receiver)


def holdings(api, connection_id: int) -> dict[str, str]:
    body = api.get(f"/api/v1/connections/{connection_id}/positions/", {"is_open": "true"}).json()
    return {p["broker_symbol"]: p["quantity"] for p in body["results"]}


def test_a_fidelity_export_becomes_an_import_account_with_its_holdings(api, portfolio, signals,
                                                                      django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_file(api, portfolio.pk, sample("fidelity"))

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["status"], body["format"], body["account_name"]) == ("succeeded", "fidelity", "Fidelity")
    assert (body["rows_read"], body["rows_imported"], body["rows_duplicate"], body["rows_error"]) == (17, 17, 0, 0)
    assert body["since"] == "2023-01-03T00:00:00Z" and body["file_name"] == "export.csv"
    connection = BrokerConnection.objects.get(pk=body["connection"])
    assert (connection.broker, connection.portfolio_id, connection.next_sync_at) == ("csv", portfolio.pk, None)
    # worked by hand in tests/imports/test_formats.py::test_fidelity_sample
    assert holdings(api, connection.pk) == {"AAPL": "50", "NVDA": "50", "VOO": "20.078", "cash:USD": "5190.73"}
    listed = api.get(f"/api/v1/connections/{connection.pk}/transactions/", {"type": "dividend"}).json()
    assert listed["count"] == 4 and listed["results"][0]["broker_type"] == "DIVIDEND RECEIVED APPLE INC (AAPL) (Cash)"
    assert differences_for(connection) == []                     # reconcile finds nothing
    assert signals == [{"signal": history_changed, "sender": FileImport, "connection_id": connection.pk,
                        "portfolio_id": portfolio.pk, "since": FileImport.objects.get().since, "reason": "import"}]
    assert not ImportUpload.objects.exists()


def test_importing_again_or_an_overlapping_export_adds_nothing_twice(api, portfolio):
    first = post_file(api, portfolio.pk, sample("schwab")).json()
    again = post_file(api, portfolio.pk, sample("schwab")).json()
    assert again["connection"] == first["connection"]                # the same import account (name and format)
    assert (again["rows_imported"], again["rows_duplicate"]) == (0, 12)

    lines = sample("schwab").decode().splitlines(keepends=True)
    later = "".join([lines[1], '"12/02/2024","Credit Interest","","SCHWAB1 INT 11/01-12/01","","","","$1.11"\n',
                     *lines[2:6]])                                    # a newer export: one new row, four old
    overlap = post_file(api, portfolio.pk, later).json()
    assert (overlap["rows_imported"], overlap["rows_duplicate"]) == (1, 4)
    assert BrokerTransaction.objects.filter(connection_id=first["connection"]).count() == 13
    assert holdings(api, first["connection"])["cash:USD"] == "3027.75"     # 3026.64 + 1.11


def test_a_file_with_bad_rows_changes_nothing_and_says_where(api, portfolio):
    rows = "".join(f"2023-01-{d:02d},buy,AAPL,1,10,,,USD,,,\n" for d in range(1, 21))
    bad = GENERIC_HEADER + "2023-01-01,deposit,,,,,100,USD,,,\n" + "2023-01-02,buy,AAPL,x,10,,,USD,,,\n" * 60 + rows
    response = post_file(api, portfolio.pk, bad)

    assert response.status_code == 400
    body = response.json()
    assert body["message"] == "60 rows of 81 cannot be read: nothing was imported."
    assert body["fields"]["file"][0] == "row 3, quantity: not a number: 'x'"
    assert len(body["fields"]["file"]) == 51 and body["fields"]["file"][-1] == "... and 10 more errors"
    assert not FileImport.objects.exists() and not BrokerConnection.objects.exists()
    assert not BrokerTransaction.objects.exists()


def test_an_unknown_layout_is_a_400_naming_the_closest(api, portfolio):
    response = post_file(api, portfolio.pk, '"Date","Action","Symbol","Description","Quantity","Price","Amount"\n')
    assert response.status_code == 400
    assert response.json()["fields"]["file"] == [
        "This file matches no layout we read. Closest: Charles Schwab (header on line 1); missing columns: Fees & Comm."]
    wrong = post_file(api, portfolio.pk, sample("vanguard"), format="schwab")
    assert wrong.status_code == 400 and "is not a Charles Schwab export. Closest: Vanguard" in wrong.json()["fields"]["file"][0]


def test_size_limits(api, portfolio, settings):
    settings.IMPORT_MAX_BYTES = 100
    response = post_file(api, portfolio.pk, sample("generic"))
    assert response.status_code == 400
    assert response.json()["fields"]["file"] == [f"{len(sample('generic')):,} bytes; at most 100 are accepted."]
    settings.IMPORT_MAX_BYTES, settings.IMPORT_MAX_ROWS = 10_000, 11
    response = post_file(api, portfolio.pk, sample("generic"))               # 12 rows
    assert response.status_code == 400
    assert response.json()["fields"]["file"] == ["More than 11 rows; split it into several files."]
    assert not FileImport.objects.exists()


def test_named_accounts_and_accounts_chosen_by_id(api, portfolio):
    ira = post_file(api, portfolio.pk, sample("generic"), account="Old IRA").json()
    assert ira["account_name"] == "Old IRA"
    other = post_file(api, portfolio.pk, sample("fidelity"), format="fidelity").json()
    assert other["connection"] != ira["connection"]
    chosen = post_file(api, portfolio.pk, sample("generic"), connection=ira["connection"]).json()
    assert (chosen["connection"], chosen["rows_imported"], chosen["rows_duplicate"]) == (ira["connection"], 0, 12)
    elsewhere = post_file(api, PortfolioFactory(owner=portfolio.owner).pk, sample("generic"),
                          connection=ira["connection"])
    assert elsewhere.status_code == 400
    assert elsewhere.json()["fields"] == {"connection": [f"No import account {ira['connection']} in this portfolio."]}


def test_generic_rows_with_an_id_are_updated_by_a_later_file(api, portfolio):
    post_file(api, portfolio.pk, GENERIC_HEADER + "2023-01-02,deposit,,,,,100,USD,,d1,\n")
    fixed = post_file(api, portfolio.pk, GENERIC_HEADER + "2023-01-02,deposit,,,,,150,USD,,d1,\n").json()
    assert (fixed["rows_imported"], fixed["rows_updated"], fixed["rows_duplicate"]) == (0, 1, 0)
    assert holdings(api, fixed["connection"]) == {"cash:USD": "150"}


def test_import_accounts_are_listed_never_synced_or_scheduled(api, portfolio, django_capture_on_commit_callbacks):
    connection_id = post_file(api, portfolio.pk, sample("vanguard")).json()["connection"]
    listed = {c["id"]: c for c in api.get("/api/v1/connections/").json()}
    assert listed[connection_id]["broker"] == "csv" and listed[connection_id]["key_hint"] == ""

    response = api.post(f"/api/v1/connections/{connection_id}/sync/")
    assert response.status_code == 409
    assert response.json()["message"] == ("A CSV import account has no feed to sync: "
                                          "POST /api/v1/portfolios/{id}/imports/ adds a file to it.")
    BrokerConnection.objects.filter(pk=connection_id).update(next_sync_at="2020-01-01T00:00:00Z")
    with django_capture_on_commit_callbacks():
        assert dispatch_due() == 0                         # even with a due time, nothing to fetch
    patched = api.patch(f"/api/v1/connections/{connection_id}/", {"sync_interval": 600}, format="json")
    assert patched.status_code == 200 and patched.json()["next_sync_at"] is not None  # left as it was set above
    keys = api.patch(f"/api/v1/connections/{connection_id}/", {"api_key": "k", "api_secret": "s"}, format="json")
    assert keys.status_code == 400 and "is not connected with keys" in keys.json()["fields"]["broker"][0]
    made = api.post("/api/v1/connections/", {"broker": "manual", "environment": "live"}, format="json")
    assert made.status_code == 400 and "Manual entry account is not connected with keys" in \
        made.json()["fields"]["broker"][0]


def test_list_and_detail_with_filters(api, portfolio):
    made = [post_file(api, portfolio.pk, sample(name)).json()["id"] for name in ("generic", "schwab")]
    body = api.get(imports_url(portfolio.pk), {"file_format": "schwab"}).json()
    assert [r["id"] for r in body["results"]] == [made[1]]
    assert api.get(imports_url(portfolio.pk)).json()["count"] == 2
    assert api.get(imports_url(portfolio.pk), {"status": "nonsense"}).status_code == 400
    detail = api.get(imports_url(portfolio.pk, made[0])).json()
    assert detail["rows_imported"] == 12 and detail["errors"] == []


def test_another_users_portfolio_and_imports_are_404s(api, other_api, portfolio):
    record = post_file(api, portfolio.pk, sample("generic")).json()
    assert other_api.get(imports_url(portfolio.pk)).status_code == 404
    assert other_api.get(imports_url(portfolio.pk, record["id"])).status_code == 404
    assert post_file(other_api, portfolio.pk, sample("generic")).status_code == 404
    mine_elsewhere = PortfolioFactory(owner=portfolio.owner)
    assert api.get(imports_url(mine_elsewhere.pk, record["id"])).status_code == 404   # not of that portfolio
    assert BrokerTransaction.objects.filter(connection_id=record["connection"]).count() == 12


def test_amounts_are_stored_exactly(api, portfolio):
    body = post_file(api, portfolio.pk, GENERIC_HEADER +
                     "2023-01-02,buy,ETH,0.123456789012345678,1234.5,0.000000000000000001,,USD,,,crypto\n").json()
    row = BrokerTransaction.objects.get(connection_id=body["connection"])
    # 0.123456789012345678 x 1234.5 = 123.456789012345678 (x 1000) + 28.950617023395061491 (x 234.5)
    #                                = 152.407406035740739491; plus the fee 0.000000000000000001, negated:
    assert row.quantity == Decimal("0.123456789012345678")
    assert row.amount == Decimal("-152.407406035740739492")


trades = st.lists(st.tuples(st.sampled_from(["buy", "sell", "deposit"]), st.sampled_from(["AAPL", "MSFT"]),
                            st.integers(1, 500), st.decimals(min_value=Decimal("0.01"), max_value=Decimal("999"),
                                                             places=2)), min_size=1, max_size=15)


@hypothesis_settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=trades)
def test_holdings_are_what_the_rows_add_up_to_and_a_reimport_changes_nothing(api, user, rows):
    portfolio = PortfolioFactory(owner=user)
    lines, held, cash = [], defaultdict(Decimal), Decimal(0)
    for day, (kind, symbol, quantity, price) in enumerate(rows, start=1):
        if kind == "deposit":
            lines.append(f"2023-01-{day:02d},deposit,,,,,{price},USD,,,")
            cash += price
        else:
            lines.append(f"2023-01-{day:02d},{kind},{symbol},{quantity},{price},,,USD,,,")
            sign = 1 if kind == "buy" else -1
            held[symbol] += sign * quantity
            cash -= sign * quantity * price
    content = GENERIC_HEADER + "\n".join(lines) + "\n"
    first = post_file(api, portfolio.pk, content).json()
    expected = {s: q for s, q in held.items() if q} | ({"cash:USD": cash} if cash else {})
    stored = {p.broker_symbol: p.quantity for p in BrokerPosition.objects.filter(connection_id=first["connection"],
                                                                                  is_open=True)}
    assert stored == expected
    again = post_file(api, portfolio.pk, content).json()
    assert (again["rows_imported"], again["rows_duplicate"]) == (0, len(rows))
    assert {p.broker_symbol: p.quantity for p in BrokerPosition.objects.filter(
        connection_id=first["connection"], is_open=True)} == expected
