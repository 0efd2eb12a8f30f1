"""Models of the marketing app: segments, templates, campaigns and their runs, messages,
interactions and suppressions."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.postgres.fields import ArrayField
from django.db import models

from crm.tenancy import TenantManager, TenantOwnedModel, tenant_led_key
from customers.models import Channel


def _created_by() -> models.ForeignKey:
    return models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="+",
        help_text="The staff user who created it (empty when created through the API).",
    )


def _created_by_label() -> models.CharField:
    return models.CharField(
        max_length=150,
        blank=True,
        default="",
        editable=False,
        help_text="Who created it: the staff user's name, or the API credential "
        "(api_key:<key prefix> or jwt:<subject>).",
    )


def created_by_fields(actor: Any) -> dict[str, Any]:
    """``created_by`` and ``created_by_label`` of a new segment or campaign: a staff user
    (admin) is linked and named; an API caller has no user and is named by its credential
    (``api_key:<key prefix>`` or ``jwt:<sub>``). The label stays when the user is deleted."""
    if actor is None:
        return {}
    if isinstance(actor, AbstractBaseUser):
        return {"created_by": actor, "created_by_label": actor.get_username()[:150]}
    return {"created_by": None, "created_by_label": str(actor)[:150]}


class SegmentType(models.TextChoices):
    DYNAMIC = "DYNAMIC", "Dynamic (rules)"
    STATIC = "STATIC", "Static (chosen people)"


class RefreshFrequency(models.TextChoices):
    MANUAL = "MANUAL", "Manual"
    HOURLY = "HOURLY", "Hourly"
    DAILY = "DAILY", "Daily"


class Segment(TenantOwnedModel):
    """A set of customers: by rules (dynamic, refreshed set-wise) or chosen (static)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("crm.Tenant", on_delete=models.CASCADE, related_name="+")
    club = models.ForeignKey(
        "crm.Club",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The club whose staff own it (not a filter: add a home-club rule for that).",
    )
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True, default="")
    type = models.CharField(max_length=8, choices=SegmentType.choices, default=SegmentType.DYNAMIC)
    criteria = models.JSONField(default=dict, blank=True)
    refresh_frequency = models.CharField(
        max_length=8, choices=RefreshFrequency.choices, default=RefreshFrequency.DAILY
    )
    member_count = models.PositiveIntegerField(default=0)
    last_refreshed_at = models.DateTimeField(null=True, blank=True)
    last_refresh_ms = models.PositiveIntegerField(null=True, blank=True)
    next_refresh_at = models.DateTimeField(null=True, blank=True)
    messaging_segment_id = models.CharField(max_length=64, blank=True, default="")
    messaging_synced_at = models.DateTimeField(null=True, blank=True)
    # What the last refresh of a dynamic segment saw, for the next one to be incremental:
    # {"fingerprint": criteria/type/timezone hash, "snapshot": pg_current_snapshot() taken
    # before the rules ran, its "xmin", "xid": the refresh's own transaction, "now": the
    # refresh's clock}. Empty: the next refresh is full.
    refresh_state = models.JSONField(default=dict, blank=True, editable=False)
    created_by = _created_by()
    created_by_label = _created_by_label()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="segment_tenant_name_uniq"),
        ]
        indexes = [
            models.Index(
                fields=["next_refresh_at"],
                condition=models.Q(type="DYNAMIC") & ~models.Q(refresh_frequency="MANUAL"),
                name="segment_due_idx",
            ),
        ]

    def __str__(self) -> str:
        return self.name


# Memberships and changes are derived (a refresh recomputes them) and written hundreds of
# thousands at a time, so they carry no database foreign-key constraints: the deferred checks
# of a 300,000-member refresh cost more than the refresh. Django's on_delete still cascades.
_DERIVED: dict = {"db_index": False, "db_constraint": False}


class SegmentMembership(TenantOwnedModel):
    """A customer in a segment (``created_at``: since when).

    Its one index is the primary key ``(tenant, segment, customer)`` (migrations 0012 and
    0013): a refresh writes one index entry per member. A customer's memberships are asked
    segment by segment (``memberships_of``: one probe of the key per segment of the tenant),
    not through an index keyed by customer."""

    pk = models.CompositePrimaryKey("tenant", "segment", "customer")
    tenant = models.ForeignKey("crm.Tenant", on_delete=models.CASCADE, related_name="+", **_DERIVED)
    segment = models.ForeignKey(
        Segment, on_delete=models.CASCADE, related_name="memberships", **_DERIVED
    )
    customer = models.ForeignKey(
        "customers.CustomerProfile", on_delete=models.CASCADE, related_name="+", **_DERIVED
    )


