"""Scores, their per-tenant settings, the nightly runs, daily aggregates and backtests.

Scores are rebuilt set-wise (one statement per tenant and score, docs/scoring.md): the
current values live in ``Score`` (one narrow row per live profile) and, for the rule
engine, in ``CustomerProfile.engagement_score`` / ``churn_risk``. Trends are read from
``DailyStats``: one row per tenant and local day, so a dashboard never scans profiles.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models

from crm.tenancy import TenantOwnedModel

# The guide's lifetime-value buckets (§10.1), read as MAJOR units of the tenant's currency:
# at or above the first value scores 100, the second 80, then 60, 40, 20; below the last, 0.
DEFAULT_MONETARY_THRESHOLDS: list[int] = [100_000, 50_000, 20_000, 10_000, 5_000]


def default_monetary_thresholds() -> list[int]:
    return list(DEFAULT_MONETARY_THRESHOLDS)


def validate_monetary_thresholds(value: Any) -> None:
    if (
        not isinstance(value, list)
        or len(value) != len(DEFAULT_MONETARY_THRESHOLDS)
        or not all(isinstance(v, int | float | str) for v in value)
    ):
        raise ValidationError("Give five amounts, highest first (major units, e.g. 100000).")
    try:
        amounts = [Decimal(str(v)) for v in value]
    except ArithmeticError as exc:
        raise ValidationError("Every threshold must be a number.") from exc
    if any(a < 0 for a in amounts) or amounts != sorted(amounts, reverse=True):
        raise ValidationError("Thresholds must be zero or more and in descending order.")


class Band(models.TextChoices):
    HIGH = "high", "High (70-100)"
    MEDIUM = "medium", "Medium (40-69)"
    LOW = "low", "Low (0-39)"


class ScoringSettings(TenantOwnedModel):
    """A tenant's scoring parameters. A tenant without a row scores with the defaults."""

    monetary_thresholds = models.JSONField(
        default=default_monetary_thresholds,
        validators=[validate_monetary_thresholds],
        help_text="Lifetime value (major units of the tenant's currency) scoring 100, 80, 60, "
        "40 and 20 points, highest first.",
    )

    class Meta:
        ordering = ["tenant"]
        verbose_name_plural = "scoring settings"
        constraints = [
            models.UniqueConstraint(fields=["tenant"], name="scoring_settings_tenant_uniq"),
        ]

    def __str__(self) -> str:
        return f"Scoring settings of {self.tenant}"


class Score(TenantOwnedModel):
    """The current scores of one live profile, with the churn reasons. Rebuilt nightly;
    a profile that merges, is erased or deleted loses its row on the next run."""

    id = models.BigAutoField(primary_key=True)
    customer = models.ForeignKey(
        "customers.CustomerProfile", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    engagement = models.PositiveSmallIntegerField()
    band = models.CharField(max_length=6, choices=Band.choices)
    churn_risk = models.PositiveSmallIntegerField()
    # [{"code": "ROUND_OVERDUE", "points": 35, ...facts}], highest points first.
    reasons = models.JSONField(default=list, blank=True)
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["-churn_risk", "id"]
        verbose_name = "member score"
        verbose_name_plural = "members at risk"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "customer"], name="score_customer_uniq"),
        ]
        indexes = [
            # "Members at risk": the tenant's highest churn risk first.
            models.Index(fields=["tenant", "-churn_risk"], name="score_churn_idx"),
        ]

    def __str__(self) -> str:
        return f"engagement {self.engagement}, churn {self.churn_risk}"


class DailyStats(TenantOwnedModel):
    """One tenant's day (its local date), aggregated by the nightly run: what the dashboards
    and ``/api/v1/analytics`` read instead of scanning profiles, messages or the sync log."""

    day = models.DateField()
    members_by_lifecycle = models.JSONField(default=dict)
    profiles = models.PositiveIntegerField(default=0)
    active_30d = models.PositiveIntegerField(default=0)
    new_profiles = models.PositiveIntegerField(default=0)
    lapsed = models.PositiveIntegerField(default=0)
    bands = models.JSONField(default=dict)
    # Ten buckets each: 0-9, 10-19, ... 90-100.
    engagement_histogram = models.JSONField(default=list)
    churn_histogram = models.JSONField(default=list)
    at_risk = models.PositiveIntegerField(default=0)
    avg_engagement = models.DecimalField(max_digits=5, decimal_places=2, null=True)
    avg_churn = models.DecimalField(max_digits=5, decimal_places=2, null=True)
    messages_sent = models.PositiveIntegerField(default=0)
    messages_opened = models.PositiveIntegerField(default=0)
    messages_clicked = models.PositiveIntegerField(default=0)
    events_by_source = models.JSONField(default=dict)

    class Meta:
        ordering = ["tenant", "-day"]
        verbose_name_plural = "daily stats"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "day"], name="daily_stats_day_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.tenant} {self.day}"


class RunKind(models.TextChoices):
    NIGHTLY = "nightly", "Nightly"
    MANUAL = "manual", "On demand"


class ScoringRun(TenantOwnedModel):
    """One scoring of one tenant. Nightly runs are unique per (tenant, local date): the row
    is claimed with INSERT ... ON CONFLICT DO NOTHING, so a second beat tick does nothing."""

    kind = models.CharField(max_length=7, choices=RunKind.choices)
    local_date = models.DateField()
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    scored = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "local_date"],
                condition=models.Q(kind="nightly"),
                name="scoring_run_nightly_uniq",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.local_date}"


class Backtest(TenantOwnedModel):
    """How well churn risk, computed as of a past date, ranked the members who lapsed in
    the following ``horizon_days``: AUC and top-decile lift."""

    as_of = models.DateTimeField()
    horizon_days = models.PositiveSmallIntegerField(default=90)
    population = models.PositiveIntegerField()
    churners = models.PositiveIntegerField()
    auc = models.DecimalField(max_digits=5, decimal_places=4, null=True, blank=True)
    top_decile_lift = models.DecimalField(max_digits=7, decimal_places=3, null=True, blank=True)
    top_decile_churners = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"backtest as of {self.as_of:%Y-%m-%d}: AUC {self.auc}"
