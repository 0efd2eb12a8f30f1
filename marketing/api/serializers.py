"""Input and output serializers of the marketing API."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from crm.models import Club
from crm.registry import campaign_channels
from customers.models import CHANNELS
from marketing.models import (
    Campaign,
    MessageTemplate,
    RefreshFrequency,
    Segment,
    SegmentChange,
    SegmentType,
)
from marketing.segments import SLOW_REFRESH_MS
from marketing.templating import template_validate


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
            "created_by",
            "created_by_label",
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
            "created_by",
            "created_by_label",
            "created_at",
            "updated_at",
        ]
        extra_kwargs: dict = {"name": {"validators": []}}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        tenant = self.context.get("tenant")
        if tenant is not None:
            self.fields["club_id"].queryset = Club.objects.for_tenant(tenant)

    def get_slow_refresh(self, segment: Segment) -> bool:
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


# ----------------------------------------------------------------------------- campaigns


class TemplateSerializer(serializers.ModelSerializer):
    club_id = serializers.PrimaryKeyRelatedField(
        source="club", queryset=Club.objects.none(), required=False, allow_null=True
    )

    class Meta:
        model = MessageTemplate
        fields = [
            "id",
            "name",
            "channel",
            "subject",
            "html_body",
            "text_body",
            "body",
            "club_id",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]
        extra_kwargs: dict = {"name": {"validators": []}}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        tenant = self.context.get("tenant")
        if tenant is not None:
            self.fields["club_id"].queryset = Club.objects.for_tenant(tenant)

    def validate(self, attrs):
        merged = {
            name: attrs.get(name, getattr(self.instance, name, "") if self.instance else "")
            for name in ("channel", "subject", "html_body", "text_body", "body")
        }
        try:
            template_validate(**merged)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc
        tenant = self.context["tenant"]
        clash = MessageTemplate.objects.for_tenant(tenant).filter(
            name=attrs.get("name", getattr(self.instance, "name", None))
        )
        if self.instance is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise serializers.ValidationError({"name": ["A template with this name exists."]})
        return attrs


class PreviewRequestSerializer(serializers.Serializer):
    customer_id = serializers.UUIDField(required=False)


class RenderedSerializer(serializers.Serializer):
    subject = serializers.CharField()
    html = serializers.CharField()
    text = serializers.CharField()
    body = serializers.CharField()


class CampaignSerializer(serializers.ModelSerializer):
    club_id = serializers.PrimaryKeyRelatedField(
        source="club", queryset=Club.objects.none(), required=False, allow_null=True
    )
    segment_id = serializers.PrimaryKeyRelatedField(
        source="segment", queryset=Segment.objects.none(), required=False, allow_null=True
    )
    email_template_id = serializers.PrimaryKeyRelatedField(
        source="email_template",
        queryset=MessageTemplate.objects.none(),
        required=False,
        allow_null=True,
    )
    sms_template_id = serializers.PrimaryKeyRelatedField(
        source="sms_template",
        queryset=MessageTemplate.objects.none(),
        required=False,
        allow_null=True,
    )
    push_template_id = serializers.PrimaryKeyRelatedField(
        source="push_template",
        queryset=MessageTemplate.objects.none(),
        required=False,
        allow_null=True,
    )
    whatsapp_template_id = serializers.PrimaryKeyRelatedField(
        source="whatsapp_template",
        queryset=MessageTemplate.objects.none(),
        required=False,
        allow_null=True,
    )
    channels = serializers.ListField(
        # Message channels, and those other apps register ("social"): see __init__.
        child=serializers.ChoiceField(choices=CHANNELS),
        required=False,
    )
    ab_test = serializers.JSONField(required=False)

    class Meta:
        model = Campaign
        fields = [
            "id",
            "name",
            "description",
            "club_id",
            "type",
            "cron",
            "timezone",
            "status",
            "segment_id",
            "channels",
            "email_template_id",
            "sms_template_id",
            "push_template_id",
            "whatsapp_template_id",
            "scheduled_at",
            "next_run_at",
            "ab_test",
            "social_text",
            "social_link",
            "ab_winner",
            "target_count",
            "last_run_at",
            "failure",
            "created_by",
            "created_by_label",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "failure",
            "id",
            "status",
            "next_run_at",
            "ab_winner",
            "target_count",
            "last_run_at",
            "created_by",
            "created_by_label",
            "created_at",
            "updated_at",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["channels"].child.choices = [*CHANNELS, *campaign_channels()]
        tenant = self.context.get("tenant")
        if tenant is not None:
            self.fields["club_id"].queryset = Club.objects.for_tenant(tenant)
            self.fields["segment_id"].queryset = Segment.objects.for_tenant(tenant)
            for channel in CHANNELS:
                self.fields[f"{channel}_template_id"].queryset = MessageTemplate.objects.for_tenant(
                    tenant
                )


class SendTestSerializer(serializers.Serializer):
    to = serializers.ListField(
        child=serializers.CharField(max_length=254),
        min_length=1,
        max_length=10,
        help_text="Email addresses and/or phone numbers.",
    )


class WinnerSerializer(serializers.Serializer):
    variant = serializers.ChoiceField(choices=["A", "B", "C", "D"])
