"""Large files through the real Celery worker on the `imports` queue: the file waits in the
database (never a task argument), the record shows progress and the outcome, and the stored
file is deleted once the import is over, whichever way it ended."""
from __future__ import annotations

import time

import pytest

from backend.imports.models import FileImport, ImportUpload
from backend.sync.models import BrokerPosition, BrokerTransaction
from tests.api.factories import PortfolioFactory

from .helpers import GENERIC_HEADER, imports_url, post_file, sample

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


@pytest.fixture
def queued_imports(settings, celery_worker_process, redis_client):
    settings.IMPORT_INLINE_MAX_ROWS = 5          # every sample is "large": the task path
    return settings


def wait_for_import(import_id: int, timeout: float = 60) -> FileImport:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = FileImport.objects.get(pk=import_id)
        if record.status in FileImport.FINAL:
            return record
        time.sleep(0.2)
    raise AssertionError(f"import {import_id} still {FileImport.objects.get(pk=import_id).status}")


def test_a_large_file_is_imported_by_the_worker(api, user, queued_imports):
    portfolio = PortfolioFactory(owner=user)
    response = post_file(api, portfolio.pk, sample("vanguard"))

    assert response.status_code == 202
    queued = response.json()
    assert queued["status"] in ("queued", "running", "succeeded") and queued["connection"] is None
    record = wait_for_import(queued["id"])
    assert record.status == "succeeded", (record.message, record.errors)
    assert (record.rows_read, record.rows_imported, record.rows_duplicate) == (14, 14, 0)
    assert not ImportUpload.objects.filter(file_import=record).exists()
    cash = BrokerPosition.objects.get(connection=record.connection, broker_symbol="cash:USD")
    assert str(cash.quantity.normalize()) == "1996.67"                # worked by hand in test_formats.py
    detail = api.get(imports_url(portfolio.pk, record.pk)).json()
    assert (detail["status"], detail["rows_imported"]) == ("succeeded", 14)

    again = wait_for_import(post_file(api, portfolio.pk, sample("vanguard")).json()["id"])
    assert (again.rows_imported, again.rows_duplicate, again.connection_id) == (0, 14, record.connection_id)


def test_a_large_file_with_bad_rows_fails_whole_with_the_rows(api, user, queued_imports):
    portfolio = PortfolioFactory(owner=user)
    good = "".join(f"2023-01-{d:02d},deposit,,,,,{d},USD,,,\n" for d in range(1, 21))
    response = post_file(api, portfolio.pk, GENERIC_HEADER + good + "2023-02-01,deposit,,,,,-5,USD,,,\n")

    assert response.status_code == 202
    record = wait_for_import(response.json()["id"])
    assert record.status == "failed"
    assert record.message == "1 row of 21 cannot be read: nothing was imported."
    assert record.errors == [{"row": 22, "field": "amount", "message": "give a positive number: the type sets the sign"}]
    assert (record.rows_read, record.rows_error, record.connection_id) == (21, 1, None)
    assert not BrokerTransaction.objects.exists() and not ImportUpload.objects.exists()
