"""Log in (a new API token), revoke the token in use, revoke every token of the user."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_serializer
from knox.models import AuthToken
from rest_framework import serializers, status
from rest_framework.exceptions import NotAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .auth import TokenAuthentication, token_login, token_revoke, token_revoke_all
from .serializers import ErrorSerializer
from .throttling import IPThrottle, UsernameThrottle


class LoginApi(APIView):
    authentication_classes = ()
    permission_classes = ()
    throttle_classes = (UsernameThrottle, IPThrottle)
    throttle_scopes = {"POST": "login"}

    @extend_schema_serializer(component_name="Login")
    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        # Bounded: a megabyte-long password would make every guess cost a long hash.
        password = serializers.CharField(max_length=1024, trim_whitespace=False, style={"input_type": "password"})

    @extend_schema_serializer(component_name="Token")
    class OutputSerializer(serializers.Serializer):
        token = serializers.CharField(help_text="Send it as `Authorization: Token <token>`. Shown only once.")
        expiry = serializers.DateTimeField(allow_null=True, help_text="When the token stops working.")

    @extend_schema(operation_id="auth_token_create", request=InputSerializer, auth=[],
                   responses={200: OutputSerializer,
                              400: OpenApiResponse(ErrorSerializer, description="Missing fields, or a wrong "
                                                   "username or password.")})
    def post(self, request: Request) -> Response:
        """Log in: a new API token for this username and password. Attempts are throttled per
        username and per client IP (429 with Retry-After)."""
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token, expiry = token_login(request=request._request, **serializer.validated_data)
        return Response(self.OutputSerializer({"token": token, "expiry": expiry}).data)


class LogoutApi(APIView):
    authentication_classes = (TokenAuthentication,)

    @extend_schema(operation_id="auth_logout", request=None, responses={204: None, 401: ErrorSerializer})
    def post(self, request: Request) -> Response:
        """Revoke the token this request is made with."""
        if not isinstance(request.auth, AuthToken):
            raise NotAuthenticated()
        token_revoke(token=request.auth)
        return Response(status=status.HTTP_204_NO_CONTENT)


class LogoutAllApi(APIView):
    @extend_schema(operation_id="auth_logout_all", request=None, responses={204: None, 401: ErrorSerializer})
    def post(self, request: Request) -> Response:
        """Revoke every token of yours, this one included (log out everywhere)."""
        token_revoke_all(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
