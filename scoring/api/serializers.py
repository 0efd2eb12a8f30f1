"""Validation of the analytics query parameters."""

from __future__ import annotations

from rest_framework import serializers

from scoring.analytics import MAX_DAYS


class DaysSerializer(serializers.Serializer):
    days = serializers.IntegerField(min_value=1, max_value=MAX_DAYS, default=90, required=False)
