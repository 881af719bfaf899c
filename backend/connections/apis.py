"""Connection APIs: one class per operation, each validate -> service/selector -> serialise.

REST puts several operations on one path (GET and POST /connections/), so the classes
at the bottom combine operation classes into the view a URL routes to. Operations that
share a path never both define a nested serializer, so nothing is shadowed.
"""
from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.brokers.dtos import Credentials
from backend.portfolio.services import connection_move
from backend.sync.serializers import SyncRunOutputSerializer

from .selectors import broker_list, connection_get, connection_list
from .serializers import (
    MIN_INTERVAL_SECONDS, ConnectionOutputSerializer, CredentialsInputMixin, ErrorOutputSerializer,
    OwnedPortfolioField, StreamSwitchesMixin, credentials_from, interval_from, streams_from,
)
from .services import connection_create, connection_delete, connection_disconnect, connection_sync, connection_update

MAX_INTERVAL_SECONDS = 31 * 24 * 3600
ERRORS = {400: ErrorOutputSerializer, 404: ErrorOutputSerializer}
BROKER_ERRORS = {**ERRORS, 502: ErrorOutputSerializer,
                 503: OpenApiResponse(ErrorOutputSerializer, description="The broker could not be reached or is "
                                      "rate limiting us; nothing was stored.")}


def interval_field() -> serializers.IntegerField:
    return serializers.IntegerField(required=False, min_value=MIN_INTERVAL_SECONDS, max_value=MAX_INTERVAL_SECONDS,
                                    help_text="Seconds between scheduled syncs.")


