"""Views of the journeys API: validate the shape, call one service, serialize. Journeys
are marketing: ``marketing:read`` to read (and to validate), ``marketing:write`` to change,
act and enroll."""

from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from automation.analytics import journey_analytics
from automation.journeys import (
    journey_activate,
    journey_archive,
    journey_create,
    journey_pause,
    journey_resume,
    journey_steps_save,
    journey_update,
    journey_validate,
)
from automation.models import Enrollment, Journey
from automation.triggers import (
    journey_enroll_csv,
    journey_enroll_customers,
    journey_enroll_segment,
)
from crm.api.pagination import CreatedCursorPagination
from crm.api.views import TenantScopedAPIMixin
from crm.scopes import MARKETING_READ, MARKETING_WRITE
from marketing.models import Segment
from marketing.segments import csv_upload_text

from .serializers import (
    EnrollBodySerializer,
    EnrollmentSerializer,
    JourneySerializer,
    StepsSerializer,
)


def _settings(data: dict) -> dict:
    clean = {k: v for k, v in data.items() if k != "steps"}
    if "club_id" in clean:
        clean["club_id"] = str(clean["club_id"]) if clean["club_id"] else None
    return clean


class JourneyViewSet(
    TenantScopedAPIMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Journeys of the caller's tenant, their steps, state changes, enrollment, figures."""

    queryset = Journey.objects.select_related("tenant", "current_version")
    required_scopes = {"read": MARKETING_READ, "write": MARKETING_WRITE, "validate": MARKETING_READ}
    serializer_class = JourneySerializer
    pagination_class = CreatedCursorPagination
    http_method_names = ["get", "post", "patch", "put", "head", "options"]
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def perform_create(self, serializer) -> None:
        data = serializer.validated_data
        serializer.instance = journey_create(
            tenant=self.tenant, data=_settings(data), steps=data.get("steps")
        )

    def perform_update(self, serializer) -> None:
        data = serializer.validated_data
        with transaction.atomic():
            journey = journey_update(journey=serializer.instance, data=_settings(data))
            if "steps" in data:
                journey_steps_save(journey=journey, steps=data["steps"])
        serializer.instance = Journey.objects.select_related("current_version").get(pk=journey.pk)

    def update(self, request, *args, **kwargs):
        if request.method == "PUT":
            return Response(status=status.HTTP_405_METHOD_NOT_ALLOWED)
        return super().update(request, *args, **kwargs)

    def _answer(self, journey: Journey) -> Response:
        journey = Journey.objects.select_related("current_version").get(pk=journey.pk)
        return Response(JourneySerializer(journey, context=self.get_serializer_context()).data)

    @extend_schema(request=StepsSerializer, responses=JourneySerializer)
    @action(detail=True, methods=["put"])
    def steps(self, request, pk=None):
        """Replace the step graph (a new version when people are on the current one)."""
        journey = self.get_object()
        body = StepsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        journey_steps_save(journey=journey, steps=body.validated_data["steps"])
        return self._answer(journey)

    @extend_schema(request=None, responses=OpenApiResponse(description='{"valid": true}'))
    @action(detail=True, methods=["post"])
    def validate(self, request, pk=None):
        """What activation checks, without activating: 400 with errors keyed by step."""
        journey_validate(journey=self.get_object())
        return Response({"valid": True})

    @extend_schema(request=None, responses=JourneySerializer)
    @action(detail=True, methods=["post"])
    def activate(self, request, pk=None):
        return self._answer(journey_activate(journey=self.get_object()))

    @extend_schema(request=None, responses=JourneySerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        return self._answer(journey_pause(journey=self.get_object()))

    @extend_schema(request=None, responses=JourneySerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return self._answer(journey_resume(journey=self.get_object()))

    @extend_schema(request=None, responses=JourneySerializer)
    @action(detail=True, methods=["post"])
    def archive(self, request, pk=None):
        return self._answer(journey_archive(journey=self.get_object()))

    @extend_schema(request=EnrollBodySerializer, responses=OpenApiResponse(description="Counts"))
    @action(detail=True, methods=["post"])
    def enroll(self, request, pk=None):
        """Enroll one person, several, a segment's members, or a CSV (id/email/phone)."""
        journey = self.get_object()
        body = EnrollBodySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if "file" in data:
            text = csv_upload_text(data["file"])
            return Response(journey_enroll_csv(journey=journey, text=text))
        if "segment_id" in data:
            segment = Segment.objects.for_tenant(self.tenant).filter(pk=data["segment_id"]).first()
            if segment is None:
                raise DjangoValidationError({"segment_id": ["No such segment."]})
            return Response({"entered": journey_enroll_segment(journey=journey, segment=segment)})
        ids = data.get("customer_ids") or [data["customer_id"]]
        return Response({"entered": journey_enroll_customers(journey=journey, customer_ids=ids)})

    @extend_schema(responses=EnrollmentSerializer(many=True))
    @action(detail=True, methods=["get"])
    def enrollments(self, request, pk=None):
        """People in the journey with their step trail (``status=ACTIVE|...``)."""
        journey = self.get_object()
        rows = _enrollments(self.tenant, request).filter(journey=journey)
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(EnrollmentSerializer(page, many=True).data)

    @extend_schema(responses=OpenApiResponse(description="Figures per journey and step"))
    @action(detail=True, methods=["get"])
    def analytics(self, request, pk=None):
        return Response(journey_analytics(journey=self.get_object()))


def _enrollments(tenant, request):
    rows = Enrollment.objects.for_tenant(tenant).select_related("version").prefetch_related("trail")
    wanted = request.query_params.get("status")
    if wanted:
        if wanted not in {"ACTIVE", "COMPLETED", "EXITED", "CONVERTED", "FAILED"}:
            raise ValidationError({"status": ["ACTIVE, COMPLETED, EXITED, CONVERTED or FAILED."]})
        rows = rows.filter(status=wanted)
    return rows


class EnrollmentViewSet(TenantScopedAPIMixin, viewsets.ReadOnlyModelViewSet):
    """Enrollments of the tenant (``customer=<id>``: one person's), with their trail."""

    queryset = Enrollment.objects.select_related("version").prefetch_related("trail")
    required_scopes = {"read": MARKETING_READ, "write": MARKETING_WRITE}
    serializer_class = EnrollmentSerializer
    pagination_class = CreatedCursorPagination

    def get_queryset(self):
        rows = _enrollments(self.tenant, self.request)
        customer = self.request.query_params.get("customer")
        if customer:
            try:
                rows = rows.filter(customer_id=uuid.UUID(customer))
            except ValueError as exc:
                raise ValidationError({"customer": ["A customer id."]}) from exc
        return rows
