"""The journey sweep's series for ``/metrics`` (registered in ``AutomationConfig.ready``)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db.models import Count, Min
from prometheus_client.core import Metric

from crm.metrics import backlog_metrics

from .models import Enrollment, EnrollmentStatus


def journey_metrics(*, now: datetime) -> Iterable[Metric]:
    """Enrollments due now and how long the oldest has waited past its due time: the sweep
    lag (the sweep runs every minute, so a healthy value stays under a couple of minutes).
    Reads the partial index of ACTIVE enrollments by ``due_at``."""
    due = Enrollment.objects.filter(status=EnrollmentStatus.ACTIVE, due_at__lte=now).aggregate(
        n=Count("id"), oldest=Min("due_at")
    )
    return backlog_metrics(
        count=("crm_journey_due_enrollments", "Active enrollments whose due time has come."),
        age=(
            "crm_journey_sweep_lag_seconds",
            "How long the oldest due enrollment has waited past its due time (0 when none).",
        ),
        n=due["n"],
        oldest=due["oldest"],
        now=now,
    )
