"""Views of ``/api/v1/analytics/...``: aggregates of the caller's tenant, read from the
nightly ``DailyStats`` (cheap at any number of profiles). Scope ``analytics:read``."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from crm.api.views import TenantScopedAPIMixin
from crm.scopes import ANALYTICS_READ
from scoring.analytics import (
    analytics_campaigns,
    analytics_distributions,
    analytics_events,
    analytics_overview,
    analytics_trends,
)

from .serializers import DaysSerializer

DAYS = OpenApiParameter("days", int, description="How many recorded days (1-366, default 90)")


class AnalyticsView(TenantScopedAPIMixin, GenericAPIView):
    required_scopes = {"read": ANALYTICS_READ}
    serializer_class = DaysSerializer
    pagination_class = None

    def days(self) -> int:
        serializer = DaysSerializer(data=self.request.query_params)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data["days"]


class OverviewView(AnalyticsView):
    """Members by lifecycle, active in 30 days (latest day), new and lapsed (30 days)."""

    def get(self, request):
        return Response(analytics_overview(tenant=self.tenant))


class ScoresView(AnalyticsView):
    """Engagement and churn-risk histograms (ten buckets) and engagement bands."""

    def get(self, request):
        return Response(analytics_distributions(tenant=self.tenant))


class TrendsView(AnalyticsView):
    """Per day: average engagement and churn risk, members at risk, bands, active in 30 days."""

    @extend_schema(parameters=[DAYS])
    def get(self, request):
        return Response({"results": analytics_trends(tenant=self.tenant, days=self.days())})


class CampaignsView(AnalyticsView):
    """Per day: marketing messages sent, distinct messages opened and clicked."""

    @extend_schema(parameters=[DAYS])
    def get(self, request):
        return Response({"results": analytics_campaigns(tenant=self.tenant, days=self.days())})


class EventsView(AnalyticsView):
    """Per day: events ingested, in total and by source."""

    @extend_schema(parameters=[DAYS])
    def get(self, request):
        return Response({"results": analytics_events(tenant=self.tenant, days=self.days())})
