"""Serializers of the journeys API: shapes only; the services validate the content
(trigger, criteria, step graph) and answer with errors keyed by field or step."""

from __future__ import annotations

from rest_framework import serializers

from automation.journeys import version_steps
from automation.models import Enrollment, EnrollmentStep, Journey, Reentry


class StepSerializer(serializers.Serializer):
    key = serializers.CharField()
    type = serializers.CharField()
    name = serializers.CharField(required=False, allow_blank=True)
    config = serializers.JSONField(required=False)
    next = serializers.ListField(child=serializers.CharField(), required=False)


class JourneySerializer(serializers.ModelSerializer):
    club_id = serializers.UUIDField(required=False, allow_null=True)
    trigger = serializers.JSONField(required=False)
    entry_criteria = serializers.JSONField(required=False)
    goal = serializers.JSONField(required=False)
    exit_criteria = serializers.JSONField(required=False)
    reentry = serializers.ChoiceField(choices=Reentry.choices, required=False)
    steps = serializers.ListField(child=serializers.DictField(), required=False, write_only=True)
    version = serializers.SerializerMethodField()

    class Meta:
        model = Journey
        fields = [
            "id",
            "name",
            "description",
            "club_id",
            "status",
            "timezone",
            "trigger",
            "entry_criteria",
            "reentry",
            "reentry_days",
            "goal",
            "exit_criteria",
            "holdout_percent",
            "steps",
            "version",
            "activated_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "status", "activated_at", "created_at", "updated_at"]
        extra_kwargs = {"name": {"validators": []}}

    def get_version(self, journey: Journey) -> dict | None:
        version = journey.current_version
        if version is None:
            return None
        return {"number": version.number, "steps": version_steps(version)}


class StepsSerializer(serializers.Serializer):
    steps = serializers.ListField(child=serializers.DictField())


class EnrollBodySerializer(serializers.Serializer):
    """One of: ``customer_id``, ``customer_ids``, ``segment_id``, or a CSV ``file``."""

    customer_id = serializers.UUIDField(required=False)
    customer_ids = serializers.ListField(
        child=serializers.UUIDField(), required=False, max_length=10_000
    )
    segment_id = serializers.UUIDField(required=False)
    file = serializers.FileField(required=False)

    def validate(self, attrs):
        given = [k for k in ("customer_id", "customer_ids", "segment_id", "file") if k in attrs]
        if len(given) != 1:
            raise serializers.ValidationError(
                {"non_field_errors": ["Give one of customer_id, customer_ids, segment_id, file."]}
            )
        return attrs


class TrailSerializer(serializers.ModelSerializer):
    class Meta:
        model = EnrollmentStep
        fields = ["visit", "step_key", "entered_at", "left_at", "outcome"]


class EnrollmentSerializer(serializers.ModelSerializer):
    journey_id = serializers.UUIDField(read_only=True)
    customer_id = serializers.UUIDField(read_only=True)
    version = serializers.IntegerField(source="version.number", read_only=True)
    trail = TrailSerializer(many=True, read_only=True)

    class Meta:
        model = Enrollment
        fields = [
            "id",
            "journey_id",
            "customer_id",
            "version",
            "status",
            "step_key",
            "due_at",
            "holdout",
            "exit_reason",
            "error",
            "entered_at",
            "ended_at",
            "trail",
        ]
        read_only_fields = fields
