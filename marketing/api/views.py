"""Views of the marketing API, built on crm.api.views.TenantScopedAPIMixin."""

from __future__ import annotations

from django.db.models import ProtectedError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from crm import rules
from crm.api.pagination import CreatedCursorPagination
from crm.api.parsers import JSONParser
from crm.api.views import TenantScopedAPIMixin
from crm.scopes import MARKETING_READ, MARKETING_WRITE
from customers.models import CustomerProfile
from marketing.campaigns import (
    CampaignConflict,
    campaign_cancel,
    campaign_create,
    campaign_delete,
    campaign_pause,
    campaign_resume,
    campaign_schedule,
    campaign_send_test,
    campaign_stats,
    campaign_update,
)
from marketing.models import (
    Campaign,
    CampaignRun,
    MessageTemplate,
    RunStatus,
    Segment,
    SegmentChange,
    SegmentMembership,
)
from marketing.segments import (
    SegmentConflict,
    segment_create,
    segment_import_upload,
    segment_members_add,
    segment_members_remove,
    segment_preview,
    segment_refresh,
    segment_update,
)
from marketing.sending import ab_decide
from marketing.templating import render, sample_context

from .serializers import (
    CampaignSerializer,
    CriteriaSerializer,
    CustomerIdsSerializer,
    ImportResultSerializer,
    ImportSerializer,
    MembershipSerializer,
    PreviewRequestSerializer,
    PreviewSerializer,
    RefreshResultSerializer,
    RenderedSerializer,
    SegmentChangeSerializer,
    SegmentSerializer,
    SendTestSerializer,
    TemplateSerializer,
    WinnerSerializer,
)


class SegmentViewSet(TenantScopedAPIMixin, viewsets.ModelViewSet):
    """Segments of the caller's tenant: dynamic (rules) or static (chosen people)."""

    queryset = Segment.objects.all()
    serializer_class = SegmentSerializer
    required_scopes = {"read": MARKETING_READ, "write": MARKETING_WRITE, "preview": MARKETING_READ}
    pagination_class = CreatedCursorPagination
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def perform_create(self, serializer) -> None:
        serializer.instance = segment_create(
            tenant=self.tenant, data=serializer.validated_data, actor=self.request.user
        )

    def perform_update(self, serializer) -> None:
        serializer.instance = segment_update(
            segment=serializer.instance, data=serializer.validated_data
        )

    def perform_destroy(self, instance) -> None:
        try:
            instance.delete()
        except ProtectedError as exc:
            raise SegmentConflict("Campaigns send to this segment; remove them first.") from exc

    @extend_schema(responses=OpenApiResponse(description="Fields, types, operators, choices"))
    @action(detail=False, methods=["get"], pagination_class=None)
    def fields(self, request):
        """The fields rules may use, with their operators (for editors)."""
        return Response(rules.registry("customer").describe())

    @extend_schema(request=CriteriaSerializer, responses=PreviewSerializer)
    @action(detail=False, methods=["post"])
    def preview(self, request):
        """How many customers criteria choose, and a few of them; nothing is saved."""
        body = CriteriaSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        preview = segment_preview(tenant=self.tenant, criteria=body.validated_data["criteria"])
        return Response(PreviewSerializer(preview).data)

    @extend_schema(
        request=None,
        responses={200: RefreshResultSerializer, 409: OpenApiResponse(description="Running")},
    )
    @action(detail=True, methods=["post"])
    def refresh(self, request, pk=None):
        """Refresh now (set-wise: only who entered or left changes)."""
        result = segment_refresh(segment=self.get_object())
        if result is None:
            raise SegmentConflict("A refresh of this segment is running; try again shortly.")
        return Response(RefreshResultSerializer(result).data)

    @extend_schema(responses=MembershipSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=CreatedCursorPagination)
    def members(self, request, pk=None):
        segment = self.get_object()
        rows = SegmentMembership.objects.filter(tenant=self.tenant, segment=segment).select_related(
            "customer"
        )
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(MembershipSerializer(page, many=True).data)

    @extend_schema(responses=SegmentChangeSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=CreatedCursorPagination)
    def changes(self, request, pk=None):
        """Who entered or left, newest first (``kind=ENTERED|LEFT``)."""
        segment = self.get_object()
        rows = SegmentChange.objects.filter(tenant=self.tenant, segment=segment)
        kind = request.query_params.get("kind")
        if kind:
            if kind not in ("ENTERED", "LEFT"):
                raise ValidationError({"kind": ["Use ENTERED or LEFT."]})
            rows = rows.filter(kind=kind)
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(SegmentChangeSerializer(page, many=True).data)

    def _ids(self, request) -> list:
        body = CustomerIdsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return body.validated_data["customer_ids"]

    @extend_schema(request=CustomerIdsSerializer, responses={200: OpenApiResponse()})
    @action(detail=True, methods=["post"], url_path="add-members")
    def add_members(self, request, pk=None):
        """Static segments: add customers by id."""
        segment = self.get_object()
        added = segment_members_add(segment=segment, customer_ids=self._ids(request))
        return Response({"added": added, "member_count": segment.member_count})

    @extend_schema(request=CustomerIdsSerializer, responses={200: OpenApiResponse()})
    @action(detail=True, methods=["post"], url_path="remove-members")
    def remove_members(self, request, pk=None):
        """Static segments: remove customers by id."""
        segment = self.get_object()
        removed = segment_members_remove(segment=segment, customer_ids=self._ids(request))
        return Response({"removed": removed, "member_count": segment.member_count})

    @extend_schema(
        request={"multipart/form-data": ImportSerializer}, responses=ImportResultSerializer
    )
    @action(detail=True, methods=["post"], url_path="import")
    def import_csv(self, request, pk=None):
        """Static segments: add the people of a CSV (by id, email or phone); the rows that
        match nobody come back as ``error_csv``."""
        segment = self.get_object()
        body = ImportSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        result = segment_import_upload(segment=segment, upload=body.validated_data["file"])
        return Response(ImportResultSerializer(result).data, status=status.HTTP_200_OK)


