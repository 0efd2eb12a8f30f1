"""Views of the customers API."""

from __future__ import annotations

import uuid

from django.db import transaction
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ParseError, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from crm.api.pagination import CreatedCursorPagination
from crm.api.views import TenantScopedAPIMixin
from crm.audit import AuditAction, audit_record, field_changes, request_ip
from crm.scopes import (
    CUSTOMERS_READ,
    CUSTOMERS_WRITE,
    EVENTS_WRITE,
    PRIVACY_ERASE,
    PRIVACY_EXPORT,
)
from customers.erasure import customer_erase
from customers.export import customer_export
from customers.ingest import MAX_EVENTS_PER_REQUEST, events_ingest
from customers.models import ConsentRecord, CustomerProfile, MergeSuggestion, Note
from customers.selectors import customer_list, customer_live, merge_suggestion_list
from customers.services import (
    identity_resolve,
    merge_suggestion_accept,
    merge_suggestion_dismiss,
    profile_merge,
    profile_update,
)
from customers.timeline import (
    Author,
    note_create,
    note_delete,
    note_list,
    note_update,
    note_visible,
    timeline_rows_of_live_customer,
)

from .filters import CustomerFilter
from .serializers import (
    TIMELINE_PAGE_SIZE,
    CustomerOutputSerializer,
    CustomerUpdateSerializer,
    EventBatchSerializer,
    HintsSerializer,
    IngestResultSerializer,
    MergeInputSerializer,
    MergeOutputSerializer,
    MergeSuggestionSerializer,
    NoteSerializer,
    NoteUpdateSerializer,
    ResolveOutputSerializer,
    TimelinePageSerializer,
    TimelineQuerySerializer,
    activity_rows_json,
    customer_json,
    customer_values_json,
    plain_hints,
)


def _actor(request) -> str:
    return str(request.user)


def _merge_response(merge) -> Response:
    return Response(
        MergeOutputSerializer(
            {
                "winner": merge.winner,
                "loser_id": merge.loser_id,
                "moved": merge.moved,
                "merge_id": merge.pk,
            }
        ).data
    )


class EraseInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=255, required=False, allow_blank=True)


class ConsentRecordSerializer(serializers.ModelSerializer):
    class Meta:
        model = ConsentRecord
        fields = ["id", "channel", "opt_in", "source", "occurred_at", "evidence", "created_at"]
        read_only_fields = fields


class ConsentHistoryMixin:
    @extend_schema(responses=ConsentRecordSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=CreatedCursorPagination)
    def consents(self, request, pk=None):
        """The consent decisions applied to this customer, newest first (append-only)."""
        customer = self.get_object()
        rows = ConsentRecord.objects.for_tenant(self.tenant).filter(customer=customer)
        channel = request.query_params.get("channel")
        if channel:
            rows = rows.filter(channel=channel)
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(ConsentRecordSerializer(page, many=True).data)


