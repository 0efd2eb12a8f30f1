"""The journey sweep's series for ``/metrics`` (registered in ``AutomationConfig.ready``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from django.db.models import Count, Min
from prometheus_client.core import GaugeMetricFamily, Metric

from .models import Enrollment, EnrollmentStatus


def journey_metrics(*, now: datetime) -> Iterator[Metric]:
    """Enrollments due now and how long the oldest has waited past its due time: the sweep
    lag (the sweep runs every minute, so a healthy value stays under a couple of minutes).
    Reads the partial index of ACTIVE enrollments by ``due_at``."""
    due = Enrollment.objects.filter(status=EnrollmentStatus.ACTIVE, due_at__lte=now).aggregate(
        n=Count("id"), oldest=Min("due_at")
    )
    yield GaugeMetricFamily(
        "crm_journey_due_enrollments", "Active enrollments whose due time has come.", value=due["n"]
    )
    oldest = due["oldest"]
    yield GaugeMetricFamily(
        "crm_journey_sweep_lag_seconds",
        "How long the oldest due enrollment has waited past its due time (0 when none).",
        value=max(0.0, (now - oldest).total_seconds()) if oldest else 0.0,
    )
