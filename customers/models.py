"""Customer profiles and the identifiers that resolve to them."""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.db import models
from django.db.models.functions import Upper

from crm.tenancy import (
    TenantManager,
    TenantOwnedModel,
    TenantQuerySet,
    TimestampedModel,
    tenant_led_key,
)


class ProfileStatus(models.TextChoices):
    ACTIVE = "ACTIVE", "Active"
    INACTIVE = "INACTIVE", "Inactive"
    MERGED = "MERGED", "Merged"
    ERASED = "ERASED", "Erased"


# A merged profile lives on in its winner and an erased one is gone: neither is ever read,
# changed, resolved or written to again (only listed when a caller asks for them by status).
LIVE_STATUSES: tuple[str, ...] = (ProfileStatus.ACTIVE, ProfileStatus.INACTIVE)


class CustomerProfileQuerySet(TenantQuerySet):
    def live(self) -> CustomerProfileQuerySet:
        """Profiles that may be read and written: not merged, not erased, not deleted. Every
        detail route and every write goes through this one rule."""
        return self.filter(status__in=LIVE_STATUSES, deleted_at__isnull=True)


class CustomerProfileManager(TenantManager.from_queryset(CustomerProfileQuerySet)):  # type: ignore[misc]
    pass


class LifecycleStage(models.TextChoices):
    SUBSCRIBER = "SUBSCRIBER", "Subscriber"
    LEAD = "LEAD", "Lead"
    VISITOR = "VISITOR", "Visitor (plays, not a member)"
    MEMBER = "MEMBER", "Member"
    LAPSED = "LAPSED", "Lapsed member"
    CHURNED = "CHURNED", "Churned"


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    PUSH = "push", "Push"
    WHATSAPP = "whatsapp", "WhatsApp"


CHANNELS: tuple[str, ...] = tuple(Channel.values)
# The profile column that addresses each channel: the one list every app derives from.
CHANNEL_ADDRESS_COLUMN: dict[str, str] = {
    Channel.EMAIL: "email",
    Channel.SMS: "phone",
    Channel.PUSH: "messaging_contact_id",
    Channel.WHATSAPP: "phone",
}

# Field groups shared by the admin, the API and the services.
IDENTITY_FIELDS: tuple[str, ...] = (
    "auth_user_id",
    "email",
    "phone",
    "scl_member_id",
    "teetime_player_id",
    "messaging_contact_id",
)
CONSENT_FIELDS: tuple[str, ...] = tuple(
    f"{channel}_{suffix}"
    for channel in CHANNELS
    for suffix in ("opt_in", "consent_at", "consent_source")
)
METRIC_FIELDS: tuple[str, ...] = (
    "last_activity_at",
    "last_activity_type",
    "activity_count_30d",
    "lifetime_value_minor",
    "currency",
    "engagement_score",
    "engagement_scored_at",
    "churn_risk",
    "churn_scored_at",
)
MEMBERSHIP_FIELDS: tuple[str, ...] = (
    "membership_type",
    "membership_status",
    "membership_joined_on",
    "membership_renewal_on",
    "membership_updated_at",
    "handicap_index",
    "handicap_updated_at",
)


