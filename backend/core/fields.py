"""Field types every app shares."""
from decimal import Decimal

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from rest_framework import serializers
from rest_framework.utils import html

# Crypto needs 18 places (ETH wei); 38 digits leave 20 for the integer part.
MONEY_DIGITS = 38
MONEY_PLACES = 18


def decimal_field(**kw) -> models.DecimalField:
    return models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, **kw)


def raw_json_field(**kw) -> models.JSONField:
    """The broker's raw record. Decimals (we parse JSON numbers as Decimal) are stored as strings."""
    return models.JSONField(encoder=DjangoJSONEncoder, default=dict, blank=True, **kw)


ZERO = Decimal("0")


class StrictBooleanField(serializers.BooleanField):
    """true or false, nothing else: JSON booleans, or the words "true" / "false" in a form.
    DRF's BooleanField also takes 0, 1, "yes", "on"...: a client sending 0 for a switch has
    most likely sent something else than it meant, and the schema says boolean."""

    default_error_messages = {"invalid": "Must be true or false."}
    WORDS = {"true": True, "false": False}

    def to_internal_value(self, data):
        if isinstance(data, bool):
            return data
        if isinstance(data, str) and data in self.WORDS:
            return self.WORDS[data]
        self.fail("invalid", input=data)


class FormBlankIsValue:
    """In a form body DRF reads `field=` (an empty value) of an optional field as if the field
    were absent, so a blank choice or name would be silently replaced by the default or left
    unchanged. Here a field that is sent is validated as sent: blank is refused with the
    field's own message, as it is in JSON."""

    def get_value(self, dictionary):
        if html.is_html_input(dictionary) and self.field_name in dictionary:
            return dictionary.get(self.field_name)
        return super().get_value(dictionary)


class StrictChoiceField(FormBlankIsValue, serializers.ChoiceField):
    pass


class StrictCharField(FormBlankIsValue, serializers.CharField):
    pass
