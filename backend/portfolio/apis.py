"""Portfolio APIs (list only for now)."""
from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .models import Portfolio


def portfolio_list(*, user) -> QuerySet[Portfolio]:
    # A selector; it moves to portfolio/selectors.py when that module exists.
    return Portfolio.objects.filter(owner=user).prefetch_related("connections").order_by("id")


class PortfolioListApi(APIView):
    @extend_schema_serializer(component_name="Portfolio")
    class OutputSerializer(serializers.ModelSerializer):
        connections = serializers.PrimaryKeyRelatedField(many=True, read_only=True,
                                                         help_text="Ids of the connections feeding it.")

        class Meta:
            model = Portfolio
            fields = ["id", "name", "base_currency", "connections", "created_at", "updated_at"]
            read_only_fields = fields

    @extend_schema(operation_id="portfolios_list", responses=OutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        """Your portfolios, with the ids of the connections that feed each one."""
        return Response(self.OutputSerializer(portfolio_list(user=request.user), many=True).data)
