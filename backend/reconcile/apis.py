"""The breaks API: a portfolio's reconcile breaks, filterable and paginated."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from backend.sync.apis import BAD_FILTER, PaginatedApi
from backend.sync.filters import openapi_parameters

from .selectors import BreakFilter, breaks_for_portfolio, portfolio_get
from .serializers import BreakOutputSerializer


class BreakListApi(PaginatedApi):
    @extend_schema(operation_id="portfolios_breaks_list", parameters=openapi_parameters(BreakFilter),
                   responses={200: BreakOutputSerializer(many=True), **BAD_FILTER})
    def get(self, request: Request, portfolio_id: int) -> Response:
        """Where a portfolio's synced history fails to add up to what its brokers report: one
        typed break per connection and asset (or currency of cash), open ones first. A later
        sync that no longer finds a break resolves it (resolved_at)."""
        portfolio = portfolio_get(user=request.user, portfolio_id=portfolio_id)
        breaks = breaks_for_portfolio(portfolio=portfolio, filters=request.query_params)
        return self.paginated(request, breaks, BreakOutputSerializer)
