"""Staff screens of scoring: the home dashboard (KPI cards and charts, from ``DailyStats``),
"members at risk" (filter by club and band, export to CSV or to a new static segment), the
runs (score now), backtests and per-tenant settings."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.http import HttpResponse
from django.utils import timezone
from unfold.admin import ModelAdmin

from crm.admin_mixins import TenantScopedAdminMixin
from crm.models import Club, StaffRole
from crm.selectors import staff_tenant_ids
from crm.tasks import tenant_task
from marketing.segments import segment_create, segment_members_add

from .analytics import AT_RISK
from .models import Backtest, DailyStats, RunKind, Score, ScoringRun, ScoringSettings

STAFF_ROLES = (StaffRole.ADMIN, StaffRole.MARKETER)


class ReadOnlyMixin:
    def has_add_permission(self, request, *args) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ScoringSettings)
class ScoringSettingsAdmin(TenantScopedAdminMixin, ModelAdmin):
    list_display = ["tenant", "monetary_thresholds", "updated_at"]


@admin.register(ScoringRun)
class ScoringRunAdmin(ReadOnlyMixin, TenantScopedAdminMixin, ModelAdmin):
    list_display = ["tenant", "kind", "local_date", "started_at", "finished_at", "scored"]
    list_filter = ["kind"]
    actions = ["score_now"]

    @admin.action(description="Score these runs' tenants now (queued)")
    def score_now(self, request, queryset):
        task = tenant_task("scoring.score_tenant")
        tenants = {run.tenant for run in queryset.select_related("tenant")}
        for tenant in tenants:
            task.enqueue(tenant, kind=RunKind.MANUAL)
        messages.success(request, f"Scoring queued for {', '.join(sorted(map(str, tenants)))}.")

    def has_change_permission(self, request, obj=None) -> bool:
        # Actions need "change"; the rows themselves have no editable field.
        return self._can_write(request, obj)


@admin.register(Backtest)
class BacktestAdmin(ReadOnlyMixin, TenantScopedAdminMixin, ModelAdmin):
    list_display = [
        "tenant",
        "as_of",
        "horizon_days",
        "population",
        "churners",
        "auc",
        "top_decile_lift",
        "top_decile_churners",
        "created_at",
    ]


class ClubFilter(admin.SimpleListFilter):
    title = "club"
    parameter_name = "club"

    def lookups(self, request, model_admin):
        clubs = Club.objects.all()
        if not request.user.is_superuser:
            clubs = clubs.for_tenants(staff_tenant_ids(user=request.user))
        return [(str(c.pk), str(c)) for c in clubs.order_by("name")]

    def queryset(self, request, queryset):
        return queryset.filter(customer__home_club_id=self.value()) if self.value() else queryset


class RiskFilter(admin.SimpleListFilter):
    title = "churn risk"
    parameter_name = "risk"

    def lookups(self, request, model_admin):
        return [("at_risk", f"At risk ({AT_RISK}+)"), ("all", "All")]

    def queryset(self, request, queryset):
        return queryset if self.value() == "all" else queryset.filter(churn_risk__gte=AT_RISK)


@admin.register(Score)
class MembersAtRiskAdmin(ReadOnlyMixin, TenantScopedAdminMixin, ModelAdmin):
    """Members at risk: highest churn risk first, with the reasons."""

    list_display = ["customer", "club", "churn_risk", "band", "engagement", "why", "computed_at"]
    list_filter = [RiskFilter, ClubFilter, "band"]
    list_select_related = ["customer", "customer__home_club"]
    ordering = ["-churn_risk", "id"]
    actions = ["export_csv", "to_static_segment"]
    write_roles = STAFF_ROLES

    def has_change_permission(self, request, obj=None) -> bool:
        return self._can_write(request, obj)  # for the actions; no field is editable

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    @admin.display(description="club")
    def club(self, obj: Score) -> str:
        return str(obj.customer.home_club or "")

    @admin.display(description="why")
    def why(self, obj: Score) -> str:
        return ", ".join(f"{r['code']} ({r['points']})" for r in obj.reasons)

    @admin.action(description="Export selected to CSV")
    def export_csv(self, request, queryset):
        response = HttpResponse(content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="members-at-risk.csv"'
        writer = csv.writer(response)
        writer.writerow(
            [
                "customer_id",
                "email",
                "first_name",
                "last_name",
                "club",
                "churn_risk",
                "band",
                "engagement",
                "reasons",
                "computed_at",
            ]
        )
        for score in queryset.select_related("customer", "customer__home_club"):
            c = score.customer
            writer.writerow(
                [
                    c.pk,
                    c.email or "",
                    c.first_name,
                    c.last_name,
                    str(c.home_club or ""),
                    score.churn_risk,
                    score.band,
                    score.engagement,
                    self.why(score),
                    score.computed_at.isoformat(),
                ]
            )
        return response

    @admin.action(description="Add selected to a new static segment")
    def to_static_segment(self, request, queryset):
        by_tenant: dict[Any, list] = defaultdict(list)
        tenants = {}
        for score in queryset.select_related("tenant"):
            if self._can_write(request, score):
                by_tenant[score.tenant_id].append(score.customer_id)
                tenants[score.tenant_id] = score.tenant
        for tenant_id, customer_ids in by_tenant.items():
            segment = segment_create(
                tenant=tenants[tenant_id],
                data={"name": f"At risk {timezone.now():%Y-%m-%d %H:%M}", "type": "STATIC"},
                actor=request.user,
            )
            added = segment_members_add(segment=segment, customer_ids=customer_ids)
            messages.success(request, f"Segment “{segment.name}” created with {added} members.")
        if not by_tenant:
            messages.warning(request, "Nothing selected that you may add to a segment.")


def dashboard_callback(request, context: dict) -> dict:
    """The admin home: KPI cards and charts of the staff user's tenants, from the latest
    ``DailyStats`` (no scan of profiles). Chart.js ships with unfold (served locally)."""
    rows = DailyStats.objects.order_by("day")
    if not request.user.is_superuser:
        rows = rows.for_tenants(staff_tenant_ids(user=request.user))
    rows = list(rows.filter(day__gte=timezone.now().date() - timedelta(days=90)))
    by_day: dict[Any, list[DailyStats]] = defaultdict(list)
    for row in rows:
        by_day[row.day].append(row)
    days = sorted(by_day)
    latest = by_day[days[-1]] if days else []
    kpis = [
        ("Profiles", sum(r.profiles for r in latest)),
        ("Members", sum(r.members_by_lifecycle.get("MEMBER", 0) for r in latest)),
        ("Active in 30 days", sum(r.active_30d for r in latest)),
        ("Members at risk", sum(r.at_risk for r in latest)),
    ]
    labels = [d.isoformat() for d in days]

    def series(attr):
        return [float(sum((getattr(r, attr) or 0) for r in by_day[d])) for d in days]

    histogram = [sum(r.churn_histogram[i] for r in latest) if latest else 0 for i in range(10)]
    context.update(
        scoring_kpis=kpis,
        scoring_as_of=days[-1] if days else None,
        scoring_trend=json.dumps(
            {
                "labels": labels,
                "datasets": [
                    {"label": "Active in 30 days", "data": series("active_30d")},
                    {"label": "At risk", "data": series("at_risk")},
                ],
            }
        ),
        scoring_histogram=json.dumps(
            {
                "labels": [f"{10 * i}-{10 * i + 9}" for i in range(10)],
                "datasets": [{"label": "Members by churn risk", "data": histogram}],
            }
        ),
        scoring_campaigns=json.dumps(
            {
                "labels": labels,
                "datasets": [
                    {"label": "Sent", "data": series("messages_sent")},
                    {"label": "Opened", "data": series("messages_opened")},
                    {"label": "Clicked", "data": series("messages_clicked")},
                ],
            }
        ),
    )
    return context
