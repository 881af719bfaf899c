"""File imports: take a file, validate every row, then store all of it or nothing.

    import_create   (the API)   size, layout -> small file: read + write now, or 400 with the rows
                                             -> large file: store the bytes, queue `imports.run`
    import_run      (the task)  read (progress on the record) -> write, or fail with the rows

Writing is one transaction: the rows (through the same upsert the sync uses, so a row seen
again is one row), the account's holdings, the record's counts, and the stored file's
deletion. `history_changed` is sent once it has committed."""
from __future__ import annotations

import logging
from datetime import date

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from backend.core.exceptions import ApplicationError
from backend.portfolio.models import Portfolio
from backend.sync import writers
from backend.sync.signals import history_changed

from . import accounts, reader
from .formats import LAYOUTS
from .models import FileImport, ImportUpload

log = logging.getLogger("brokersync.imports")
# Rows per upsert: the same checkpoint size as a sync (backend/sync/pipeline.py), which keeps
# each statement's parameters well under PostgreSQL's 65,535.
WRITE_BATCH = 2_000
Status = FileImport.Status


def import_create(*, portfolio: Portfolio, content: bytes, file_name: str, format_key: str | None,
                  account_name: str = "", connection_id: int | None = None) -> tuple[FileImport, bool]:
    """Import a file into an import account of the portfolio. Returns (record, finished):
    finished now, or queued for a worker (large files). Bad files are a 400 that changes nothing."""
    if len(content) > settings.IMPORT_MAX_BYTES:
        raise ApplicationError("The file is too large.", fields={"file": [
            f"{len(content):,} bytes; at most {settings.IMPORT_MAX_BYTES:,} are accepted."]})
    text = reader.decode(content)
    detected = reader.detect(text, format_key)
    if _lines_after_header(text, detected) > settings.IMPORT_MAX_ROWS:
        raise ApplicationError("The file has too many rows.", fields={"file": [
            f"More than {settings.IMPORT_MAX_ROWS:,} rows; split it into several files."]})
    target = _target_account(portfolio, detected.layout.key, account_name, connection_id)
    record = FileImport(portfolio=portfolio, format=detected.layout.key, file_name=file_name[:255],
                        size=len(content), account_name=target["name"], connection=target.get("connection"))
    if text.count("\n") <= settings.IMPORT_INLINE_MAX_ROWS:
        reading = reader.read(text, detected, today=_today(), max_rows=settings.IMPORT_MAX_ROWS)
        if reading.errors:
            raise ApplicationError(f"{_error_count(reading)}: nothing was imported.",
                                   fields={"file": _error_lines(reading.errors)})
        record.rows_read, record.status, record.started_at = reading.rows, Status.RUNNING, timezone.now()
        with transaction.atomic():              # the record exists only if the rows were written
            record.save()
            _write(record, reading)
        record.refresh_from_db()
        return record, True
    with transaction.atomic():
        record.save()
        ImportUpload.objects.create(file_import=record, content=content)
        transaction.on_commit(lambda: _enqueue(record.pk))
    log.info("import.queued import=%s portfolio=%s rows~%s", record.pk, portfolio.pk, text.count("\n"))
    return record, False


def import_run(*, import_id: int) -> None:
    """A queued import, in a worker: read every row (progress on the record), then write or fail.
    Safe to run twice: a finished import is left alone."""
    record = FileImport.objects.filter(pk=import_id).first()
    if record is None or record.status in FileImport.FINAL:
        return
    FileImport.objects.filter(pk=record.pk).update(status=Status.RUNNING, phase="validating",
                                                   started_at=record.started_at or timezone.now())
    upload = ImportUpload.objects.filter(file_import=record).first()
    if upload is None:
        _fail(record, [], "The uploaded file is no longer stored; upload it again.")
        return
    text = reader.decode(bytes(upload.content))
    del upload
    detected = reader.detect(text, record.format)
    reading = reader.read(text, detected, today=_today(), max_rows=settings.IMPORT_MAX_ROWS,
                          progress=lambda n: FileImport.objects.filter(pk=record.pk).update(rows_read=n))
    record.rows_read = reading.rows
    if reading.errors:
        _fail(record, reading.errors, f"{_error_count(reading)}: nothing was imported.")
        return
    FileImport.objects.filter(pk=record.pk).update(rows_read=reading.rows, phase="writing")
    _write(record, reading)