class CustomerViewSet(
    ConsentHistoryMixin,
    TenantScopedAPIMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Customer profiles of the caller's tenant."""

    queryset = CustomerProfile.objects.all()
    serializer_class = CustomerOutputSerializer
    filterset_class = CustomerFilter
    required_scopes = {
        "read": CUSTOMERS_READ,
        "write": CUSTOMERS_WRITE,
        "erase": PRIVACY_ERASE,
        "export": PRIVACY_EXPORT,
    }
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):
        if self.action == "list":
            return customer_list(tenant=self.tenant)
        return customer_live(tenant=self.tenant)

    def filter_queryset(self, queryset):
        # The list's filters (``?status=ERASED`` among them) select what a list shows; on a
        # detail route they must not widen what may be read or written.
        if self.action == "list":
            return super().filter_queryset(queryset)
        return queryset

    def _hints(self, data):
        # The common body (plain string hints) is parsed without building the serializer;
        # anything else, and every invalid body, goes through it (same checks, same errors).
        hints = plain_hints(data, phone_region=self.tenant.default_phone_region)
        if hints is not None:
            return hints
        serializer = HintsSerializer(data=data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data["hints"]

    def _resolution_response(self, resolution, status_code: int) -> Response:
        # ResolveOutputSerializer's output, built directly (the resolve hot path).
        # A known person comes as loaded columns, without a model instance.
        values = resolution.values
        body = {
            "profile": (
                customer_values_json(values)
                if values is not None
                else customer_json(resolution.profile)
            ),
            "is_new": bool(resolution.is_new),
            "matched_by": [str(name) for name in resolution.matched_by],
            "confidence": int(resolution.confidence),
            "merge_suggested_with": [str(pk) for pk in resolution.suggestions],
        }
        return Response(body, status=status_code)

    @extend_schema(
        request=HintsSerializer,
        responses={200: ResolveOutputSerializer, 201: ResolveOutputSerializer},
        summary="Resolve identity hints to a customer, creating one when nobody matches",
    )
    @action(detail=False, methods=["post"])
    def resolve(self, request):
        hints = self._hints(request.data)
        resolution = identity_resolve(tenant=self.tenant, hints=hints, source=_actor(request))
        code = status.HTTP_201_CREATED if resolution.is_new else status.HTTP_200_OK
        return self._resolution_response(resolution, code)

    @extend_schema(
        parameters=[HintsSerializer],
        responses={200: ResolveOutputSerializer, 404: OpenApiResponse(description="No match")},
        summary="Look a customer up by identity hints (never creates)",
    )
    @action(detail=False, methods=["get"])
    def lookup(self, request):
        data = {k: v for k, v in request.query_params.items() if not k.startswith("external_ids")}
        external = {
            key[len("external_ids[") : -1]: value
            for key, value in request.query_params.items()
            if key.startswith("external_ids[") and key.endswith("]")
        }
        if external:
            data["external_ids"] = external
        hints = self._hints(data)
        resolution = identity_resolve(tenant=self.tenant, hints=hints, create=False)
        if resolution.profile is None:
            raise NotFound("No customer matches these identifiers.")
        return self._resolution_response(resolution, status.HTTP_200_OK)

    @extend_schema(request=CustomerUpdateSerializer, responses=CustomerOutputSerializer)
    def partial_update(self, request, pk=None):
        profile = self.get_object()
        serializer = CustomerUpdateSerializer(
            data=request.data, context=self.get_serializer_context()
        )
        serializer.is_valid(raise_exception=True)
        fields = [name for name in serializer.validated_data if hasattr(profile, name)]
        before = {name: getattr(profile, name) for name in fields}
        with transaction.atomic():  # the change and its audit row commit together
            profile = profile_update(
                tenant=self.tenant, profile=profile, data=serializer.validated_data
            )
            changes = field_changes(
                before=before, after={name: getattr(profile, name) for name in fields}
            )
            if changes:
                audit_record(
                    tenant=self.tenant,
                    actor=_actor(request),
                    action=AuditAction.CUSTOMER_CHANGED,
                    object_type="customers.CustomerProfile",
                    object_id=profile.pk,
                    request=request,
                    changes=changes,
                )
        return Response(CustomerOutputSerializer(profile).data)

    @extend_schema(
        request=EraseInputSerializer,
        responses=OpenApiResponse(description="The erasure's audit id and what was removed"),
        summary="Erase the customer's personal data (suppression stubs and an audit remain)",
    )
    @action(detail=True, methods=["post"])
    def erase(self, request, pk=None):
        customer = self.get_object()
        body = EraseInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        erasure = customer_erase(
            tenant=self.tenant,
            customer=customer,
            actor=_actor(request),
            reason=body.validated_data.get("reason", ""),
            ip=request_ip(request),
        )
        return Response(
            {"erasure_id": erasure.pk, "customer_id": str(customer.pk), "scope": erasure.scope}
        )

    @extend_schema(
        responses=OpenApiResponse(description="The subject-access export (JSON, streamed)"),
        summary="Export everything held about the customer (subject-access request)",
    )
    @action(detail=True, methods=["get"])
    def export(self, request, pk=None):
        """Everything held about the person, as one JSON document streamed as it is read
        (see docs/privacy.md). Merged, erased and deleted profiles are a 404."""
        customer = self.get_object()
        chunks = customer_export(
            tenant=self.tenant,
            customer=customer,
            viewer=Author.api(request.user),
            actor=_actor(request),
            ip=request_ip(request),
            format="json",
            now=timezone.now(),
        )
        response = StreamingHttpResponse(chunks, content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="customer-{customer.pk}.json"'
        return response

    @extend_schema(request=MergeInputSerializer, responses=MergeOutputSerializer)
    @action(detail=True, methods=["post"])
    def merge(self, request, pk=None):
        winner = self.get_object()
        serializer = MergeInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        # The loser may be any of the tenant's profiles: a merged or erased one is refused by
        # profile_merge with a 400 that says why (the winner is live: get_object above).
        loser = get_object_or_404(
            CustomerProfile.objects.for_tenant(self.tenant),
            pk=serializer.validated_data["loser_id"],
        )
        merge = profile_merge(
            tenant=self.tenant,
            winner=winner,
            loser=loser,
            actor=_actor(request),
            reason=serializer.validated_data.get("reason", ""),
            ip=request_ip(request),
        )
        return _merge_response(merge)

    @extend_schema(
        parameters=[TimelineQuerySerializer],
        responses=TimelinePageSerializer,
        summary="A customer's activities, newest first (keyset cursor on occurred_at, id)",
    )
    @action(detail=True, methods=["get"])
    def timeline(self, request, pk=None):
        # The first page (no parameters) skips the query serializer: its defaults are known.
        params: dict = {"page_size": TIMELINE_PAGE_SIZE}
        if request.query_params:
            query = TimelineQuerySerializer(data=request.query_params)
            query.is_valid(raise_exception=True)
            params = query.validated_data
        # One query: the live-customer check (404 as get_object gives) and the page.
        page = timeline_rows_of_live_customer(
            tenant=self.tenant,
            customer_id=pk,
            categories=params.get("category", ()),
            types=params.get("type", ()),
            since=params.get("since"),
            until=params.get("until"),
            cursor=params.get("cursor"),
            page_size=params["page_size"],
        )
        if page is None:  # the very 404s get_object gives: a bad id, or no live customer
            try:
                uuid.UUID(hex=str(pk))
            except ValueError:
                raise Http404 from None
            raise Http404(f"No {CustomerProfile._meta.object_name} matches the given query.")
        return Response({"results": activity_rows_json(page.rows), "next_cursor": page.next_cursor})

    @extend_schema(
        methods=["GET"], responses=NoteSerializer(many=True), summary="A customer's notes"
    )
    @extend_schema(
        methods=["POST"],
        request=NoteSerializer,
        responses={201: NoteSerializer},
        summary="Add a note (adds a NOTE_ADDED activity)",
    )
    @action(detail=True, methods=["get", "post"], pagination_class=None, filterset_class=None)
    def notes(self, request, pk=None):
        customer = self.get_object()
        author = Author.api(request.user)
        if request.method == "GET":
            notes = note_list(tenant=self.tenant, customer=customer, viewer=author)
            return Response(NoteSerializer(notes[:500], many=True).data)
        serializer = NoteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        note = note_create(
            tenant=self.tenant, customer=customer, author=author, **serializer.validated_data
        )
        return Response(NoteSerializer(note).data, status=status.HTTP_201_CREATED)


class NoteViewSet(
    TenantScopedAPIMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """One note: read, change (the earlier text is kept), delete. A private note of another
    author is a 404, like a missing one."""

    queryset = Note.objects.all()
    serializer_class = NoteSerializer
    required_scopes = {"read": CUSTOMERS_READ, "write": CUSTOMERS_WRITE}
    http_method_names = ["get", "patch", "delete", "head", "options"]

    def get_queryset(self):
        return note_visible(tenant=self.tenant, viewer=Author.api(self.request.user))

    @extend_schema(request=NoteUpdateSerializer, responses=NoteSerializer)
    def partial_update(self, request, pk=None):
        note = self.get_object()
        serializer = NoteUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        note = note_update(
            tenant=self.tenant,
            note=note,
            editor=Author.api(request.user),
            data=serializer.validated_data,
        )
        return Response(NoteSerializer(note).data)

    def perform_destroy(self, instance) -> None:
        note_delete(tenant=self.tenant, note=instance, editor=Author.api(self.request.user))


class EventIngestView(TenantScopedAPIMixin, APIView):
    """Events from the platform's services, one or up to 1,000 at a time."""

    required_scopes = {"read": EVENTS_WRITE, "write": EVENTS_WRITE}  # read: OPTIONS only

    @extend_schema(
        request=EventBatchSerializer,
        responses={202: IngestResultSerializer},
        summary='Ingest events (one envelope, a list, or {"events": [...]})',
        description="Each event is validated on its own: valid ones are written to the sync "
        "log and queued (202), replayed ones are reported as duplicates, invalid ones as "
        "rejected with their errors. See docs/events.md for the catalog.",
    )
    def post(self, request):
        events = _event_list(request.data)
        result = events_ingest(tenant=self.tenant, raw_events=events)
        body = {
            "accepted": result.accepted,
            "duplicates": result.duplicates,
            "rejected": [vars(r) for r in result.rejected],
        }
        return Response(body, status=status.HTTP_202_ACCEPTED)


def _event_list(data) -> list:
    if isinstance(data, list):
        events = data
    elif isinstance(data, dict) and "events" in data:
        events = data["events"]
        if not isinstance(events, list):
            raise ValidationError({"events": ["Expected a list of events."]})
    elif isinstance(data, dict) and "type" in data:
        events = [data]
    else:
        raise ParseError('Send one event, a list of events, or {"events": [...]}.')
    if not events:
        raise ValidationError({"events": ["Send at least one event."]})
    if len(events) > MAX_EVENTS_PER_REQUEST:
        raise ValidationError(
            {"events": [f"At most {MAX_EVENTS_PER_REQUEST:,} events per request."]}
        )
    return events


class MergeSuggestionViewSet(
    TenantScopedAPIMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Profiles that identity hints tied together, for a person or service to decide."""

    queryset = MergeSuggestion.objects.all()
    serializer_class = MergeSuggestionSerializer
    required_scopes = {"read": CUSTOMERS_READ, "write": CUSTOMERS_WRITE}
    filterset_fields = ["status"]

    def get_queryset(self):
        return merge_suggestion_list(tenant=self.tenant)

    @extend_schema(request=None, responses=MergeOutputSerializer)
    @action(detail=True, methods=["post"])
    def accept(self, request, pk=None):
        merge = merge_suggestion_accept(
            tenant=self.tenant,
            suggestion=self.get_object(),
            actor=_actor(request),
            ip=request_ip(request),
        )
        return _merge_response(merge)

    @extend_schema(request=None, responses=MergeSuggestionSerializer)
    @action(detail=True, methods=["post"])
    def dismiss(self, request, pk=None):
        suggestion = merge_suggestion_dismiss(
            tenant=self.tenant, suggestion=self.get_object(), actor=_actor(request)
        )
        return Response(MergeSuggestionSerializer(suggestion).data)