class ProfileChange(models.Model):
    """Which transactions wrote which profiles: a log of ``(tenant, xid, customer)``
    (``xid``: the writer's 64-bit transaction id, ``pg_current_xact_id()``), appended by a
    statement trigger on the profile table (migrations 0010 and 0012), so every writer
    counts: the event pipeline's set-wise updates, merges, imports, scores, the admin. An
    incremental segment refresh re-evaluates exactly the profiles written by a transaction
    its previous snapshot could not see.

    Append-only, keyed by ``(tenant, xid, customer)``: a write appends at the right edge of
    the one index (transaction ids grow), where an upsert of one row per profile rewrote a
    row and two index entries on pages of their own for every profile of every batch (the
    largest writer of the event pipeline after a checkpoint). The rows no refresh can need
    any more (older than every segment's last snapshot) are deleted by
    ``marketing.segments.profile_changes_prune`` after each refresh and nightly. No FK
    constraints (the trigger stays cheap, and deletes of profiles are not held up)."""

    pk = models.CompositePrimaryKey("tenant", "xid", "customer")
    tenant = models.ForeignKey(
        "crm.Tenant",
        on_delete=models.CASCADE,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    xid = models.BigIntegerField()
    customer = models.ForeignKey(
        "customers.CustomerProfile",
        on_delete=models.CASCADE,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )

    objects = TenantManager()

    def __str__(self) -> str:
        return f"{self.customer_id} written by transaction {self.xid}"


class ChangeKind(models.TextChoices):
    ENTERED = "ENTERED", "Entered"
    LEFT = "LEFT", "Left"


class SegmentChange(TenantOwnedModel):
    """Who entered or left a segment, and when: what segment-entry journeys react to."""

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey("crm.Tenant", on_delete=models.CASCADE, related_name="+", **_DERIVED)
    segment = models.ForeignKey(
        Segment, on_delete=models.CASCADE, related_name="changes", **_DERIVED
    )
    customer = models.ForeignKey(
        "customers.CustomerProfile", on_delete=models.CASCADE, related_name="+", **_DERIVED
    )
    kind = models.CharField(max_length=7, choices=ChangeKind.choices)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # Ascending: a refresh appends its rows at the end of the segment's range (a
            # descending index took each new row at the start of it, splitting pages in
            # half); newest-first reads walk it backwards.
            models.Index(
                fields=["tenant", "segment", "created_at", "id"], name="segmentchange_idx"
            ),
            models.Index(fields=["tenant", "customer"], name="segmentchange_customer_idx"),
        ]


# ----------------------------------------------------------------------------- templates

CHANNEL_CHOICES = Channel.choices