class CustomerProfile(TenantOwnedModel):
    """One person known to a tenant: identity links, consent, metrics, membership, golf.

    Every index costs each new profile an entry (the events' new people, the MCA v1 import's
    hundreds of thousands), so each has readers no other index serves: the tenant's own
    foreign key has no index (every lookup index leads with the tenant); a home club's
    profiles are found by the club's id alone (unique across tenants, so a tenant prefix
    would add nothing, and club deletion's ``SET NULL`` needs it); ``merged_into`` is indexed
    only where set (merged profiles are few; ``merged_into = x`` implies it is set)."""

    tenant = tenant_led_key()
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)

    # Identity links (current values; every value ever held is an IdentityAlias).
    auth_user_id = models.CharField(max_length=64, blank=True, null=True)
    email = models.CharField(max_length=254, blank=True, null=True)
    phone = models.CharField(max_length=20, blank=True, null=True, help_text="E.164")
    scl_member_id = models.CharField(max_length=64, blank=True, null=True)
    teetime_player_id = models.CharField(max_length=64, blank=True, null=True)
    messaging_contact_id = models.CharField(max_length=64, blank=True, null=True)
    external_ids = models.JSONField(default=dict, blank=True)

    first_name = models.CharField(max_length=100, blank=True, default="")
    last_name = models.CharField(max_length=100, blank=True, default="")
    date_of_birth = models.DateField(null=True, blank=True)
    home_club = models.ForeignKey(
        "crm.Club", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    status = models.CharField(
        max_length=10, choices=ProfileStatus.choices, default=ProfileStatus.ACTIVE
    )
    lifecycle_stage = models.CharField(
        max_length=12, choices=LifecycleStage.choices, default=LifecycleStage.SUBSCRIBER
    )
    tags = ArrayField(models.CharField(max_length=64), default=list, blank=True)

    # Consent per channel: the decision, when it was made and by which source.
    email_opt_in = models.BooleanField(default=False)
    email_consent_at = models.DateTimeField(null=True, blank=True)
    email_consent_source = models.CharField(max_length=64, blank=True, default="")
    sms_opt_in = models.BooleanField(default=False)
    sms_consent_at = models.DateTimeField(null=True, blank=True)
    sms_consent_source = models.CharField(max_length=64, blank=True, default="")
    push_opt_in = models.BooleanField(default=False)
    push_consent_at = models.DateTimeField(null=True, blank=True)
    push_consent_source = models.CharField(max_length=64, blank=True, default="")
    whatsapp_opt_in = models.BooleanField(default=False)
    whatsapp_consent_at = models.DateTimeField(null=True, blank=True)
    whatsapp_consent_source = models.CharField(max_length=64, blank=True, default="")

    # Activity metrics.
    last_activity_at = models.DateTimeField(null=True, blank=True)
    last_activity_type = models.CharField(max_length=64, blank=True, default="")
    activity_count_30d = models.PositiveIntegerField(default=0)

    # Value, in minor units of ``currency`` (the tenant's).
    lifetime_value_minor = models.BigIntegerField(default=0)
    currency = models.CharField(max_length=3, blank=True, default="")

    # Scores.
    engagement_score = models.PositiveSmallIntegerField(null=True, blank=True)
    engagement_scored_at = models.DateTimeField(null=True, blank=True)
    churn_risk = models.PositiveSmallIntegerField(null=True, blank=True)
    churn_scored_at = models.DateTimeField(null=True, blank=True)

    # Membership (from SCL) and golf (from TeeTime).
    membership_type = models.CharField(max_length=64, blank=True, default="")
    membership_status = models.CharField(max_length=32, blank=True, default="")
    membership_joined_on = models.DateField(null=True, blank=True)
    membership_renewal_on = models.DateField(null=True, blank=True)
    # When SCL last told us about the membership: older events do not overwrite newer data.
    membership_updated_at = models.DateTimeField(null=True, blank=True)
    handicap_index = models.DecimalField(max_digits=4, decimal_places=1, null=True, blank=True)
    handicap_updated_at = models.DateTimeField(null=True, blank=True)

    merged_into = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects: ClassVar[CustomerProfileManager] = CustomerProfileManager()

    @property
    def is_live(self) -> bool:
        """The row-level form of ``CustomerProfileQuerySet.live()`` (same rule)."""
        return self.status in LIVE_STATUSES and self.deleted_at is None

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["tenant", "-created_at", "-id"], name="profile_tenant_created_idx"
            ),
            # No index on ``updated_at`` here (``ProfileUpdate`` is its index): with one, a
            # change of profile data could never be a HOT update.
            models.Index(fields=["tenant", "email"], name="profile_tenant_email_idx"),
            models.Index(fields=["tenant", "phone"], name="profile_tenant_phone_idx"),
            models.Index(
                fields=["tenant", "status", "lifecycle_stage"], name="profile_tenant_status_idx"
            ),
            models.Index(
                fields=["merged_into"],
                condition=models.Q(merged_into__isnull=False),
                name="profile_merged_into_idx",
            ),
            # Name / email search (`q`) with pg_trgm, fast on a million rows.
            GinIndex(OpClass(Upper("email"), name="gin_trgm_ops"), name="profile_email_trgm_idx"),
            GinIndex(
                OpClass(Upper("last_name"), name="gin_trgm_ops"), name="profile_lastname_trgm_idx"
            ),
            GinIndex(
                OpClass(Upper("first_name"), name="gin_trgm_ops"),
                name="profile_firstname_trgm_idx",
            ),
            GinIndex(fields=["tags"], name="profile_tags_idx"),
        ]

    def __str__(self) -> str:
        name = f"{self.first_name} {self.last_name}".strip()
        return name or self.email or self.phone or str(self.pk)

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class ProfileUpdate(models.Model):
    """When profiles' data changed, indexed by time: what ``updated_since`` reads.

    A log kept by statement triggers on the profile table (migrations 0009, 0012): every
    statement that inserts profiles, or moves a profile's ``updated_at``, appends
    ``(tenant, updated_at, profile)`` here, whatever the writer (the event pipeline's
    set-wise UPDATE, the ORM, COPY, raw SQL). The profile table itself has no index on
    ``updated_at``, so a change of profile data (a consent, a handicap, a payment) is a HOT
    update when the page has room; and an append here lands at the right edge of the key
    (the upsert of one row per profile it replaced was a non-HOT update on a page of its
    own). A profile's older rows are superseded: readers compare the profile's own
    ``updated_at``, and the nightly retention step ``profile_updates`` deletes them
    (``customers.retention.profile_updates_prune``); a deleted profile's current row goes
    with it. No foreign-key constraints (the triggers keep the rows in step; Django's
    deletes need not visit this table)."""

    pk = models.CompositePrimaryKey("tenant", "updated_at", "customer")
    tenant = models.ForeignKey(
        "crm.Tenant",
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    customer = models.ForeignKey(
        CustomerProfile,
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    updated_at = models.DateTimeField()

    objects = TenantManager()

    class Meta:
        # The key is the time index: (tenant, updated_at, customer).
        ordering = ["tenant", "updated_at", "customer"]

    def __str__(self) -> str:
        return f"{self.customer_id} updated at {self.updated_at:%Y-%m-%d %H:%M:%S}"


class AliasKind(models.TextChoices):
    AUTH_USER = "auth_user", "Auth user id"
    SCL_MEMBER = "scl_member", "SCL member id"
    EMAIL = "email", "Email"
    PHONE = "phone", "Phone (E.164)"
    TEETIME_PLAYER = "teetime_player", "TeeTime player id"
    MESSAGING_CONTACT = "messaging_contact", "Messaging contact id"
    EXTERNAL = "external", "External id (system:id)"


class IdentityAlias(TenantOwnedModel):
    """An identifier a profile has (or ever had), unique per tenant. Merges move aliases to
    the surviving profile, so old identifiers keep resolving.

    Three indexes, each with readers: the key, the unique ``(tenant, kind, value)`` (every
    lookup, and a tenant's rows by its leading column) and ``profile_id`` (a profile's
    aliases; a profile's id is unique across tenants, so a tenant prefix would add nothing).
    A tenant-only index and ``(tenant, profile)`` duplicated those two and cost every insert
    (the events' new people, the MCA v1 import) two more index entries."""

    tenant = tenant_led_key()
    kind = models.CharField(max_length=20, choices=AliasKind.choices)
    value = models.CharField(max_length=320)
    profile = models.ForeignKey(CustomerProfile, on_delete=models.CASCADE, related_name="aliases")
    source = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["kind", "value"]
        verbose_name_plural = "identity aliases"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "kind", "value"], name="alias_tenant_kind_value_uniq"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind}={self.value}"


