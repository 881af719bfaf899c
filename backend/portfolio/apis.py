"""Portfolio APIs: one class per operation, each validate -> service/selector -> serialise.
Every portfolio is looked up among the requesting user's own (another user's is a 404)."""
from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field, extend_schema_serializer,
)
from rest_framework import serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.connections.serializers import ErrorOutputSerializer
from backend.core.fields import StrictBooleanField, StrictCharField, StrictChoiceField

from .models import Portfolio
from .performance import INTERVALS, history_info, history_points, returns_get
from .selectors import portfolio_connection_id, portfolio_get, portfolio_list
from .serializers import (
    HistoryPointSerializer, HistoryStateSerializer, PortfolioOutputSerializer, ReturnsSerializer,
    ValuationSerializer,
)
from .services import BASE_CURRENCIES, portfolio_create, portfolio_delete, portfolio_update
from .value import portfolio_value

ERRORS = {400: ErrorOutputSerializer, 404: ErrorOutputSerializer}
NOT_FOUND = {404: ErrorOutputSerializer}


def _settings_fields(required: bool) -> dict:
    return {
        "base_currency": StrictChoiceField(choices=BASE_CURRENCIES, required=False,
                                           help_text="Every value, cost and return is shown in it."),
        "cost_basis_method": StrictChoiceField(choices=Portfolio.CostBasisMethod.choices, required=False),
        "wash_sales": StrictBooleanField(required=False, help_text="Apply US wash-sale rules to equities."),
        "name": StrictCharField(max_length=128, required=required, allow_blank=False),
    }