class MessageTemplate(TenantOwnedModel):
    """A message for one channel, written in a restricted Django template language with a fixed
    context (see docs/campaigns.md). Email has a subject, HTML and text; the other channels
    a body."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("crm.Tenant", on_delete=models.CASCADE, related_name="+")
    club = models.ForeignKey(
        "crm.Club", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    name = models.CharField(max_length=120)
    channel = models.CharField(max_length=10, choices=CHANNEL_CHOICES)
    subject = models.CharField(max_length=200, blank=True, default="")
    html_body = models.TextField(blank=True, default="")
    text_body = models.TextField(
        blank=True, default="", help_text="Plain-text email part (derived from HTML if empty)."
    )
    body = models.TextField(blank=True, default="", help_text="SMS, push or WhatsApp text.")

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="template_tenant_name_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.channel})"


# ----------------------------------------------------------------------------- campaigns


class CampaignType(models.TextChoices):
    ONE_TIME = "ONE_TIME", "One-time"
    RECURRING = "RECURRING", "Recurring"


class CampaignStatus(models.TextChoices):
    DRAFT = "DRAFT", "Draft"
    SCHEDULED = "SCHEDULED", "Scheduled"
    SENDING = "SENDING", "Sending"
    COMPLETED = "COMPLETED", "Completed"
    PAUSED = "PAUSED", "Paused"
    CANCELLED = "CANCELLED", "Cancelled"
    FAILED = "FAILED", "Failed"


class Campaign(TenantOwnedModel):
    """A message to a segment on one or more channels, once or on a schedule."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("crm.Tenant", on_delete=models.CASCADE, related_name="+")
    club = models.ForeignKey(
        "crm.Club", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    name = models.CharField(max_length=150)
    description = models.TextField(blank=True, default="")
    type = models.CharField(
        max_length=10, choices=CampaignType.choices, default=CampaignType.ONE_TIME
    )
    cron = models.CharField(
        max_length=100, blank=True, default="", help_text="Recurring: e.g. 0 9 * * 1"
    )
    timezone = models.CharField(max_length=64, blank=True, default="")
    status = models.CharField(
        max_length=10, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT
    )
    segment = models.ForeignKey(
        Segment, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # Message channels, plus the channels other apps register (crm.registry
    # register_campaign_channel): "social" posts on the club's accounts.
    channels = ArrayField(
        models.CharField(max_length=10, choices=[*CHANNEL_CHOICES, ("social", "Social posts")]),
        default=list,
    )
    social_text = models.TextField(
        blank=True, default="", help_text="Social channel: the post's text."
    )
    social_link = models.URLField(max_length=500, blank=True, default="")
    email_template = models.ForeignKey(
        MessageTemplate, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    sms_template = models.ForeignKey(
        MessageTemplate, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    push_template = models.ForeignKey(
        MessageTemplate, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    whatsapp_template = models.ForeignKey(
        MessageTemplate, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    scheduled_at = models.DateTimeField(null=True, blank=True, help_text="One-time: when.")
    next_run_at = models.DateTimeField(null=True, blank=True)
    ab_test = models.JSONField(default=dict, blank=True)
    ab_winner = models.CharField(max_length=1, blank=True, default="")
    target_count = models.PositiveIntegerField(default=0)
    last_run_at = models.DateTimeField(null=True, blank=True)
    failure = models.CharField(max_length=500, blank=True, default="")
    created_by = _created_by()
    created_by_label = _created_by_label()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["next_run_at"],
                condition=models.Q(status="SCHEDULED"),
                name="campaign_due_idx",
            ),
            models.Index(fields=["tenant", "status"], name="campaign_tenant_status_idx"),
        ]

    def __str__(self) -> str:
        return self.name

    def template_for(self, channel: str) -> MessageTemplate | None:
        return getattr(self, f"{channel}_template", None)


class RunStatus(models.TextChoices):
    PREPARING = "PREPARING", "Preparing recipients"
    SENDING = "SENDING", "Sending"
    TESTING = "TESTING", "A/B test: waiting for a winner"
    COMPLETED = "COMPLETED", "Completed"
    CANCELLED = "CANCELLED", "Cancelled"


class CampaignRun(TenantOwnedModel):
    """One sending of a campaign (a recurring campaign has one per occurrence)."""

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey("crm.Tenant", on_delete=models.CASCADE, related_name="+")
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="runs")
    scheduled_for = models.DateTimeField()
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.PREPARING)
    targeted = models.PositiveIntegerField(default=0)
    test_ends_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-scheduled_for"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "campaign", "scheduled_for"], name="run_campaign_time_uniq"
            ),
        ]


class MessageStatus(models.TextChoices):
    QUEUED = "QUEUED", "Queued"
    SENDING = "SENDING", "Sending (claimed by a worker)"
    HELD = "HELD", "Held (A/B remainder)"
    SENT = "SENT", "Sent"
    FAILED = "FAILED", "Failed"
    SKIPPED = "SKIPPED", "Skipped"
    CANCELLED = "CANCELLED", "Cancelled"


class SkipReason(models.TextChoices):
    NO_CONSENT = "no_consent", "No consent"
    SUPPRESSED = "suppressed", "Suppressed"
    NO_ADDRESS = "no_address", "No usable address"
    FREQUENCY_CAP = "frequency_cap", "Frequency cap"
    QUIET_HOURS = "quiet_hours", "Quiet hours"