class SuggestionStatus(models.TextChoices):
    PENDING = "PENDING", "Pending"
    MERGED = "MERGED", "Merged"
    DISMISSED = "DISMISSED", "Dismissed"


class MergeSuggestion(TenantOwnedModel):
    """Two profiles that identity hints tied together. Staff (or a service) decide."""

    tenant = models.ForeignKey("crm.Tenant", on_delete=models.CASCADE, related_name="+")
    profile = models.ForeignKey(CustomerProfile, on_delete=models.CASCADE, related_name="+")
    candidate = models.ForeignKey(CustomerProfile, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=255)
    evidence = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=10, choices=SuggestionStatus.choices, default=SuggestionStatus.PENDING
    )
    decided_by = models.CharField(max_length=150, blank=True, default="")
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # One open suggestion per pair (stored with profile < candidate).
            models.UniqueConstraint(
                fields=["tenant", "profile", "candidate"],
                condition=models.Q(status="PENDING"),
                name="suggestion_pending_pair_uniq",
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "status", "-created_at"], name="suggestion_status_idx")
        ]

    def __str__(self) -> str:
        return f"{self.profile_id} ~ {self.candidate_id} ({self.status})"


class ProfileMerge(TenantOwnedModel):
    """Audit of a merge: who merged which profile into which, why, and the loser as it was."""

    tenant = models.ForeignKey("crm.Tenant", on_delete=models.CASCADE, related_name="+")
    winner = models.ForeignKey(CustomerProfile, on_delete=models.PROTECT, related_name="+")
    loser = models.ForeignKey(CustomerProfile, on_delete=models.PROTECT, related_name="+")
    loser_snapshot = models.JSONField()
    moved = models.JSONField(default=dict, help_text="Rows moved per kind.")
    actor = models.CharField(max_length=150)
    reason = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "winner"], name="merge_tenant_winner_idx")]

    def __str__(self) -> str:
        return f"{self.loser_id} → {self.winner_id}"