def _lines_after_header(text: str, detected: reader.Detected) -> int:
    """Non-blank lines after the header: the rows, give or take a trailing note (the exact
    count is checked again while reading)."""
    lines = text.splitlines()
    return sum(1 for line in lines[detected.header_index + 1:] if line.strip(", \t\""))


def _target_account(portfolio: Portfolio, format_key: str, name: str, connection_id: int | None) -> dict:
    if connection_id is not None:
        connection = accounts.feedless_account_chosen(portfolio=portfolio, kind=accounts.CSV,
                                                      connection_id=connection_id)
        return {"name": connection.label, "connection": connection}
    return {"name": " ".join((name or LAYOUTS[format_key].name).split())[:accounts.MAX_NAME_LENGTH]}


def _write(record: FileImport, reading: reader.Reading) -> None:
    rows = reader.keyed(reading.drafts)
    now = timezone.now()
    with transaction.atomic():
        locked = FileImport.objects.select_for_update().get(pk=record.pk)
        if locked.status in FileImport.FINAL:
            return                                  # another delivery of the task finished it
        connection = locked.connection or accounts.feedless_account(
            portfolio=locked.portfolio, kind=accounts.CSV, name=locked.account_name, format_key=locked.format)
        connection = accounts.account_locked(connection)
        totals = {"created": 0, "updated": 0, "changed": 0}
        since = None
        for start in range(0, len(rows), WRITE_BATCH):
            counts = writers.transactions_upsert(connection, rows[start:start + WRITE_BATCH], now)
            for key in totals:
                totals[key] += counts[key]
            earliest = counts["earliest_changed"]
            since = earliest if since is None or (earliest is not None and earliest < since) else since
        accounts.holdings_rebuild(connection)
        FileImport.objects.filter(pk=record.pk).update(
            status=Status.SUCCEEDED, phase="", connection=connection, rows_read=reading.rows,
            rows_imported=totals["created"], rows_updated=totals["changed"],
            rows_duplicate=totals["updated"] - totals["changed"], since=since, finished_at=timezone.now(),
            message=f"{totals['created']:,} new, {totals['updated'] - totals['changed']:,} already imported"
                    + (f", {totals['changed']:,} updated" if totals["changed"] else ""))
        ImportUpload.objects.filter(file_import_id=record.pk).delete()
        transaction.on_commit(lambda: history_changed.send(
            sender=FileImport, connection_id=connection.pk, portfolio_id=connection.portfolio_id, since=since,
            reason="import"))
    log.info("import.finished import=%s connection=%s created=%s", record.pk, connection.pk, totals["created"])


def _fail(record: FileImport, errors: list[dict], message: str) -> None:
    with transaction.atomic():
        FileImport.objects.filter(pk=record.pk).update(
            status=Status.FAILED, phase="", rows_read=record.rows_read, rows_error=len(errors),
            errors=errors[:settings.IMPORT_MAX_ERRORS_LISTED], message=message[:500], finished_at=timezone.now())
        ImportUpload.objects.filter(file_import_id=record.pk).delete()
    log.info("import.failed import=%s errors=%s", record.pk, len(errors))


def import_crashed(*, import_id: int, error: Exception) -> None:
    """An unexpected error (a bug, not the file): the import fails with the error's kind, the
    file is dropped (it would fail again), and nothing it wrote remains (one transaction)."""
    record = FileImport.objects.filter(pk=import_id).first()
    if record is not None and record.status not in FileImport.FINAL:
        _fail(record, [], f"internal error ({type(error).__name__}); nothing was imported")


def _enqueue(import_id: int) -> None:
    from workers.tasks import run_import

    run_import.apply_async((import_id,), queue="imports")


def _error_count(reading: reader.Reading) -> str:
    rows = len({e["row"] for e in reading.errors})
    return f"{rows:,} row{'s' if rows != 1 else ''} of {reading.rows:,} cannot be read"


def _error_lines(errors: list[dict]) -> list[str]:
    limit = settings.IMPORT_MAX_ERRORS_LISTED
    lines = [f"row {e['row']}" + (f", {e['field']}" if e["field"] else "") + f": {e['message']}"
             for e in errors[:limit]]
    if len(errors) > limit:
        lines.append(f"... and {len(errors) - limit:,} more errors")
    return lines


def _today() -> date:
    return timezone.now().date()
