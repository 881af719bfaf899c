"""Ledger APIs under /portfolios/{id}/: thin views over selectors and services. Another
user's portfolio (or a lot or disposal of it) is a 404."""
from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.core.serializers import ErrorSerializer
from backend.sync.apis import PaginatedApi
from backend.sync.filters import openapi_parameters

from . import selectors, serializers as s, services
from .export import form_8949_csv
from .models import Lot, LotPick

NOT_FOUND = {404: ErrorSerializer}
BAD = {400: ErrorSerializer, 404: ErrorSerializer}


class HoldingListApi(PaginatedApi):
    @extend_schema(operation_id="portfolios_holdings_list", responses={200: s.HoldingOutputSerializer(many=True),
                                                                       **NOT_FOUND})
    def get(self, request: Request, portfolio_id: int) -> Response:
        """Open lots per asset across connections: quantity, cost basis, average cost, market
        value at the latest price, unrealized P&L and weight."""
        portfolio = selectors.portfolio_get(user=request.user, portfolio_id=portfolio_id)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(selectors.holdings_list(portfolio=portfolio), request, view=self)
        return paginator.get_paginated_response(s.HoldingOutputSerializer(page, many=True).data)


class LotListApi(PaginatedApi):
    @extend_schema(operation_id="portfolios_lots_list", parameters=openapi_parameters(selectors.LotFilter),
                   responses={200: s.LotOutputSerializer(many=True), **BAD})
    def get(self, request: Request, portfolio_id: int) -> Response:
        """Lots, open and closed, oldest first; open ones with market value and unrealized P&L."""
        portfolio = selectors.portfolio_get(user=request.user, portfolio_id=portfolio_id)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(selectors.lots_list(portfolio=portfolio, filters=request.query_params),
                                           request, view=self)
        values = selectors.lots_valued(portfolio=portfolio, lots=page)
        return paginator.get_paginated_response(s.LotOutputSerializer(page, many=True,
                                                                      context={"values": values}).data)


class DisposalListApi(PaginatedApi):
    @extend_schema(operation_id="portfolios_disposals_list", parameters=openapi_parameters(selectors.DisposalFilter),
                   responses={200: s.DisposalOutputSerializer(many=True), **BAD})
    def get(self, request: Request, portfolio_id: int) -> Response:
        """Realized P&L: each disposal with proceeds, basis, gain, term, wash-sale adjustment
        and the lots it closed, newest first."""
        portfolio = selectors.portfolio_get(user=request.user, portfolio_id=portfolio_id)
        disposals = selectors.disposals_list(portfolio=portfolio, filters=request.query_params)
        return self.paginated(request, disposals, s.DisposalOutputSerializer)


class LotSelectionApi(APIView):
    def _output(self, portfolio, disposal) -> dict:
        pick = LotPick.objects.filter(portfolio=portfolio, disposal_key=disposal.key).first()
        return {"disposal": disposal.pk, "method": portfolio.cost_basis_method, "pick": pick.lots if pick else [],
                "pick_status": disposal.pick_status, "lots": list(disposal.links.all())}

    @extend_schema(operation_id="portfolios_disposals_lot_selection_retrieve",
                   responses={200: s.LotSelectionOutputSerializer, **NOT_FOUND})
    def get(self, request: Request, portfolio_id: int, disposal_id: int) -> Response:
        """Which lots this sale closed, and the pick (specific identification) if there is one."""
        portfolio = selectors.portfolio_get(user=request.user, portfolio_id=portfolio_id)
        disposal = selectors.disposal_get(portfolio=portfolio, disposal_id=disposal_id)
        return Response(s.LotSelectionOutputSerializer(self._output(portfolio, disposal)).data)

    @extend_schema(operation_id="portfolios_disposals_lot_selection_update", request=s.LotPickInputSerializer,
                   responses={202: s.LotSelectionOutputSerializer, **BAD})
    def put(self, request: Request, portfolio_id: int, disposal_id: int) -> Response:
        """Pick the lots this sale closed. Refused (400, with why) when a lot was not open at the
        sale or the quantities do not fit; accepted picks recompute the ledger (202)."""
        portfolio = selectors.portfolio_get(user=request.user, portfolio_id=portfolio_id)
        disposal = selectors.disposal_get(portfolio=portfolio, disposal_id=disposal_id)
        data = s.LotPickInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        lots = Lot.objects.in_bulk([item["lot"] for item in data.validated_data["lots"]])
        unknown = [item["lot"] for item in data.validated_data["lots"] if item["lot"] not in lots
                   or lots[item["lot"]].portfolio_id != portfolio.pk]
        if unknown:
            raise ValidationError({"lots": [f"no lot {pk} in this portfolio" for pk in unknown]})
        items = [{"lot": lots[i["lot"]], "quantity": i["quantity"]} for i in data.validated_data["lots"]]
        services.lot_pick_set(portfolio=portfolio, disposal=disposal, lots=items)
        return Response(s.LotSelectionOutputSerializer(self._output(portfolio, disposal)).data, status=202)