# ----------------------------------------------------------------------------- templates


class TemplateViewSet(TenantScopedAPIMixin, viewsets.ModelViewSet):
    """Message templates (local messaging backend)."""

    queryset = MessageTemplate.objects.all()
    serializer_class = TemplateSerializer
    required_scopes = {"read": MARKETING_READ, "write": MARKETING_WRITE, "preview": MARKETING_READ}
    pagination_class = CreatedCursorPagination
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    @extend_schema(request=PreviewRequestSerializer, responses=RenderedSerializer)
    @action(detail=True, methods=["post"])
    def preview(self, request, pk=None):
        """Render for a customer of yours (``customer_id``) or for placeholder values."""
        template = self.get_object()
        body = PreviewRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        customer = None
        if body.validated_data.get("customer_id"):
            customer = get_object_or_404(
                CustomerProfile.objects.for_tenant(self.tenant),
                pk=body.validated_data["customer_id"],
            )
        context = sample_context(self.tenant, template.club.name if template.club else "", customer)
        return Response(vars(render(template, context)))

    def perform_destroy(self, instance) -> None:
        try:
            instance.delete()
        except ProtectedError as exc:
            raise CampaignConflict("Campaigns use this template.") from exc


# ----------------------------------------------------------------------------- campaigns


class CampaignViewSet(TenantScopedAPIMixin, viewsets.ModelViewSet):
    """Campaigns: create as drafts, then schedule, pause, resume, cancel."""

    queryset = Campaign.objects.all()
    serializer_class = CampaignSerializer
    required_scopes = {"read": MARKETING_READ, "write": MARKETING_WRITE}
    pagination_class = CreatedCursorPagination
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    filterset_fields = ["status"]

    def perform_create(self, serializer) -> None:
        serializer.instance = campaign_create(
            tenant=self.tenant, data=serializer.validated_data, actor=self.request.user
        )

    def perform_update(self, serializer) -> None:
        serializer.instance = campaign_update(
            campaign=serializer.instance, data=serializer.validated_data
        )

    def perform_destroy(self, instance) -> None:
        campaign_delete(campaign=instance)

    def _change(self, service):
        campaign = service(campaign=self.get_object())
        return Response(CampaignSerializer(campaign, context=self.get_serializer_context()).data)

    @extend_schema(request=None, responses=CampaignSerializer)
    @action(detail=True, methods=["post"])
    def schedule(self, request, pk=None):
        return self._change(campaign_schedule)

    @extend_schema(request=None, responses=CampaignSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        return self._change(campaign_pause)

    @extend_schema(request=None, responses=CampaignSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return self._change(campaign_resume)

    @extend_schema(request=None, responses=CampaignSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._change(campaign_cancel)

    @extend_schema(responses=OpenApiResponse(description="Funnel, skip reasons, variants"))
    @action(detail=True, methods=["get"])
    def stats(self, request, pk=None):
        return Response(campaign_stats(campaign=self.get_object()))

    @extend_schema(request=SendTestSerializer, responses=OpenApiResponse())
    @action(detail=True, methods=["post"], url_path="send-test")
    def send_test(self, request, pk=None):
        """Send the campaign's messages, with placeholder values, to the given addresses."""
        campaign = self.get_object()
        body = SendTestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        sent = campaign_send_test(campaign=campaign, to=body.validated_data["to"])
        return Response({"sent": sent})

    @extend_schema(request=WinnerSerializer, responses=OpenApiResponse())
    @action(detail=True, methods=["post"], url_path="ab-winner")
    def ab_winner(self, request, pk=None):
        """Choose the A/B winner now (overrides the automatic choice)."""
        campaign = self.get_object()
        body = WinnerSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        run = CampaignRun.objects.filter(campaign=campaign, status=RunStatus.TESTING).first()
        if run is None:
            raise CampaignConflict("No A/B test of this campaign is waiting for a winner.")
        return Response({"winner": ab_decide(run=run, winner=body.validated_data["variant"])})
