from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from crm.models import Club, Tenant, validate_timezone


class TenantSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tenant
        fields = ["id", "slug", "name", "region", "timezone", "default_phone_region", "currency"]
        read_only_fields = fields


class ClubSerializer(serializers.ModelSerializer):
    timezone = serializers.CharField(required=False, max_length=64)

    class Meta:
        model = Club
        fields = ["id", "name", "timezone", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]

    def validate_timezone(self, value: str) -> str:
        try:
            validate_timezone(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages[0]) from exc
        return value

    def validate_name(self, value: str) -> str:
        tenant = self.context["tenant"]
        clash = Club.objects.for_tenant(tenant).filter(name__iexact=value)
        if self.instance is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise serializers.ValidationError("A club with this name already exists.")
        return value