class IncomeApi(APIView):
    @extend_schema(operation_id="portfolios_income_list", parameters=[
        OpenApiParameter("period", OpenApiTypes.STR, enum=["month", "year"], description="Default month."),
        OpenApiParameter("by", OpenApiTypes.STR, enum=["asset", "connection"], description="Break totals down."),
        *openapi_parameters(selectors.IncomeFilter)], responses={200: s.IncomeOutputSerializer(many=True), **BAD})
    def get(self, request: Request, portfolio_id: int) -> Response:
        """Income totals (dividends gross and withheld, interest, rewards, fees) by period and kind."""
        portfolio = selectors.portfolio_get(user=request.user, portfolio_id=portfolio_id)
        period, by = request.query_params.get("period", "month"), request.query_params.get("by", "")
        errors = {}
        if period not in ("month", "year"):
            errors["period"] = ["month or year"]
        if by not in ("", "asset", "connection"):
            errors["by"] = ["asset or connection"]
        if errors:
            raise ValidationError(errors)
        rows = selectors.income_summary(portfolio=portfolio, period=period, by=by, filters=request.query_params)
        return Response(s.IncomeOutputSerializer(rows, many=True).data)


class NeedsBasisListApi(PaginatedApi):
    @extend_schema(operation_id="portfolios_needs_basis_list", responses={200: s.LotOutputSerializer(many=True),
                                                                          **NOT_FOUND})
    def get(self, request: Request, portfolio_id: int) -> Response:
        """Open lots of unknown basis (deposits from outside): gains touching them are incomplete
        until you give their basis."""
        portfolio = selectors.portfolio_get(user=request.user, portfolio_id=portfolio_id)
        return self.paginated(request, selectors.lots_needing_basis(portfolio=portfolio), s.LotOutputSerializer)


class NeedsBasisDetailApi(APIView):
    @extend_schema(operation_id="portfolios_needs_basis_update", request=s.BasisInputSerializer,
                   responses={202: s.LotOutputSerializer, **BAD})
    def patch(self, request: Request, portfolio_id: int, lot_id: int) -> Response:
        """Give a lot its basis and acquisition date; the ledger recomputes (202)."""
        portfolio = selectors.portfolio_get(user=request.user, portfolio_id=portfolio_id)
        lot = get_object_or_404(Lot, pk=lot_id, portfolio=portfolio)
        data = s.BasisInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.lot_basis_set(portfolio=portfolio, lot=lot, cost_basis=data.validated_data["cost_basis"],
                               acquired_at=data.validated_data.get("acquired_at"))
        return Response(s.LotOutputSerializer(lot).data, status=202)


class Form8949Api(APIView):
    @extend_schema(operation_id="portfolios_form_8949_retrieve",
                   parameters=[OpenApiParameter("year", OpenApiTypes.INT, required=True)],
                   responses={(200, "text/csv"): OpenApiTypes.STR, **BAD})
    def get(self, request: Request, portfolio_id: int):
        """A year's disposals as CSV in the columns of IRS Form 8949, Part I (short term) then
        Part II (long term)."""
        portfolio = selectors.portfolio_get(user=request.user, portfolio_id=portfolio_id)
        year = request.query_params.get("year", "")
        if not year.isdigit() or not 1900 < int(year) < 3000:
            raise ValidationError({"year": ["a four-digit year is required"]})
        response = HttpResponse(form_8949_csv(portfolio=portfolio, year=int(year)), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="form-8949-{portfolio.pk}-{year}.csv"'
        return response
