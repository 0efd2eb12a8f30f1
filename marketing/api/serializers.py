"""Input and output serializers of the marketing API."""

from __future__ import annotations

from rest_framework import serializers

from crm.models import Club
from marketing.models import RefreshFrequency, Segment, SegmentChange, SegmentType


class SegmentSerializer(serializers.ModelSerializer):
    club_id = serializers.PrimaryKeyRelatedField(
        source="club", queryset=Club.objects.none(), required=False, allow_null=True
    )
    criteria = serializers.JSONField(required=False)
    type = serializers.ChoiceField(choices=SegmentType.choices, required=False)
    refresh_frequency = serializers.ChoiceField(choices=RefreshFrequency.choices, required=False)
    slow_refresh = serializers.SerializerMethodField()

    class Meta:
        model = Segment
        fields = [
            "id",
            "name",
            "description",
            "type",
            "criteria",
            "refresh_frequency",
            "club_id",
            "member_count",
            "last_refreshed_at",
            "last_refresh_ms",
            "slow_refresh",
            "next_refresh_at",
            "messaging_segment_id",
            "messaging_synced_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "id",
            "member_count",
            "last_refreshed_at",
            "last_refresh_ms",
            "next_refresh_at",
            "messaging_segment_id",
            "messaging_synced_at",
            "created_at",
            "updated_at",
        ]
        extra_kwargs = {"name": {"validators": []}}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        tenant = self.context.get("tenant")
        if tenant is not None:
            self.fields["club_id"].queryset = Club.objects.for_tenant(tenant)

    def get_slow_refresh(self, segment: Segment) -> bool:
        from marketing.segments import SLOW_REFRESH_MS

        return (segment.last_refresh_ms or 0) > SLOW_REFRESH_MS


class CriteriaSerializer(serializers.Serializer):
    criteria = serializers.JSONField()


class MemberSummarySerializer(serializers.Serializer):
    id = serializers.UUIDField()
    email = serializers.CharField(allow_null=True)
    phone = serializers.CharField(allow_null=True)
    first_name = serializers.CharField()
    last_name = serializers.CharField()
    lifecycle_stage = serializers.CharField()


class PreviewSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    sample = MemberSummarySerializer(many=True)


class RefreshResultSerializer(serializers.Serializer):
    members = serializers.IntegerField()
    entered = serializers.IntegerField()
    left = serializers.IntegerField()
    ms = serializers.IntegerField()


class MembershipSerializer(serializers.Serializer):
    customer = MemberSummarySerializer()
    since = serializers.DateTimeField(source="created_at")


class SegmentChangeSerializer(serializers.ModelSerializer):
    customer_id = serializers.UUIDField()
    at = serializers.DateTimeField(source="created_at")

    class Meta:
        model = SegmentChange
        fields = ["id", "customer_id", "kind", "at"]


class CustomerIdsSerializer(serializers.Serializer):
    customer_ids = serializers.ListField(
        child=serializers.UUIDField(), min_length=1, max_length=10_000
    )


class ImportSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="CSV with an id, email and/or phone column.")


class ImportResultSerializer(serializers.Serializer):
    rows = serializers.IntegerField()
    matched = serializers.IntegerField()
    added = serializers.IntegerField()
    unmatched = serializers.IntegerField()
    error_csv = serializers.CharField(help_text="The unmatched rows with an error column.")
