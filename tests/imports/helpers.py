"""Samples and small files for the import tests."""
from __future__ import annotations

from pathlib import Path

from django.core.files.uploadedfile import SimpleUploadedFile

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "imports"
GENERIC_HEADER = "date,type,symbol,quantity,price,fees,amount,currency,description,id,asset_class\n"


def sample(name: str) -> bytes:
    return (FIXTURES / f"{name}.csv").read_bytes()


def upload(content: bytes | str, name: str = "export.csv") -> SimpleUploadedFile:
    data = content.encode() if isinstance(content, str) else content
    return SimpleUploadedFile(name, data, content_type="text/csv")


def imports_url(portfolio_id: int, import_id: int | None = None) -> str:
    return f"/api/v1/portfolios/{portfolio_id}/imports/" + (f"{import_id}/" if import_id else "")


def post_file(api, portfolio_id: int, content: bytes | str, **fields):
    return api.post(imports_url(portfolio_id), {"file": upload(content), **fields}, format="multipart")
