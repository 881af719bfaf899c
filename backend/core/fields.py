"""Field types every app shares."""
from decimal import Decimal

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

# Crypto needs 18 places (ETH wei); 38 digits leave 20 for the integer part.
MONEY_DIGITS = 38
MONEY_PLACES = 18


def decimal_field(**kw) -> models.DecimalField:
    return models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, **kw)


def raw_json_field(**kw) -> models.JSONField:
    """The broker's raw record. Decimals (we parse JSON numbers as Decimal) are stored as strings."""
    return models.JSONField(encoder=DjangoJSONEncoder, default=dict, blank=True, **kw)


ZERO = Decimal("0")