class Message(TenantOwnedModel):
    """One recipient on one channel of one campaign run, or of one journey step visit
    (``journey_step_id``: an ``automation.EnrollmentStep``, kept as a plain id so marketing
    never depends on automation): unique either way, so a retried, resumed or redelivered
    send never sends twice."""

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey(
        "crm.Tenant",
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    run = models.ForeignKey(
        CampaignRun,
        on_delete=models.CASCADE,
        related_name="messages",
        null=True,
        blank=True,
        db_index=False,
        db_constraint=False,
    )
    campaign = models.ForeignKey(
        Campaign,
        on_delete=models.CASCADE,
        related_name="+",
        null=True,
        blank=True,
        db_index=False,
        db_constraint=False,
    )
    journey_step_id = models.BigIntegerField(
        null=True, blank=True, help_text="The journey step visit (automation.EnrollmentStep)."
    )
    template = models.ForeignKey(
        MessageTemplate,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
        help_text="Journey messages: the template of the step (campaigns name theirs).",
    )
    customer = models.ForeignKey(
        "customers.CustomerProfile",
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    channel = models.CharField(max_length=10, choices=CHANNEL_CHOICES)
    address = models.CharField(max_length=254, blank=True, default="")
    variant = models.CharField(max_length=1, blank=True, default="")
    status = models.CharField(max_length=9, choices=MessageStatus.choices)
    skip_reason = models.CharField(
        max_length=14, choices=SkipReason.choices, blank=True, default=""
    )
    send_after = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True, default="")
    provider_id = models.CharField(max_length=200, blank=True, default="")
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "run", "customer", "channel"], name="message_run_customer_uniq"
            ),
            models.UniqueConstraint(
                fields=["tenant", "journey_step_id", "channel"],
                condition=models.Q(journey_step_id__isnull=False),
                name="message_journey_step_uniq",
            ),
            models.CheckConstraint(
                condition=models.Q(run__isnull=False, campaign__isnull=False)
                | models.Q(journey_step_id__isnull=False),
                name="message_run_or_journey_step",
            ),
        ]
        indexes = [
            # Senders claim a run's queued rows.
            models.Index(
                fields=["run", "id"],
                condition=models.Q(status="QUEUED"),
                name="message_queued_idx",
            ),
            # The journey sweep claims queued journey messages.
            models.Index(
                fields=["id"],
                condition=models.Q(status="QUEUED", journey_step_id__isnull=False),
                name="message_journey_queued_idx",
            ),
            models.Index(fields=["tenant", "campaign", "status"], name="message_campaign_idx"),
            # The minute sweep's rows in doubt (claimed by a worker that may have died).
            models.Index(
                fields=["send_after"],
                condition=models.Q(status="SENDING"),
                name="message_sending_idx",
            ),
            # A person's messages, whatever their state: the subject-access export, erasure.
            models.Index(fields=["tenant", "customer"], name="message_customer_idx"),
            # The frequency cap: marketing messages sent to a customer lately.
            models.Index(
                fields=["tenant", "customer", "sent_at"],
                condition=models.Q(status="SENT"),
                name="message_customer_sent_idx",
            ),
        ]


class Suppression(TenantOwnedModel):
    """An address that must not get marketing on a channel (unsubscribed, complained,
    bounced hard, or added by staff)."""

    tenant = models.ForeignKey("crm.Tenant", on_delete=models.CASCADE, related_name="+")
    channel = models.CharField(max_length=10, choices=CHANNEL_CHOICES)
    address = models.CharField(max_length=254)
    reason = models.CharField(max_length=20)
    source = models.CharField(max_length=100, blank=True, default="")

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "channel", "address"], name="suppression_address_uniq"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.channel}:{self.address} ({self.reason})"


class InteractionKind(models.TextChoices):
    DELIVERED = "DELIVERED", "Delivered"
    OPENED = "OPENED", "Opened"
    CLICKED = "CLICKED", "Clicked"
    BOUNCED = "BOUNCED", "Bounced"
    UNSUBSCRIBED = "UNSUBSCRIBED", "Unsubscribed"
    COMPLAINED = "COMPLAINED", "Complained"


class Interaction(TenantOwnedModel):
    """What a recipient did with a message; unique per (tenant, source, event id)."""

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey("crm.Tenant", on_delete=models.CASCADE, related_name="+")
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="+")
    campaign = models.ForeignKey(
        Campaign,
        on_delete=models.CASCADE,
        related_name="+",
        null=True,
        blank=True,
        db_index=False,
        help_text="Empty for a journey message.",
    )
    customer = models.ForeignKey(
        "customers.CustomerProfile", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    kind = models.CharField(max_length=12, choices=InteractionKind.choices)
    source = models.CharField(max_length=20)
    event_id = models.CharField(max_length=128)
    occurred_at = models.DateTimeField()
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "source", "event_id"], name="interaction_event_uniq"
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "campaign", "kind"], name="interaction_campaign_idx"),
            models.Index(fields=["tenant", "customer"], name="interaction_customer_idx"),
        ]


class InteractionDaily(TenantOwnedModel):
    """Interactions counted per day (UTC), campaign (empty for journey messages), channel
    and kind: what the retention job (``marketing.retention``) rolls raw interaction rows
    into once they are older than ``RETENTION_INTERACTION_MONTHS``. Holds no personal data.
    ``events`` counts every interaction recorded that day, repeats included."""

    id = models.BigAutoField(primary_key=True)
    tenant = tenant_led_key()
    day = models.DateField()
    campaign = models.ForeignKey(
        Campaign,
        on_delete=models.CASCADE,
        related_name="+",
        null=True,
        blank=True,
        db_index=False,
        db_constraint=False,
    )
    channel = models.CharField(max_length=10, choices=CHANNEL_CHOICES)
    kind = models.CharField(max_length=12, choices=InteractionKind.choices)
    events = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-day", "kind"]
        verbose_name_plural = "interactions per day"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "day", "campaign", "channel", "kind"],
                name="interactiondaily_uniq",
                nulls_distinct=False,
            ),
        ]
        indexes = [
            models.Index(
                fields=["tenant", "campaign", "kind"], name="interactiondaily_campaign_idx"
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.kind}: {self.events}"
