"""Journey figures, computed from the rows (enrollments, their step history, the messages),
never from counters kept on the side: a figure cannot drift from what happened.

Per journey: entered, active, completed, converted, exited by reason, failed; the goal's
conversion rate and median time to goal; the holdout's lift with a 95% confidence interval
(the difference of two proportions, normal approximation). Per step: visits, people there
now, outcomes of the visits (branch taken, waited, timeout...), and its messages by status
and skip reason with opens and clicks.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from django.db import connection

from crm.models import Tenant
from customers.models import CustomerProfile
from marketing.models import Interaction, Message

from .models import Enrollment, EnrollmentStatus, EnrollmentStep, Journey
from .stats import step_stats_read

Z95 = 1.96
E = Enrollment._meta.db_table
ES = EnrollmentStep._meta.db_table
M = Message._meta.db_table
I = Interaction._meta.db_table  # noqa: E741


def _rate(hits: int, total: int) -> float | None:
    return hits / total if total else None


def holdout_lift(
    treated: int, treated_hits: int, held: int, held_hits: int
) -> dict[str, float | None]:
    """Goal rate of the treated minus the holdout's, with a 95% interval."""
    p1, p0 = _rate(treated_hits, treated), _rate(held_hits, held)
    if p1 is None or p0 is None:
        return {"lift": None, "low": None, "high": None}
    se = math.sqrt(p1 * (1 - p1) / treated + p0 * (1 - p0) / held)
    lift = p1 - p0
    return {"lift": lift, "low": lift - Z95 * se, "high": lift + Z95 * se}


def _totals(enrollments: dict[tuple[str, bool], int]) -> dict[str, Any]:
    """Entered, per status, treated / held out and their conversions, exits by reason, from
    the journey's enrollment figures (``automation.stats``: ``(status, holdout) -> n``)."""
    totals: dict[str, Any] = defaultdict(int)
    exited: dict[str, int] = defaultdict(int)
    for (outcome, holdout), n in enrollments.items():
        status, _, reason = outcome.partition(":")
        totals["entered"] += n
        totals[status] += n
        totals["held" if holdout else "treated"] += n
        if status == EnrollmentStatus.CONVERTED:
            totals["held_converted" if holdout else "treated_converted"] += n
        if status == EnrollmentStatus.EXITED:
            exited[reason] += n
    totals["exited"] = {reason: n for reason, n in exited.items() if n}
    return totals


def journey_analytics(*, journey: Journey) -> dict[str, Any]:
    figures = step_stats_read(journey=journey)
    totals = _totals(figures.pop("", {}).get("enrollments", {}))
    with connection.cursor() as cursor:
        # Over the converted enrollments only (an index-only range of the covering index);
        # date_part is float arithmetic, extract() numeric (twice the time over 50,000).
        cursor.execute(
            f"""
            SELECT percentile_cont(0.5) WITHIN GROUP (
                ORDER BY date_part('epoch', ended_at - entered_at))
            FROM "{E}"
            WHERE tenant_id = %s AND journey_id = %s AND status = 'CONVERTED'
              AND NOT holdout
            """,  # noqa: S608
            [journey.tenant_id, journey.pk],
        )
        median = cursor.fetchone()[0]
    return {
        "entered": totals["entered"],
        "active": totals[EnrollmentStatus.ACTIVE],
        "completed": totals[EnrollmentStatus.COMPLETED],
        "converted": totals[EnrollmentStatus.CONVERTED],
        "failed": totals[EnrollmentStatus.FAILED],
        "exited": totals["exited"],
        "goal": {
            "conversion_rate": _rate(totals["treated_converted"], totals["treated"]),
            "median_seconds_to_goal": median,
            "holdout": {
                "treated": totals["treated"],
                "treated_converted": totals["treated_converted"],
                "held_out": totals["held"],
                "held_out_converted": totals["held_converted"],
                "conversion_rate": _rate(totals["held_converted"], totals["held"]),
                **holdout_lift(
                    totals["treated"],
                    totals["treated_converted"],
                    totals["held"],
                    totals["held_converted"],
                ),
            },
        },
        "steps": step_analytics(journey=journey, figures=figures),
    }


def step_analytics(
    *, journey: Journey, figures: dict[str, dict[str, Any]] | None = None
) -> dict[str, dict[str, Any]]:
    """Per step key (over all versions): visits, people, outcomes (from the step figures,
    ``automation.stats``; ``figures`` when the caller has read them), people there now
    (ACTIVE enrollments, a range of the covering index) and the messages."""
    tenant = journey.tenant
    steps: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"visits": 0, "people": 0, "current": 0, "outcomes": {}, "messages": {}}
    )
    if figures is None:
        figures = step_stats_read(journey=journey)
    for key, counted in figures.items():
        if key:
            steps[key].update(counted)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT step_key, count(*) FROM "{E}"
            WHERE tenant_id = %s AND journey_id = %s AND status = 'ACTIVE'
            GROUP BY 1
            """,  # noqa: S608
            [tenant.pk, journey.pk],
        )
        for key, n in cursor.fetchall():
            steps[key]["current"] = n
    # Messages and their opens/clicks per step, joined in SQL (no ids pulled into Python).
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT es.step_key, m.status, m.skip_reason, count(*),
                   count(*) FILTER (WHERE EXISTS (SELECT 1 FROM "{I}" i
                       WHERE i.tenant_id = m.tenant_id AND i.message_id = m.id
                         AND i.kind = 'OPENED')),
                   count(*) FILTER (WHERE EXISTS (SELECT 1 FROM "{I}" i
                       WHERE i.tenant_id = m.tenant_id AND i.message_id = m.id
                         AND i.kind = 'CLICKED'))
            FROM "{ES}" es
            JOIN "{E}" e ON e.id = es.enrollment_id
            JOIN "{M}" m ON m.tenant_id = es.tenant_id AND m.journey_step_id = es.id
            WHERE es.tenant_id = %s AND e.journey_id = %s
            GROUP BY 1, 2, 3
            """,  # noqa: S608
            [tenant.pk, journey.pk],
        )
        for key, status, reason, n, opened, clicked in cursor.fetchall():
            bucket = steps[key]["messages"]
            label = f"{status.lower()}:{reason}" if reason else status.lower()
            bucket[label] = bucket.get(label, 0) + n
            bucket["opened"] = bucket.get("opened", 0) + opened
            bucket["clicked"] = bucket.get("clicked", 0) + clicked
    return dict(steps)


CUSTOMER_ENROLLMENTS_SHOWN = 20


def customer_journeys_panel(*, tenant: Tenant, customer: CustomerProfile) -> dict[str, Any]:
    """The customer page's journeys panel: the person's latest enrollments, where each one
    stands or how it ended. One query."""
    enrollments = (
        Enrollment.objects.filter(tenant=tenant, customer=customer)
        .select_related("journey")
        .order_by("-entered_at", "-id")[:CUSTOMER_ENROLLMENTS_SHOWN]
    )
    return {
        "template": "admin/automation/customer_panel.html",
        "enrollments": [
            {
                "journey": enrollment.journey,
                "status": enrollment.status,
                "status_label": enrollment.get_status_display(),
                "step_key": enrollment.step_key,
                "exit_reason": enrollment.exit_reason,
                "entered_at": enrollment.entered_at,
                "ended_at": enrollment.ended_at,
            }
            for enrollment in enrollments
        ],
    }