# ----------------------------------------------------------------------------- events


class SyncStatus(models.TextChoices):
    PENDING = "PENDING", "Pending"
    PROCESSED = "PROCESSED", "Processed"
    FAILED = "FAILED", "Failed"


class SyncLogEntry(TenantOwnedModel):
    """The inbox: one row per event received, written before anything is queued.

    Unique per (tenant, source, event id), so a replayed event is recognised. ``PENDING``
    rows are processed by ``customers.process_events``; the sweep re-queues those whose
    message was lost; a poison event ends ``FAILED`` with its error after bounded attempts.
    """

    id = models.BigAutoField(primary_key=True)
    tenant = tenant_led_key()
    source = models.CharField(max_length=32)
    event_id = models.CharField(max_length=128)
    type = models.CharField(max_length=100)
    occurred_at = models.DateTimeField()
    identity = models.JSONField(default=dict, blank=True, help_text="Normalised hints.")
    payload = models.JSONField(default=dict, blank=True)
    via = models.CharField(max_length=10, default="api", help_text="api or queue")
    status = models.CharField(max_length=10, choices=SyncStatus.choices, default=SyncStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    queued_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    profile = models.ForeignKey(
        CustomerProfile,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "sync log entry"
        verbose_name_plural = "sync log"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "source", "event_id"], name="synclog_tenant_source_event_uniq"
            ),
        ]
        indexes = [
            models.Index(
                fields=["tenant", "-created_at", "-id"], name="synclog_tenant_created_idx"
            ),
            models.Index(fields=["tenant", "status", "-created_at"], name="synclog_status_idx"),
            # A person's events: the subject-access export and erasure.
            models.Index(
                fields=["tenant", "profile"],
                condition=models.Q(profile__isnull=False),
                name="synclog_profile_idx",
            ),
            # The sweep's work list: small, because processed rows leave it.
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status="PENDING"),
                name="synclog_pending_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source}:{self.event_id} ({self.status})"


