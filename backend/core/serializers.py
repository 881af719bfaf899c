"""Serializers every app's API shares."""
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    """The one error shape of the API (backend/core/api.py)."""

    message = serializers.CharField()
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()),
                                   help_text="Messages per input field; empty when the error is not about a field.")
