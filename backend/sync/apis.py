"""Read APIs for runs and synced rows: one class per operation, all scoped to the
requesting user through connection_get / sync_run_get (another user's row is a 404)."""
from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.connections.selectors import connection_get
from backend.connections.serializers import ErrorOutputSerializer

from .filters import OrderFilter, PositionFilter, TransactionFilter, openapi_parameters
from .selectors import (
    orders_for_connection, positions_for_connection, sync_run_get, sync_run_list, transactions_for_connection,
)
from .serializers import (
    OrderOutputSerializer, PositionOutputSerializer, SyncRunOutputSerializer, TransactionOutputSerializer,
)

NOT_FOUND = {404: ErrorOutputSerializer}
BAD_FILTER = {400: ErrorOutputSerializer, 404: ErrorOutputSerializer}


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500          # a full page of transactions is still well under a second to serialise


class PaginatedApi(APIView):
    pagination_class = Pagination

    def paginated(self, request: Request, queryset: QuerySet, serializer_class: type[serializers.Serializer]):
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(serializer_class(page, many=True).data)


class SyncRunListApi(PaginatedApi):
    @extend_schema(operation_id="connections_sync_runs_list",
                   responses={200: SyncRunOutputSerializer(many=True), **NOT_FOUND})
    def get(self, request: Request, connection_id: int) -> Response:
        """A connection's sync runs, newest first."""
        connection = connection_get(user=request.user, connection_id=connection_id)
        return self.paginated(request, sync_run_list(connection=connection), SyncRunOutputSerializer)


class SyncRunDetailApi(APIView):
    @extend_schema(operation_id="sync_runs_retrieve", responses={200: SyncRunOutputSerializer, **NOT_FOUND})
    def get(self, request: Request, run_id: int) -> Response:
        """One sync run: its state, steps with counts and timings, and why it failed."""
        return Response(SyncRunOutputSerializer(sync_run_get(user=request.user, run_id=run_id)).data)


class PositionListApi(PaginatedApi):
    @extend_schema(operation_id="connections_positions_list", parameters=openapi_parameters(PositionFilter),
                   responses={200: PositionOutputSerializer(many=True), **BAD_FILTER})
    def get(self, request: Request, connection_id: int) -> Response:
        """The connection's positions, open and closed."""
        connection = connection_get(user=request.user, connection_id=connection_id)
        positions = positions_for_connection(connection=connection, filters=request.query_params)
        return self.paginated(request, positions, PositionOutputSerializer)


class TransactionListApi(PaginatedApi):
    @extend_schema(operation_id="connections_transactions_list", parameters=openapi_parameters(TransactionFilter),
                   responses={200: TransactionOutputSerializer(many=True), **BAD_FILTER})
    def get(self, request: Request, connection_id: int) -> Response:
        """The connection's transactions (trades, dividends, fees, transfers ...), newest first."""
        connection = connection_get(user=request.user, connection_id=connection_id)
        transactions = transactions_for_connection(connection=connection, filters=request.query_params)
        return self.paginated(request, transactions, TransactionOutputSerializer)


class OrderListApi(PaginatedApi):
    @extend_schema(operation_id="connections_orders_list", parameters=openapi_parameters(OrderFilter),
                   responses={200: OrderOutputSerializer(many=True), **BAD_FILTER})
    def get(self, request: Request, connection_id: int) -> Response:
        """The connection's orders, newest first."""
        connection = connection_get(user=request.user, connection_id=connection_id)
        orders = orders_for_connection(connection=connection, filters=request.query_params)
        return self.paginated(request, orders, OrderOutputSerializer)
