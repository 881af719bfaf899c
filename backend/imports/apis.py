"""Import and manual-transaction APIs: one class per operation, validate -> service/selector ->
serialise. Every path starts from one of the requesting user's portfolios (404 otherwise)."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.connections.serializers import ErrorOutputSerializer
from backend.core.parsers import BoundedJSONParser
from backend.sync.apis import PaginatedApi
from backend.sync.filters import openapi_parameters

from . import selectors
from .manual import manual_input, manual_transaction_create, manual_transaction_delete, manual_transaction_update
from .serializers import (
    FileImportOutputSerializer, ImportInputSerializer, ManualTransactionCreateSerializer,
    ManualTransactionInputSerializer, ManualTransactionOutputSerializer,
)
from .services import import_create

ERRORS = {400: ErrorOutputSerializer, 404: ErrorOutputSerializer}


class ImportListApi(PaginatedApi):
    @extend_schema(operation_id="portfolios_imports_list", parameters=openapi_parameters(selectors.ImportFilter),
                   responses={200: FileImportOutputSerializer(many=True), **ERRORS})
    def get(self, request: Request, portfolio_id: int) -> Response:
        """The portfolio's file imports, newest first."""
        portfolio = selectors.portfolio_get(user=request.user, portfolio_id=portfolio_id)
        return self.paginated(request, selectors.import_list(portfolio=portfolio, filters=request.query_params),
                              FileImportOutputSerializer)


class ImportCreateApi(APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        operation_id="portfolios_imports_create", request={"multipart/form-data": ImportInputSerializer},
        responses={201: OpenApiResponse(FileImportOutputSerializer, description="Imported (small files)."),
                   202: OpenApiResponse(FileImportOutputSerializer, description="Queued: a worker imports it; "
                                        "GET the import for its progress."),
                   400: OpenApiResponse(ErrorOutputSerializer, description="Too large, an unknown layout (naming "
                                        "the closest one and what differs), or rows that cannot be read (each "
                                        "with its line and column). Nothing was imported."),
                   404: ErrorOutputSerializer})
    def post(self, request: Request, portfolio_id: int) -> Response:
        """Import a broker's CSV export (Fidelity, Charles Schwab, Vanguard, or our generic template) into an
        import account of this portfolio. Every row is checked first; the whole file is imported or nothing.
        Rows already imported (the same file again, an overlapping later export) are not added twice."""
        portfolio = selectors.portfolio_get(user=request.user, portfolio_id=portfolio_id)
        serializer = ImportInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        upload = data["file"]
        record, finished = import_create(
            portfolio=portfolio, content=_read(upload), file_name=upload.name or "", format_key=data.get("format"),
            account_name=data.get("account", ""), connection_id=data.get("connection"))
        return Response(FileImportOutputSerializer(record).data,
                        status=status.HTTP_201_CREATED if finished else status.HTTP_202_ACCEPTED)


def _read(upload) -> bytes:
    from django.conf import settings

    from backend.core.exceptions import ApplicationError

    if upload.size > settings.IMPORT_MAX_BYTES:        # refused before reading it into memory
        raise ApplicationError("The file is too large.", fields={"file": [
            f"{upload.size:,} bytes; at most {settings.IMPORT_MAX_BYTES:,} are accepted."]})
    return upload.read()


class ImportDetailApi(APIView):
    @extend_schema(operation_id="portfolios_imports_retrieve", responses={200: FileImportOutputSerializer,
                                                                          404: ErrorOutputSerializer})
    def get(self, request: Request, portfolio_id: int, import_id: int) -> Response:
        """One import: its state and progress (rows read, imported, duplicates, errors)."""
        portfolio = selectors.portfolio_get(user=request.user, portfolio_id=portfolio_id)
        return Response(FileImportOutputSerializer(selectors.import_get(portfolio=portfolio,
                                                                        import_id=import_id)).data)


