"""Routes of the analytics API under /api/v1/."""

from django.urls import path

from .views import CampaignsView, EventsView, OverviewView, ScoresView, TrendsView

urlpatterns = [
    path("analytics/overview", OverviewView.as_view(), name="analytics-overview"),
    path("analytics/scores", ScoresView.as_view(), name="analytics-scores"),
    path("analytics/trends", TrendsView.as_view(), name="analytics-trends"),
    path("analytics/campaigns", CampaignsView.as_view(), name="analytics-campaigns"),
    path("analytics/events", EventsView.as_view(), name="analytics-events"),
]
