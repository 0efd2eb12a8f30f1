"""Base API classes every app builds on, and the platform's own endpoints."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework import mixins, viewsets
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from crm.models import Club
from crm.scopes import ANY_CREDENTIAL, TENANT_ADMIN, TENANT_READ
from crm.services import club_create, club_update

from .serializers import ClubSerializer, TenantSerializer

if TYPE_CHECKING:
    from crm.models import Tenant


class PolicyOncePerRequestMixin:
    """The view's permission and throttle objects, built once per request.

    DRF builds them anew each time it asks (``get_permissions``, ``get_throttles``), and an
    API key's authentication asks before DRF's own checks do (it plans its one Redis round
    trip from them: ``crm.api.authentication``). A view instance serves one request, so
    the objects are kept on it; DRF's checks then use the very objects the plan looked at.
    """

    def get_permissions(self):
        built = self.__dict__.get("_permissions_built")
        if built is None:
            built = self._permissions_built = super().get_permissions()  # type: ignore[misc]
        return built

    def get_throttles(self):
        built = self.__dict__.get("_throttles_built")
        if built is None:
            built = self._throttles_built = super().get_throttles()  # type: ignore[misc]
        return built


class TenantScopedAPIMixin(PolicyOncePerRequestMixin):
    """Scopes ``queryset`` to the caller's tenant; every tenant-owned API view uses it.

    Another tenant's object is simply not in the queryset, so it answers 404 exactly like a
    missing one. Creation gets the tenant from the credential, never from the body. Each view
    declares ``required_scopes`` (see ``crm.scopes``); without it every request is refused.
    """

    @property
    def tenant(self) -> Tenant:
        return self.request.user.tenant  # type: ignore[attr-defined]

    def get_queryset(self):
        return super().get_queryset().for_tenant(self.tenant)  # type: ignore[misc]

    def get_serializer_context(self):
        context = super().get_serializer_context()  # type: ignore[misc]
        context["tenant"] = self.tenant if getattr(self, "request", None) else None
        return context

    def perform_create(self, serializer) -> None:
        serializer.save(tenant=self.tenant)


class ClubViewSet(
    TenantScopedAPIMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """The caller's clubs."""

    queryset = Club.objects.all()
    serializer_class = ClubSerializer
    required_scopes = {"read": TENANT_READ, "write": TENANT_ADMIN}
    http_method_names = ["get", "post", "patch", "head", "options"]

    def perform_create(self, serializer) -> None:
        serializer.instance = club_create(tenant=self.tenant, **_club_fields(serializer))

    def perform_update(self, serializer) -> None:
        serializer.instance = club_update(club=serializer.instance, **_club_fields(serializer))


def _club_fields(serializer) -> dict:
    data = serializer.validated_data
    return {"name": data.get("name"), "timezone_name": data.get("timezone")}


class CurrentTenantView(PolicyOncePerRequestMixin, GenericAPIView):
    """The tenant the credential belongs to."""

    serializer_class = TenantSerializer
    # Which tenant a credential belongs to is no secret to the credential itself.
    required_scopes = {"read": ANY_CREDENTIAL}

    def get(self, request):
        return Response(self.get_serializer(request.user.tenant).data)
