"""Input and output serializers of the social API. Tokens are never serialized."""

from __future__ import annotations

from rest_framework import serializers

from crm.models import Club
from marketing.models import MessageTemplate, Segment
from social.models import Connection, Post, Promotion, PromotionReminder, Publication


class ConnectionSerializer(serializers.ModelSerializer):
    club_id = serializers.UUIDField(read_only=True)

    class Meta:
        model = Connection
        fields = [
            "id",
            "club_id",
            "platform",
            "account_id",
            "account_name",
            "account_type",
            "scopes",
            "status",
            "status_error",
            "token_expires_at",
            "last_used_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class PublicationSerializer(serializers.ModelSerializer):
    connection_id = serializers.UUIDField(read_only=True)
    post_id = serializers.UUIDField(read_only=True)
    platform = serializers.CharField(source="connection.platform", read_only=True)

    class Meta:
        model = Publication
        fields = [
            "id",
            "post_id",
            "connection_id",
            "platform",
            "status",
            "scheduled_at",
            "published_at",
            "platform_post_id",
            "platform_url",
            "error",
            "attempts",
        ]
        read_only_fields = fields


class PostSerializer(serializers.ModelSerializer):
    club_id = serializers.PrimaryKeyRelatedField(source="club", queryset=Club.objects.none())
    connection_ids = serializers.ListField(
        child=serializers.UUIDField(), write_only=True, allow_empty=False
    )
    media_urls = serializers.ListField(child=serializers.CharField(), required=False)
    hashtags = serializers.ListField(child=serializers.CharField(), required=False)
    publications = PublicationSerializer(many=True, read_only=True)
    promotion_id = serializers.UUIDField(read_only=True)

    class Meta:
        model = Post
        fields = [
            "id",
            "club_id",
            "content",
            "media_urls",
            "link",
            "hashtags",
            "connection_ids",
            "publications",
            "promotion_id",
            "created_by_label",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_by_label", "created_at", "updated_at"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        tenant = self.context.get("tenant")
        if tenant is not None:
            self.fields["club_id"].queryset = Club.objects.for_tenant(tenant)
        if self.instance is not None and not isinstance(self.instance, list):
            # The targets are chosen once, at creation.
            self.fields["club_id"].read_only = True
            self.fields["connection_ids"].required = False


class PostUpdateSerializer(PostSerializer):
    """PATCH: what the post says; the club and targets stay."""

    class Meta(PostSerializer.Meta):
        read_only_fields = [*PostSerializer.Meta.read_only_fields, "club_id"]


class ScheduleSerializer(serializers.Serializer):
    scheduled_at = serializers.DateTimeField(required=False, allow_null=True)


class ReminderSerializer(serializers.ModelSerializer):
    campaign_id = serializers.UUIDField(read_only=True)

    class Meta:
        model = PromotionReminder
        fields = ["days_before", "send_at", "status", "campaign_id"]
        read_only_fields = fields


class PromotionSerializer(serializers.ModelSerializer):
    club_id = serializers.UUIDField(read_only=True)
    campaign_id = serializers.UUIDField(read_only=True)
    segment_id = serializers.UUIDField(read_only=True)
    email_template_id = serializers.UUIDField(read_only=True)
    sms_template_id = serializers.UUIDField(read_only=True)
    cancel_campaign_id = serializers.UUIDField(read_only=True)
    reminders = ReminderSerializer(many=True, read_only=True)
    post_ids = serializers.SerializerMethodField()

    class Meta:
        model = Promotion
        fields = [
            "id",
            "club_id",
            "source_type",
            "source_id",
            "name",
            "starts_at",
            "url",
            "announce_at",
            "status",
            "campaign_id",
            "channels",
            "segment_id",
            "email_template_id",
            "sms_template_id",
            "social_text",
            "send_hour",
            "reminder_days",
            "cancel_campaign_id",
            "reminders",
            "post_ids",
            "created_at",
        ]
        read_only_fields = fields

    def get_post_ids(self, promotion: Promotion) -> list[str]:
        return [str(post.pk) for post in promotion.posts.all()]


class PromoteSerializer(serializers.Serializer):
    """Promote a competition by hand (the club need not auto-promote)."""

    competitionId = serializers.CharField(max_length=64)
    name = serializers.CharField(max_length=200)
    startsAt = serializers.DateTimeField()
    clubId = serializers.PrimaryKeyRelatedField(queryset=Club.objects.none())
    url = serializers.URLField(required=False, allow_blank=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        tenant = self.context.get("tenant")
        if tenant is not None:
            self.fields["clubId"].queryset = Club.objects.for_tenant(tenant)


class PromotionEditSerializer(serializers.Serializer):
    """PATCH of a promotion: only the fields sent change. Null channels, segment,
    templates or send hour mean "as the club's settings say"."""

    announce_at = serializers.DateTimeField(required=False)
    channels = serializers.ListField(
        child=serializers.ChoiceField(choices=["email", "sms", "social"]),
        required=False,
        allow_null=True,
        max_length=3,
    )
    segment = serializers.PrimaryKeyRelatedField(
        queryset=Segment.objects.none(), required=False, allow_null=True
    )
    email_template = serializers.PrimaryKeyRelatedField(
        queryset=MessageTemplate.objects.none(), required=False, allow_null=True
    )
    sms_template = serializers.PrimaryKeyRelatedField(
        queryset=MessageTemplate.objects.none(), required=False, allow_null=True
    )
    social_text = serializers.CharField(required=False, allow_blank=True, max_length=2200)
    send_hour = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=23)
    reminder_days = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=60),
        required=False,
        allow_null=True,
        max_length=10,
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        tenant = self.context.get("tenant")
        if tenant is not None:
            self.fields["segment"].queryset = Segment.objects.for_tenant(tenant)
            templates = MessageTemplate.objects.for_tenant(tenant)
            self.fields["email_template"].queryset = templates.filter(channel="email")
            self.fields["sms_template"].queryset = templates.filter(channel="sms")

    def validate_channels(self, value):
        if value is not None and len(set(value)) != len(value):
            raise serializers.ValidationError("A channel is named twice.")
        return value

    def validate_reminder_days(self, value):
        if value is not None and len(set(value)) != len(value):
            raise serializers.ValidationError("A day is named twice.")
        return value
