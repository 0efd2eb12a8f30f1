"""Models of the automation app: journeys, their versions and steps, enrollments and the
history of every step visit."""

from __future__ import annotations

import uuid

from django.contrib.postgres.fields import ArrayField
from django.db import models

from crm.tenancy import TenantOwnedModel, tenant_led_key


class JourneyStatus(models.TextChoices):
    DRAFT = "DRAFT", "Draft"
    ACTIVE = "ACTIVE", "Active"
    PAUSED = "PAUSED", "Paused"
    ARCHIVED = "ARCHIVED", "Archived"


class Reentry(models.TextChoices):
    NEVER = "never", "Never"
    ALWAYS = "always", "Always (after finishing)"
    AFTER_DAYS = "after_days", "After N days"


class Journey(TenantOwnedModel):
    """A multi-step automation: who enters (trigger, entry filter, re-entry), what they go
    through (the steps of the current version), and when they leave early (goal, exits)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("crm.Tenant", on_delete=models.CASCADE, related_name="+")
    club = models.ForeignKey(
        "crm.Club", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    name = models.CharField(max_length=150)
    description = models.TextField(blank=True, default="")
    status = models.CharField(
        max_length=8, choices=JourneyStatus.choices, default=JourneyStatus.DRAFT
    )
    timezone = models.CharField(
        max_length=64, blank=True, default="", help_text="Empty: the tenant's timezone."
    )
    trigger = models.JSONField(default=dict, blank=True)
    entry_criteria = models.JSONField(default=dict, blank=True)
    reentry = models.CharField(max_length=10, choices=Reentry.choices, default=Reentry.NEVER)
    reentry_days = models.PositiveIntegerField(default=0)
    goal = models.JSONField(default=dict, blank=True)
    exit_criteria = models.JSONField(default=dict, blank=True)
    holdout_percent = models.PositiveSmallIntegerField(default=0)
    current_version = models.ForeignKey(
        "JourneyVersion", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    activated_at = models.DateTimeField(null=True, blank=True)
    trigger_cursor = models.BigIntegerField(
        default=0, help_text="Segment triggers: the last segment change looked at."
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="journey_tenant_name_uniq"),
        ]
        indexes = [
            models.Index(fields=["tenant", "status"], name="journey_tenant_status_idx"),
        ]

    def __str__(self) -> str:
        return self.name


class JourneyVersion(TenantOwnedModel):
    """The step graph of a journey as it was at one edit: people in flight finish on the
    version they entered, new entrants take the journey's current version."""

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey("crm.Tenant", on_delete=models.CASCADE, related_name="+")
    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    entry_key = models.CharField(max_length=40, blank=True, default="")

    class Meta:
        ordering = ["journey", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "journey", "number"], name="journeyversion_number_uniq"
            ),
        ]


class StepType(models.TextChoices):
    SEND = "SEND", "Send a message"
    WAIT = "WAIT", "Wait"
    CONDITION = "CONDITION", "Condition (yes / no)"
    SPLIT = "SPLIT", "Split (weighted branches)"
    UPDATE = "UPDATE", "Update the profile"
    TASK = "TASK", "Staff follow-up"
    END = "END", "End"


class Step(TenantOwnedModel):
    """One node of a version's graph. ``next_keys`` by type: SEND/WAIT/UPDATE/TASK one key
    (WAIT until an event: [event happened, timed out]); CONDITION [yes, no]; SPLIT one key
    per branch (weights in the config); END none."""

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey("crm.Tenant", on_delete=models.CASCADE, related_name="+")
    version = models.ForeignKey(JourneyVersion, on_delete=models.CASCADE, related_name="steps")
    key = models.CharField(max_length=40)
    position = models.PositiveIntegerField(default=0)
    type = models.CharField(max_length=10, choices=StepType.choices)
    name = models.CharField(max_length=120, blank=True, default="")
    config = models.JSONField(default=dict, blank=True)
    next_keys = ArrayField(models.CharField(max_length=40), default=list, blank=True)

    class Meta:
        ordering = ["version", "position"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "version", "key"], name="step_key_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.type})"


class EnrollmentStatus(models.TextChoices):
    ACTIVE = "ACTIVE", "Active"
    COMPLETED = "COMPLETED", "Completed"
    EXITED = "EXITED", "Exited"
    CONVERTED = "CONVERTED", "Converted (reached the goal)"
    FAILED = "FAILED", "Failed"