class ManualTransactionListApi(PaginatedApi):
    @extend_schema(operation_id="portfolios_manual_transactions_list",
                   parameters=openapi_parameters(selectors.ManualTransactionFilter),
                   responses={200: ManualTransactionOutputSerializer(many=True), **ERRORS})
    def get(self, request: Request, portfolio_id: int) -> Response:
        """The portfolio's manual transactions (of all its manual accounts), newest first."""
        portfolio = selectors.portfolio_get(user=request.user, portfolio_id=portfolio_id)
        rows = selectors.manual_transaction_list(portfolio=portfolio, filters=request.query_params)
        return self.paginated(request, rows, ManualTransactionOutputSerializer)


class ManualTransactionCreateApi(APIView):
    parser_classes = [BoundedJSONParser, FormParser, MultiPartParser]

    @extend_schema(operation_id="portfolios_manual_transactions_create", request=ManualTransactionCreateSerializer,
                   responses={201: ManualTransactionOutputSerializer, **ERRORS})
    def post(self, request: Request, portfolio_id: int) -> Response:
        """Add a transaction typed by hand to a manual account of this portfolio (created on first use)."""
        portfolio = selectors.portfolio_get(user=request.user, portfolio_id=portfolio_id)
        serializer = ManualTransactionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        account, connection_id = data.pop("account", ""), data.pop("connection", None)
        row = manual_transaction_create(portfolio=portfolio, data=data, account_name=account,
                                        connection_id=connection_id)
        return Response(ManualTransactionOutputSerializer(row).data, status=status.HTTP_201_CREATED)


class ManualTransactionDetailApi(APIView):
    @extend_schema(operation_id="portfolios_manual_transactions_retrieve",
                   responses={200: ManualTransactionOutputSerializer, **ERRORS})
    def get(self, request: Request, portfolio_id: int, transaction_id: int) -> Response:
        """One manual transaction."""
        row = _manual_row(request, portfolio_id, transaction_id)
        manual_input(row=row)
        return Response(ManualTransactionOutputSerializer(row).data)


class ManualTransactionUpdateApi(APIView):
    @extend_schema(operation_id="portfolios_manual_transactions_partial_update",
                   request=ManualTransactionInputSerializer(partial=True),
                   responses={200: ManualTransactionOutputSerializer, **ERRORS})
    def patch(self, request: Request, portfolio_id: int, transaction_id: int) -> Response:
        """Change a manual transaction: the fields sent replace the stored ones (null clears one), and the
        result is validated as a whole. A broker's or an import's transaction cannot be changed (400)."""
        row = _manual_row(request, portfolio_id, transaction_id)
        serializer = ManualTransactionInputSerializer(data={**manual_input(row=row), **request.data})
        serializer.is_valid(raise_exception=True)
        row = manual_transaction_update(row=row, data=dict(serializer.validated_data))
        return Response(ManualTransactionOutputSerializer(row).data)


class ManualTransactionDeleteApi(APIView):
    @extend_schema(operation_id="portfolios_manual_transactions_destroy", responses={204: None, **ERRORS})
    def delete(self, request: Request, portfolio_id: int, transaction_id: int) -> Response:
        """Delete a manual transaction (a broker's or an import's cannot be deleted: 400)."""
        manual_transaction_delete(row=_manual_row(request, portfolio_id, transaction_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


def _manual_row(request: Request, portfolio_id: int, transaction_id: int):
    portfolio = selectors.portfolio_get(user=request.user, portfolio_id=portfolio_id)
    return selectors.portfolio_transaction_get(portfolio=portfolio, transaction_id=transaction_id)


# -- what the URLs route to -------------------------------------------------------------
class ImportCollectionApi(ImportListApi, ImportCreateApi):
    """GET: the portfolio's imports. POST: import a file."""


class ManualTransactionCollectionApi(ManualTransactionListApi, ManualTransactionCreateApi):
    """GET: the portfolio's manual transactions. POST: add one."""


class ManualTransactionItemApi(ManualTransactionDetailApi, ManualTransactionUpdateApi, ManualTransactionDeleteApi):
    """GET, PATCH, DELETE one manual transaction."""
