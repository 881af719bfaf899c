"""API tokens (django-rest-knox): only a SHA-512 digest of each token is stored, every token
expires (settings.REST_KNOX TOKEN_TTL), and a user may revoke one or all of theirs.

    Authorization: Token <token>
"""
from __future__ import annotations

import logging
from datetime import datetime

from django.contrib.auth import authenticate
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.signals import user_logged_in
from django.http import HttpRequest
from knox import auth as knox_auth
from knox.models import AuthToken
from rest_framework import exceptions

from .exceptions import ApplicationError

log = logging.getLogger("brokersync.auth")
LOGIN_FAILED = "Unable to log in with the given username and password."


class TokenAuthentication(knox_auth.TokenAuthentication):
    """knox's, but a header that is not UTF-8 is a 401 like any other bad token, not a 500."""

    def authenticate_credentials(self, token: bytes):
        try:
            token.decode("utf-8")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        return super().authenticate_credentials(token)


def token_login(*, username: str, password: str, request: HttpRequest | None = None) -> tuple[str, datetime | None]:
    """A new token for a user whose password is right: (token, expiry). The token is shown
    this once; only its digest is kept."""
    user = authenticate(request, username=username, password=password)
    if user is None or not user.is_active:
        log.info("auth.login_failed")
        raise ApplicationError(LOGIN_FAILED, fields={"non_field_errors": [LOGIN_FAILED]})
    instance, token = AuthToken.objects.create(user=user)
    user_logged_in.send(sender=user.__class__, request=request, user=user)
    log.info("auth.token_created user=%s", user.pk)
    return token, instance.expiry


def token_revoke(*, token: AuthToken) -> None:
    user_id = token.user_id
    token.delete()
    log.info("auth.token_revoked user=%s", user_id)


def token_revoke_all(*, user: AbstractBaseUser) -> int:
    revoked, _ = AuthToken.objects.filter(user=user).delete()
    log.info("auth.tokens_revoked user=%s count=%s", user.pk, revoked)
    return revoked