class Activity(TenantOwnedModel):
    """Something a customer did or that happened to them: the timeline.

    Unique per (tenant, source service, source event id), so an event never makes two.
    """

    id = models.BigAutoField(primary_key=True)
    # No single-column indexes: the composite ones below start with tenant and customer.
    tenant = tenant_led_key()
    customer = models.ForeignKey(
        CustomerProfile, on_delete=models.CASCADE, related_name="activities", db_index=False
    )
    type = models.CharField(max_length=100)
    category = models.CharField(max_length=12)
    title = models.CharField(max_length=255)
    metadata = models.JSONField(default=dict, blank=True)
    source_service = models.CharField(max_length=32)
    source_id = models.CharField(max_length=128, blank=True, default="")
    source_event_id = models.CharField(max_length=128)
    occurred_at = models.DateTimeField()

    class Meta:
        ordering = ["-occurred_at", "-id"]
        verbose_name_plural = "activities"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "source_service", "source_event_id"],
                name="activity_source_event_uniq",
            ),
        ]
        indexes = [
            # The timeline: keyset on (occurred_at, id) per customer.
            models.Index(
                fields=["tenant", "customer", "-occurred_at", "-id"], name="activity_timeline_idx"
            ),
            # Set-wise metrics and segment rules ("an activity of type X in the last N days").
            models.Index(fields=["tenant", "type", "-occurred_at"], name="activity_type_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type} at {self.occurred_at:%Y-%m-%d %H:%M}"


class NoteType(models.TextChoices):
    GENERAL = "GENERAL", "General"
    CALL = "CALL", "Call"
    MEETING = "MEETING", "Meeting"
    COMPLAINT = "COMPLAINT", "Complaint"
    FOLLOW_UP = "FOLLOW_UP", "Follow-up"


class Note(TenantOwnedModel):
    """A note staff or a service wrote about a customer. A private note is visible only to
    its author (``author_ref``: ``user:<id>`` for staff, the credential for API callers)."""

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey("crm.Tenant", on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey(CustomerProfile, on_delete=models.CASCADE, related_name="notes")
    type = models.CharField(max_length=10, choices=NoteType.choices, default=NoteType.GENERAL)
    body = models.TextField()
    is_pinned = models.BooleanField(default=False)
    is_private = models.BooleanField(default=False)
    author_ref = models.CharField(max_length=150)
    author_name = models.CharField(max_length=150)
    edited_by = models.CharField(max_length=150, blank=True, default="")
    edited_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-is_pinned", "-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["tenant", "customer", "-is_pinned", "-created_at"],
                name="note_customer_idx",
                condition=models.Q(deleted_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_type_display()} note on {self.customer_id}"


class NoteRevision(TenantOwnedModel):
    """A note's text before an edit: who changed it and when."""

    tenant = models.ForeignKey("crm.Tenant", on_delete=models.CASCADE, related_name="+")
    note = models.ForeignKey(Note, on_delete=models.CASCADE, related_name="revisions")
    body = models.TextField()
    type = models.CharField(max_length=10, choices=NoteType.choices)
    edited_by = models.CharField(max_length=150)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "note"], name="noterevision_note_idx")]


class ConsentRecord(TenantOwnedModel):
    """Append-only history of consent decisions applied to a profile, per channel: what was
    decided, when, by which source (an event, an unsubscribe link, a complaint...) and the
    evidence (event or message id). Never updated or deleted by the application."""

    id = models.BigAutoField(primary_key=True)
    tenant = tenant_led_key()
    customer = models.ForeignKey(
        CustomerProfile, on_delete=models.CASCADE, related_name="consent_records", db_index=False
    )
    channel = models.CharField(max_length=10, choices=Channel.choices)
    opt_in = models.BooleanField()
    source = models.CharField(max_length=64)
    occurred_at = models.DateTimeField()
    evidence = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [
            models.Index(
                fields=["tenant", "customer", "-occurred_at"], name="consent_customer_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.channel} {'in' if self.opt_in else 'out'} ({self.source})"


class Erasure(TenantOwnedModel):
    """Audit of an erasure: which profile (its id only), who asked, when, and what was
    removed. Holds no personal data."""

    tenant = models.ForeignKey("crm.Tenant", on_delete=models.CASCADE, related_name="+")
    customer_id = models.UUIDField()
    actor = models.CharField(max_length=150)
    reason = models.CharField(max_length=255, blank=True, default="")
    scope = models.JSONField(default=dict)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "customer_id"], name="erasure_customer_idx")]

    def __str__(self) -> str:
        return f"erasure of {self.customer_id}"


class SavedFilter(TimestampedModel):
    """A staff member's named view of the customer list: the list's query string (filters,
    search, ordering). Kept per user and tenant (``tenant`` empty: all the user's tenants,
    as for superusers and staff of several tenants)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    tenant = models.ForeignKey(
        "crm.Tenant", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    name = models.CharField(max_length=80)
    query = models.CharField(max_length=1000, blank=True, default="")

    objects = TenantManager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "tenant", "name"],
                name="savedfilter_user_tenant_name_uniq",
                nulls_distinct=False,
            ),
        ]

    def __str__(self) -> str:
        return self.name
