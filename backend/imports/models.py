"""File imports: one record per uploaded file, and the file itself until it is imported.

The rows a file holds become ordinary BrokerTransactions of an import account (a
BrokerConnection of kind `csv`); the record keeps what happened to the file."""
from __future__ import annotations

from django.db import models

from backend.connections.models import BrokerConnection
from backend.portfolio.models import Portfolio


class FileImport(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"             # waiting for a worker (large files)
        RUNNING = "running"           # a worker is validating or writing it
        SUCCEEDED = "succeeded"       # every row is stored (new or already there)
        FAILED = "failed"             # nothing was stored; `errors` says why

    FINAL = (Status.SUCCEEDED, Status.FAILED)

    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="imports")
    connection = models.ForeignKey(BrokerConnection, on_delete=models.CASCADE, null=True, blank=True,
                                   related_name="imports", help_text="The import account; set once rows are written.")
    account_name = models.CharField(max_length=100, help_text="The import account the rows go to.")
    format = models.CharField(max_length=16)
    file_name = models.CharField(max_length=255, blank=True, default="")
    size = models.PositiveBigIntegerField(help_text="Bytes.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    phase = models.CharField(max_length=16, blank=True, default="", help_text="validating or writing, while running.")
    rows_read = models.PositiveIntegerField(default=0)
    rows_imported = models.PositiveIntegerField(default=0, help_text="New transactions.")
    rows_duplicate = models.PositiveIntegerField(default=0, help_text="Rows already stored by an earlier import.")
    rows_updated = models.PositiveIntegerField(default=0, help_text="Rows with the file's own id whose values changed.")
    rows_error = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True, help_text="[{row, field, message}], the first ones only.")
    message = models.CharField(max_length=500, blank=True, default="")
    since = models.DateTimeField(null=True, blank=True, help_text="Earliest time among the rows it added or changed.")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["portfolio", "-id"], name="import_portfolio_idx")]

    def __str__(self) -> str:
        return f"import {self.pk} {self.format} {self.status}"


class ImportUpload(models.Model):
    """The uploaded bytes, kept apart so listing imports never loads them, and deleted in
    the transaction that finishes the import (rows written, or the file refused). A worker
    reads them from here: a file is never a task argument."""

    file_import = models.OneToOneField(FileImport, on_delete=models.CASCADE, primary_key=True,
                                       related_name="upload")
    content = models.BinaryField()
