"""Views of the social API: validate, call one service, serialize."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from crm.api.pagination import CreatedCursorPagination
from crm.api.views import TenantScopedAPIMixin
from crm.scopes import SOCIAL_READ, SOCIAL_WRITE
from social.connections import connection_disconnect
from social.models import Connection, Post, Promotion, Publication
from social.posts import post_cancel, post_create, post_delete, post_schedule, post_update
from social.promotion import promotion_cancel, promotion_create, promotion_edit

from .serializers import (
    ConnectionSerializer,
    PostSerializer,
    PostUpdateSerializer,
    PromoteSerializer,
    PromotionEditSerializer,
    PromotionSerializer,
    PublicationSerializer,
    ScheduleSerializer,
)

SCOPES = {"read": SOCIAL_READ, "write": SOCIAL_WRITE}


class ConnectionViewSet(
    TenantScopedAPIMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """The tenant's social accounts (connect them in the admin: OAuth needs a browser)."""

    queryset = Connection.objects.all()
    serializer_class = ConnectionSerializer
    required_scopes = SCOPES
    filterset_fields = ["club", "platform", "status"]

    @extend_schema(request=None, responses=ConnectionSerializer)
    @action(detail=True, methods=["post"])
    def disconnect(self, request, pk=None):
        connection = connection_disconnect(connection=self.get_object())
        return Response(ConnectionSerializer(connection).data)


class PostViewSet(TenantScopedAPIMixin, viewsets.ModelViewSet):
    """Posts with one publication per target account."""

    queryset = Post.objects.prefetch_related("publications__connection")
    serializer_class = PostSerializer
    required_scopes = SCOPES
    pagination_class = CreatedCursorPagination
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    filterset_fields = ["club"]

    def get_serializer_class(self):
        return PostUpdateSerializer if self.action == "partial_update" else PostSerializer

    def perform_create(self, serializer) -> None:
        data = dict(serializer.validated_data)
        serializer.instance = post_create(
            tenant=self.tenant,
            club=data.pop("club"),
            connection_ids=data.pop("connection_ids"),
            data=data,
            actor=self.request.user,
        )

    def perform_update(self, serializer) -> None:
        data = dict(serializer.validated_data)
        data.pop("connection_ids", None)
        serializer.instance = post_update(post=serializer.instance, data=data)

    def perform_destroy(self, instance) -> None:
        post_delete(post=instance)

    def _post(self, post: Post) -> Response:
        fresh = self.get_queryset().get(pk=post.pk)
        return Response(PostSerializer(fresh, context=self.get_serializer_context()).data)

    @extend_schema(request=ScheduleSerializer, responses=PostSerializer)
    @action(detail=True, methods=["post"])
    def schedule(self, request, pk=None):
        post = self.get_object()
        body = ScheduleSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return self._post(
            post_schedule(post=post, scheduled_at=body.validated_data.get("scheduled_at"))
        )

    @extend_schema(request=None, responses=PostSerializer)
    @action(detail=True, methods=["post"], url_path="publish-now")
    def publish_now(self, request, pk=None):
        return self._post(post_schedule(post=self.get_object()))

    @extend_schema(request=None, responses=PostSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        post = self.get_object()
        post_cancel(post=post)
        return self._post(post)


class PublicationViewSet(
    TenantScopedAPIMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Every publication (a post on one account), e.g. ``?status=NEEDS_REVIEW``."""

    queryset = Publication.objects.select_related("connection")
    serializer_class = PublicationSerializer
    required_scopes = SCOPES
    filterset_fields = ["status", "connection", "post"]


class PromotionViewSet(
    TenantScopedAPIMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """Competition promotions with their campaign, posts and reminders. POST promotes a
    competition by hand; PATCH edits what has not gone out yet (409 for what has)."""

    queryset = Promotion.objects.prefetch_related("reminders", "posts")
    serializer_class = PromotionSerializer
    required_scopes = SCOPES
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_serializer_class(self):
        if self.action == "create":
            return PromoteSerializer
        if self.action == "partial_update":
            return PromotionEditSerializer
        return PromotionSerializer

    @extend_schema(request=PromotionEditSerializer, responses=PromotionSerializer)
    def partial_update(self, request, *args, **kwargs):
        promotion = self.get_object()
        body = PromotionEditSerializer(data=request.data, context=self.get_serializer_context())
        body.is_valid(raise_exception=True)
        promotion = promotion_edit(promotion=promotion, data=dict(body.validated_data))
        return Response(PromotionSerializer(self.get_queryset().get(pk=promotion.pk)).data)

    @extend_schema(request=PromoteSerializer, responses=PromotionSerializer)
    def create(self, request, *args, **kwargs):
        body = PromoteSerializer(data=request.data, context=self.get_serializer_context())
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        club = data.pop("clubId")
        promotion = promotion_create(
            tenant=self.tenant,
            payload={**data, "clubId": str(club.pk)},
            by_hand=True,
        )
        if promotion is None:
            raise ValidationError({"competitionId": "This competition cannot be promoted."})
        fresh = self.get_queryset().get(pk=promotion.pk)
        return Response(PromotionSerializer(fresh).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=PromotionSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        promotion = promotion_cancel(promotion=self.get_object())
        return Response(PromotionSerializer(self.get_queryset().get(pk=promotion.pk)).data)