class Enrollment(TenantOwnedModel):
    """One person's pass through a journey: where they are (``step_key`` on ``version``),
    when the engine looks at them next (``due_at``), and how it ended. At most one ACTIVE
    enrollment per person and journey (partial unique index); a trigger key (the event id,
    segment change, date) enrolls once."""

    id = models.BigAutoField(primary_key=True)
    tenant = tenant_led_key()
    # Not indexed alone: the enrollments of a journey are found by tenant and journey.
    journey = models.ForeignKey(
        Journey, on_delete=models.CASCADE, related_name="enrollments", db_index=False
    )
    version = models.ForeignKey(JourneyVersion, on_delete=models.PROTECT, related_name="+")
    customer = models.ForeignKey(
        "customers.CustomerProfile", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    step_key = models.CharField(max_length=40)
    visit = models.PositiveIntegerField(default=1, help_text="Number of the current visit.")
    step_entered_at = models.DateTimeField()
    status = models.CharField(
        max_length=9, choices=EnrollmentStatus.choices, default=EnrollmentStatus.ACTIVE
    )
    due_at = models.DateTimeField(null=True, blank=True)
    wait_until = models.DateTimeField(
        null=True, blank=True, help_text="At a WAIT step: when the wait (or its timeout) ends."
    )
    trigger_key = models.CharField(max_length=200, null=True, blank=True)
    holdout = models.BooleanField(default=False)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True, default="")
    exit_reason = models.CharField(max_length=40, blank=True, default="")
    entered_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-entered_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "journey", "customer"],
                condition=models.Q(status="ACTIVE"),
                name="enrollment_one_active_uniq",
            ),
            models.UniqueConstraint(
                fields=["tenant", "journey", "trigger_key"], name="enrollment_trigger_uniq"
            ),
        ]
        indexes = [
            # The sweep: due ACTIVE enrollments.
            models.Index(
                fields=["due_at"], condition=models.Q(status="ACTIVE"), name="enrollment_due_idx"
            ),
            models.Index(fields=["tenant", "customer"], name="enrollment_customer_idx"),
            # Covering the journey's figures (``automation.analytics``): counts by status,
            # holdout, exit reason and step, and the time to goal of the converted, are
            # index-only scans (no heap visits for a journey of a million).
            models.Index(
                fields=["tenant", "journey", "status", "holdout", "exit_reason", "step_key"],
                include=["entered_at", "ended_at"],
                name="enrollment_journey_idx",
            ),
        ]


class EnrollmentStep(TenantOwnedModel):
    """One visit of an enrollment to a step (unique per enrollment and visit number), written
    in the same transaction as the move: the analytics and the person's trail read these."""

    id = models.BigAutoField(primary_key=True)
    tenant = tenant_led_key()
    enrollment = models.ForeignKey(Enrollment, on_delete=models.CASCADE, related_name="trail")
    visit = models.PositiveIntegerField()
    step_key = models.CharField(max_length=40)
    entered_at = models.DateTimeField()
    left_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=60, blank=True, default="")

    class Meta:
        ordering = ["enrollment", "visit"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "enrollment", "visit"], name="enrollmentstep_visit_uniq"
            ),
        ]


class StepStat(TenantOwnedModel):
    """What the history rows of a journey add up to, per step key, UTC day and outcome:
    ``outcome`` empty: ``visits`` begun that day and ``people`` (visits that were the
    enrollment's first to that key); otherwise ``visits`` that ended that day with that
    outcome. Rows with an empty ``step_key`` count the journey's enrollments (``visits``)
    by status (``outcome``: ``ACTIVE``, ``COMPLETED``, ``CONVERTED``, ``FAILED``,
    ``EXITED:<reason>``) and ``holdout``. Rows are deltas, written in the same statement
    as the rows they count (append-only, so concurrent sweeps never wait on one counter
    row) and rolled up by the beat (``rolled``). ``automation.stats`` recounts them from
    the history and the enrollments at any time: they are a sum of those rows, not a
    counter kept on the side."""

    id = models.BigAutoField(primary_key=True)
    tenant = tenant_led_key()
    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="+", db_index=False)
    step_key = models.CharField(max_length=40)
    day = models.DateField()
    outcome = models.CharField(max_length=60, blank=True, default="")
    holdout = models.BooleanField(default=False)
    visits = models.IntegerField(default=0)
    people = models.IntegerField(default=0)
    rolled = models.BooleanField(default=False)

    class Meta:
        indexes = [
            models.Index(
                fields=["tenant", "journey", "step_key", "day", "outcome"],
                name="stepstat_key_idx",
            ),
            models.Index(
                fields=["id"], condition=models.Q(rolled=False), name="stepstat_fresh_idx"
            ),
        ]