class BrokerListApi(APIView):
    @extend_schema_serializer(component_name="Broker")
    class OutputSerializer(serializers.Serializer):
        class CredentialFieldSerializer(serializers.Serializer):
            name = serializers.CharField()
            label = serializers.CharField()
            secret = serializers.BooleanField()
            help_text = serializers.CharField()
            multiline = serializers.BooleanField(help_text="Line breaks belong in it (a PEM key).")

        key = serializers.CharField()
        name = serializers.CharField()
        environments = serializers.ListField(child=serializers.CharField())
        capabilities = serializers.ListField(child=serializers.CharField())
        credential_fields = CredentialFieldSerializer(many=True)
        rate_limit = serializers.CharField()

    @extend_schema(operation_id="brokers_list", responses=OutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        """The supported brokers: environments, capabilities and the credential fields each needs."""
        return Response(self.OutputSerializer(broker_list(), many=True).data)


class ConnectionListApi(APIView):
    @extend_schema(operation_id="connections_list", responses=ConnectionOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        """Your connections."""
        return Response(ConnectionOutputSerializer(connection_list(user=request.user), many=True).data)


class ConnectionCreateApi(APIView):
    @extend_schema_serializer(component_name="ConnectionCreate")
    class InputSerializer(CredentialsInputMixin, StreamSwitchesMixin):
        """A broker account to connect, with the credential fields GET /brokers/ lists for its broker."""

        broker = serializers.CharField(max_length=32)
        environment = serializers.CharField(max_length=16)
        label = serializers.CharField(max_length=128, required=False, allow_blank=True, default="")
        portfolio = OwnedPortfolioField(required=False, allow_null=True,
                                        help_text="One of your portfolios; default: one named after the label.")
        sync_interval = interval_field()

    @extend_schema(operation_id="connections_create", request=InputSerializer,
                   responses={201: ConnectionOutputSerializer, **BROKER_ERRORS})
    def post(self, request: Request) -> Response:
        """Connect a broker account with its API keys. The keys are checked with the broker first;
        nothing is stored unless it accepts them. The first sync is queued at once."""
        serializer = self.InputSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        connection = connection_create(
            owner=request.user, broker=data["broker"], environment=data["environment"], label=data["label"],
            credentials=credentials_from(data) or Credentials(), portfolio=data.get("portfolio"),
            sync_interval=interval_from(data), streams=streams_from(data))
        return Response(ConnectionOutputSerializer(connection).data, status=status.HTTP_201_CREATED)


class ConnectionDetailApi(APIView):
    @extend_schema(operation_id="connections_retrieve", responses={200: ConnectionOutputSerializer, **ERRORS})
    def get(self, request: Request, connection_id: int) -> Response:
        """One of your connections."""
        connection = connection_get(user=request.user, connection_id=connection_id)
        return Response(ConnectionOutputSerializer(connection).data)


class ConnectionUpdateApi(APIView):
    @extend_schema_serializer(component_name="ConnectionUpdate")
    class InputSerializer(CredentialsInputMixin, StreamSwitchesMixin):
        """What to change; send the credential fields only to replace the keys (all of them)."""

        label = serializers.CharField(max_length=128, required=False, allow_blank=True)
        sync_interval = interval_field()
        portfolio = OwnedPortfolioField(required=False, help_text="Move it (with everything synced from it) to "
                                                                  "another of your portfolios.")

    @extend_schema(operation_id="connections_partial_update", request=InputSerializer,
                   responses={200: ConnectionOutputSerializer, **BROKER_ERRORS})
    def patch(self, request: Request, connection_id: int) -> Response:
        """Change the label, interval or streams, replace the keys (checked like on create; they
        must reach the same broker account, and they revive an expired or revoked connection),
        or move it to another of your portfolios (its rows follow; both histories are rebuilt)."""
        connection = connection_get(user=request.user, connection_id=connection_id)
        serializer = self.InputSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        connection = connection_update(
            connection=connection, label=data.get("label"), sync_interval=interval_from(data),
            streams=streams_from(data), credentials=credentials_from(data))
        if data.get("portfolio") is not None:
            connection = connection_move(connection=connection, portfolio=data["portfolio"])
        return Response(ConnectionOutputSerializer(connection).data)


class ConnectionDeleteApi(APIView):
    @extend_schema(operation_id="connections_destroy", responses={204: None, 404: ErrorOutputSerializer})
    def delete(self, request: Request, connection_id: int) -> Response:
        """Delete the connection and everything synced from it."""
        connection_delete(connection=connection_get(user=request.user, connection_id=connection_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ConnectionSyncApi(APIView):
    throttle_scopes = {"POST": "sync"}

    @extend_schema_serializer(component_name="SyncRunRequested")
    class OutputSerializer(SyncRunOutputSerializer):
        created = serializers.SerializerMethodField(
            help_text="False when a run was already queued or running: this is that run.")

        class Meta(SyncRunOutputSerializer.Meta):
            fields = [*SyncRunOutputSerializer.Meta.fields, "created"]

        def get_created(self, run) -> bool:
            return self.context["created"]

    @extend_schema(operation_id="connections_sync", request=None,
                   responses={202: OutputSerializer, 404: ErrorOutputSerializer,
                              409: OpenApiResponse(ErrorOutputSerializer, description="The keys were rejected or "
                                                   "revoked: update them first.")})
    def post(self, request: Request, connection_id: int) -> Response:
        """Sync now. If a run is already queued or running, that run is returned (created: false)."""
        connection = connection_get(user=request.user, connection_id=connection_id)
        run, created = connection_sync(connection=connection)
        data = self.OutputSerializer(run, context={"created": created}).data
        return Response(data, status=status.HTTP_202_ACCEPTED)


class ConnectionDisconnectApi(APIView):
    @extend_schema(operation_id="connections_disconnect", request=None,
                   responses={200: ConnectionOutputSerializer, 404: ErrorOutputSerializer})
    def post(self, request: Request, connection_id: int) -> Response:
        """Forget the keys and stop syncing. The synced data is kept; new keys (PATCH) resume it."""
        connection = connection_disconnect(connection=connection_get(user=request.user, connection_id=connection_id))
        return Response(ConnectionOutputSerializer(connection).data)


# -- what the URLs route to -------------------------------------------------------------
# Connecting checks keys with brokers whose budgets every user shares: throttled per user and
# per IP (settings.API_THROTTLE_RATES, backend/core/throttling.py), as is asking for syncs.
class ConnectionCollectionApi(ConnectionListApi, ConnectionCreateApi):
    """GET: list your connections. POST: connect a broker account with its API keys."""

    throttle_scopes = {"POST": "connect"}


class ConnectionItemApi(ConnectionDetailApi, ConnectionUpdateApi, ConnectionDeleteApi):
    """GET, PATCH, DELETE one of your connections."""

    throttle_scopes = {"PATCH": "connect"}
