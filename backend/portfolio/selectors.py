"""Reads on portfolios, always scoped to their owner: another user's portfolio is a 404."""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from backend.core.exceptions import ApplicationError

from .models import Portfolio


def portfolio_list(*, user: AbstractBaseUser) -> QuerySet[Portfolio]:
    return (Portfolio.objects.filter(owner=user).select_related("latest_value").prefetch_related("connections")
            .order_by("id"))


def portfolio_get(*, user: AbstractBaseUser, portfolio_id: int) -> Portfolio:
    return get_object_or_404(portfolio_list(user=user), pk=portfolio_id)


def portfolio_connection_id(*, portfolio: Portfolio, connection_id: int | None) -> int | None:
    """A `connection=` filter: one of this portfolio's connections, or a 400 naming it."""
    if connection_id is None:
        return None
    if not portfolio.connections.filter(pk=connection_id).exists():
        raise ApplicationError("Invalid input.", fields={
            "connection": [f"Connection {connection_id} does not feed this portfolio."]})
    return connection_id