class PortfolioListApi(APIView):
    @extend_schema(operation_id="portfolios_list", responses=PortfolioOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        """Your portfolios, with the ids of the connections that feed each one and their latest value."""
        return Response(PortfolioOutputSerializer(portfolio_list(user=request.user), many=True).data)


class PortfolioCreateApi(APIView):
    InputSerializer = extend_schema_serializer(component_name="PortfolioCreate")(
        type("PortfolioCreateInput", (serializers.Serializer,), _settings_fields(required=True)))

    @extend_schema(operation_id="portfolios_create", request=InputSerializer,
                   responses={201: PortfolioOutputSerializer, 400: ErrorOutputSerializer})
    def post(self, request: Request) -> Response:
        """Create a portfolio (a name unique among yours; base currency USD unless told)."""
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        portfolio = portfolio_create(owner=request.user, **serializer.validated_data)
        return Response(PortfolioOutputSerializer(portfolio_get(user=request.user, portfolio_id=portfolio.pk)).data,
                        status=status.HTTP_201_CREATED)


class PortfolioDetailApi(APIView):
    @extend_schema(operation_id="portfolios_retrieve", responses={200: PortfolioOutputSerializer, **NOT_FOUND})
    def get(self, request: Request, portfolio_id: int) -> Response:
        """One of your portfolios."""
        return Response(PortfolioOutputSerializer(portfolio_get(user=request.user, portfolio_id=portfolio_id)).data)


class PortfolioUpdateApi(APIView):
    InputSerializer = extend_schema_serializer(component_name="PortfolioUpdate")(
        type("PortfolioUpdateInput", (serializers.Serializer,), _settings_fields(required=False)))

    @extend_schema(operation_id="portfolios_partial_update", request=InputSerializer,
                   responses={200: PortfolioOutputSerializer, **ERRORS})
    def patch(self, request: Request, portfolio_id: int) -> Response:
        """Rename it, or change its base currency (the value history is rebuilt in it), cost-basis
        method or wash-sale setting (the ledger recomputes)."""
        portfolio = portfolio_get(user=request.user, portfolio_id=portfolio_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        portfolio_update(portfolio=portfolio, **serializer.validated_data)
        return Response(PortfolioOutputSerializer(portfolio_get(user=request.user, portfolio_id=portfolio_id)).data)


class PortfolioDeleteApi(APIView):
    @extend_schema(operation_id="portfolios_destroy", responses={
        204: None, 404: ErrorOutputSerializer,
        409: OpenApiResponse(ErrorOutputSerializer, description="Connections feed it; the message names them.")})
    def delete(self, request: Request, portfolio_id: int) -> Response:
        """Delete an empty portfolio. One that a connection feeds is refused (409) with their names."""
        portfolio_delete(portfolio=portfolio_get(user=request.user, portfolio_id=portfolio_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class PortfolioValueApi(APIView):
    @extend_schema(operation_id="portfolios_value", responses={200: ValuationSerializer, **NOT_FOUND})
    def get(self, request: Request, portfolio_id: int) -> Response:
        """What the portfolio is worth now, in its base currency: every open holding at its latest price
        (its broker's own source first), cash, a total per connection, and the holdings no source prices,
        listed apart and left out of the total."""
        portfolio = portfolio_get(user=request.user, portfolio_id=portfolio_id)
        return Response(ValuationSerializer(portfolio_value(portfolio=portfolio)).data)


class _RangeQuery(serializers.Serializer):
    def validate(self, data):
        if data.get("from") and data.get("to") and data["from"] > data["to"]:
            raise serializers.ValidationError({"to": ["Must be on or after `from`."]})
        return data


def _range_query(with_interval: bool) -> type[serializers.Serializer]:
    """The query parameters of a range (`from` is a Python keyword, hence the class built here)."""
    fields = {"from": serializers.DateField(required=False, help_text="First day (default: the first in the history)."),
              "to": serializers.DateField(required=False, help_text="Last day (default: the last stored)."),
              "connection": serializers.IntegerField(required=False, min_value=1,
                                                     help_text="Only this connection of the portfolio.")}
    if with_interval:
        fields["interval"] = serializers.ChoiceField(choices=INTERVALS, required=False, default="day")
    return type("HistoryQuery" if with_interval else "ReturnsQuery", (_RangeQuery,), fields)


def _range(request: Request, query_class, portfolio: Portfolio) -> dict:
    query = query_class(data=request.query_params)
    query.is_valid(raise_exception=True)
    data = query.validated_data
    return {"connection_id": portfolio_connection_id(portfolio=portfolio, connection_id=data.get("connection")),
            "start": data.get("from"), "end": data.get("to"), "interval": data.get("interval", "day")}


class HistoryPagination(PageNumberPagination):
    page_size = 366                  # a year of days per page
    page_size_query_param = "page_size"
    max_page_size = 2000             # five years and a half: a whole chart in one request


PAGE_PARAMETERS = [
    OpenApiParameter("page", OpenApiTypes.INT, OpenApiParameter.QUERY, description="Page number (from 1)."),
    OpenApiParameter("page_size", OpenApiTypes.INT, OpenApiParameter.QUERY,
                     description=f"Points per page (default {HistoryPagination.page_size}, "
                                 f"at most {HistoryPagination.max_page_size})."),
]


@extend_schema_serializer(component_name="PortfolioHistoryPage")
class HistoryPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    currency = serializers.CharField()
    interval = serializers.CharField()
    connection = serializers.IntegerField(allow_null=True)
    history = HistoryStateSerializer()
    results = HistoryPointSerializer(many=True)


class PortfolioHistoryApi(APIView):
    Query = _range_query(with_interval=True)

    @extend_schema(operation_id="portfolios_history", parameters=[Query, *PAGE_PARAMETERS],
                   responses={200: HistoryPageSerializer, **ERRORS})
    def get(self, request: Request, portfolio_id: int) -> Response:
        """The daily value history (end-of-day values at that day's close, plus cash), the external flows
        and the cumulative time-weighted return from the start of the range; per week or month the
        last day of each stands for it and flows are summed."""
        portfolio = portfolio_get(user=request.user, portfolio_id=portfolio_id)
        args = _range(request, self.Query, portfolio)
        points = history_points(portfolio=portfolio, **args)
        paginator = HistoryPagination()
        page = paginator.paginate_queryset(points, request, view=self)
        response = paginator.get_paginated_response(HistoryPointSerializer(page, many=True).data)
        response.data.update(currency=portfolio.base_currency, interval=args["interval"],
                             connection=args["connection_id"],
                             history=HistoryStateSerializer(history_info(portfolio=portfolio)).data)
        return response


class PortfolioReturnsApi(APIView):
    Query = _range_query(with_interval=False)

    @extend_schema_serializer(component_name="PortfolioReturns")
    class OutputSerializer(ReturnsSerializer):
        history = serializers.SerializerMethodField(help_text="Where the value history stands.")

        @extend_schema_field(HistoryStateSerializer)
        def get_history(self, returns) -> dict:
            return HistoryStateSerializer(self.context["history"]).data

    @extend_schema(operation_id="portfolios_returns", parameters=[Query],
                   responses={200: OutputSerializer, **ERRORS})
    def get(self, request: Request, portfolio_id: int) -> Response:
        """Returns over a range (default: since inception): time-weighted (daily chain-linked, flows at the
        end of their day), money-weighted (XIRR, actual/365; `xirr.status` says when there is no
        solution or several), the absolute gain and the flows."""
        portfolio = portfolio_get(user=request.user, portfolio_id=portfolio_id)
        args = _range(request, self.Query, portfolio)
        args.pop("interval")
        result = returns_get(portfolio=portfolio, **args)
        return Response(self.OutputSerializer(result, context={"history": history_info(portfolio=portfolio)}).data)


# -- what the URLs route to -------------------------------------------------------------
class PortfolioCollectionApi(PortfolioListApi, PortfolioCreateApi):
    """GET: list your portfolios. POST: create one."""


class PortfolioItemApi(PortfolioDetailApi, PortfolioUpdateApi, PortfolioDeleteApi):
    """GET, PATCH, DELETE one of your portfolios."""

