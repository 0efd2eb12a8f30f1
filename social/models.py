"""Models of the social app: connections to social accounts (with encrypted tokens), the
OAuth flows in progress, posts with one publication per target connection, and the
competition promotions with their reminders.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator
from django.db import models

from crm.fields import EncryptedTextField
from crm.tenancy import TenantOwnedModel


class Platform(models.TextChoices):
    FACEBOOK_PAGE = "FACEBOOK_PAGE", "Facebook Page"
    INSTAGRAM = "INSTAGRAM", "Instagram professional account"
    X = "X", "X"


class ConnectionStatus(models.TextChoices):
    ACTIVE = "ACTIVE", "Active"
    NEEDS_ATTENTION = "NEEDS_ATTENTION", "Needs attention (reconnect)"
    DISCONNECTED = "DISCONNECTED", "Disconnected"


class Connection(TenantOwnedModel):
    """One social account a club posts to. Tokens are encrypted at rest (``crm.fields``)
    and re-encrypted by ``rotate_encryption_keys``. For a Facebook Page and an Instagram
    account reached through its Page, ``access_token`` is the *Page* token, never the
    person's user token. ``status`` NEEDS_ATTENTION carries the platform's error in
    ``status_error``; the connection's publications wait until it is reconnected."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("crm.Tenant", on_delete=models.CASCADE, related_name="+")
    club = models.ForeignKey("crm.Club", on_delete=models.CASCADE, related_name="+")
    platform = models.CharField(max_length=16, choices=Platform.choices)
    account_id = models.CharField(max_length=64)
    account_name = models.CharField(max_length=200, blank=True, default="")
    account_type = models.CharField(max_length=40, blank=True, default="")
    access_token = EncryptedTextField(editable=False)
    refresh_token = EncryptedTextField(null=True, blank=True, editable=False)
    token_expires_at = models.DateTimeField(null=True, blank=True)
    scopes = models.JSONField(default=list, blank=True)
    status = models.CharField(
        max_length=16, choices=ConnectionStatus.choices, default=ConnectionStatus.ACTIVE
    )
    status_error = models.CharField(max_length=500, blank=True, default="")
    connected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="+",
    )
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_refreshed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["club", "platform", "account_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "platform", "account_id"], name="social_connection_account_uniq"
            ),
        ]
        indexes = [
            # The refresh sweep: active connections whose token expires soon.
            models.Index(
                fields=["token_expires_at"],
                name="social_conn_refresh_idx",
                condition=models.Q(status="ACTIVE", token_expires_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_platform_display()}: {self.account_name or self.account_id}"


class OAuthState(TenantOwnedModel):
    """A connect flow in progress: the single-use half of the OAuth ``state``. The signed
    state names this row's ``nonce``; the callback deletes the row (DELETE ... RETURNING) so
    a replayed state finds nothing. Bound to the staff user's session key; expires after
    ``SOCIAL_OAUTH_STATE_TTL`` seconds. The PKCE verifier never leaves the server."""

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey("crm.Tenant", on_delete=models.CASCADE, related_name="+")
    club = models.ForeignKey("crm.Club", on_delete=models.CASCADE, related_name="+")
    platform = models.CharField(max_length=16, choices=Platform.choices)
    nonce = models.CharField(max_length=64)
    session_key = models.CharField(max_length=64)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    code_verifier = EncryptedTextField()
    redirect_uri = models.CharField(max_length=500)
    expires_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "OAuth state"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "nonce"], name="social_oauthstate_nonce_uniq"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.platform} connect for {self.club_id}"


class PageChoice(TenantOwnedModel):
    """The Pages (and their linked Instagram accounts) a person manages, kept between the
    Facebook callback and staff picking one. ``pages`` is encrypted JSON: it holds each
    Page's token. Deleted when a Page is picked or after it expires."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("crm.Tenant", on_delete=models.CASCADE, related_name="+")
    club = models.ForeignKey("crm.Club", on_delete=models.CASCADE, related_name="+")
    platform = models.CharField(max_length=16, choices=Platform.choices)
    session_key = models.CharField(max_length=64)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    pages = EncryptedTextField()
    scopes = models.JSONField(default=list, blank=True)
    expires_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Page choice for {self.club_id}"


class Post(TenantOwnedModel):
    """What to say; ``Publication`` rows say where and when. Created by staff, by a
    campaign or by a promotion (``promotion``)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("crm.Tenant", on_delete=models.CASCADE, related_name="+")
    club = models.ForeignKey("crm.Club", on_delete=models.CASCADE, related_name="+")
    content = models.TextField(blank=True, default="")
    media_urls = models.JSONField(default=list, blank=True)
    link = models.URLField(max_length=500, blank=True, default="")
    hashtags = models.JSONField(default=list, blank=True)
    promotion = models.ForeignKey(
        "Promotion", on_delete=models.SET_NULL, null=True, blank=True, related_name="posts"
    )
    # Made by a campaign's run (the campaign's "social" channel): one post per run.
    campaign = models.ForeignKey(
        "marketing.Campaign", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    campaign_run = models.ForeignKey(
        "marketing.CampaignRun",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="+",
    )
    created_by_label = models.CharField(max_length=150, blank=True, default="", editable=False)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "-created_at"], name="social_post_tenant_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "campaign_run"],
                name="social_post_campaign_run_uniq",
                condition=models.Q(campaign_run__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return (self.content or self.link or str(self.pk))[:60]


class PublicationStatus(models.TextChoices):
    DRAFT = "DRAFT", "Draft"
    SCHEDULED = "SCHEDULED", "Scheduled"
    PUBLISHING = "PUBLISHING", "Publishing"
    PUBLISHED = "PUBLISHED", "Published"
    FAILED = "FAILED", "Failed"
    CANCELLED = "CANCELLED", "Cancelled"
    NEEDS_REVIEW = "NEEDS_REVIEW", "Held for review (outcome unknown)"


class Publication(TenantOwnedModel):
    """A post on one connection. The sweep claims SCHEDULED rows whose ``next_attempt_at``
    is due (SKIP LOCKED), commits PUBLISHING with ``attempts + 1`` *before* calling the
    platform, and records the outcome after. A PUBLISHING row found by a later sweep had
    its outcome lost (crash, timeout): it is checked on the platform, never re-posted
    blindly (see ``social.publishers``)."""

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey("crm.Tenant", on_delete=models.CASCADE, related_name="+")
    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="publications")
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(
        max_length=12, choices=PublicationStatus.choices, default=PublicationStatus.DRAFT
    )
    scheduled_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    # Single-use token of the current claim: the task that runs it swaps it for its own
    # before calling the platform, so a redelivered message (old token) does nothing.
    claim_id = models.UUIDField(null=True, blank=True, editable=False)
    published_at = models.DateTimeField(null=True, blank=True)
    platform_post_id = models.CharField(max_length=100, blank=True, default="")
    platform_url = models.URLField(max_length=500, blank=True, default="")
    container_id = models.CharField(
        max_length=100, blank=True, default="", help_text="Instagram media container."
    )
    error = models.CharField(max_length=500, blank=True, default="")
    attempts = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["scheduled_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "post", "connection"], name="social_publication_target_uniq"
            ),
        ]
        indexes = [
            # The due sweep: scheduled (or in-flight) rows by due time.
            models.Index(
                fields=["next_attempt_at"],
                name="social_pub_due_idx",
                condition=models.Q(status__in=["SCHEDULED", "PUBLISHING"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.post_id} → {self.connection_id} ({self.status})"


class ClubSocialSettings(TenantOwnedModel):
    """A club's promotion settings: whether published competitions are promoted by
    themselves, on which channels, to whom, with which templates and words, and at what
    local hour reminders go."""

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey("crm.Tenant", on_delete=models.CASCADE, related_name="+")
    club = models.ForeignKey("crm.Club", on_delete=models.CASCADE, related_name="+")
    auto_promote = models.BooleanField(default=False)
    channels = models.JSONField(
        default=list, blank=True, help_text='Any of "email", "sms", "social".'
    )
    segment = models.ForeignKey(
        "marketing.Segment", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    email_template = models.ForeignKey(
        "marketing.MessageTemplate",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    sms_template = models.ForeignKey(
        "marketing.MessageTemplate",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    social_text = models.TextField(
        blank=True,
        default="",
        help_text="Post text; {name}, {date} and {url} are filled in. Empty: a default.",
    )
    send_hour = models.PositiveSmallIntegerField(
        default=9, validators=[MaxValueValidator(23)], help_text="Local hour reminders go."
    )
    notify_on_cancel = models.BooleanField(
        default=False,
        help_text="When a promoted competition is cancelled, send its audience a short notice "
        "(email/SMS channels).",
    )

    class Meta:
        ordering = ["club"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "club"], name="social_club_settings_uniq"),
        ]
        verbose_name = "club social settings"
        verbose_name_plural = "club social settings"

    def __str__(self) -> str:
        return f"Social settings of {self.club_id}"


class PromotionStatus(models.TextChoices):
    ACTIVE = "ACTIVE", "Active"
    CANCELLED = "CANCELLED", "Cancelled"


class Promotion(TenantOwnedModel):
    """The promotion of one source (a competition): at most one per (tenant, source type,
    source id), so a repeated event finds the existing row."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("crm.Tenant", on_delete=models.CASCADE, related_name="+")
    club = models.ForeignKey("crm.Club", on_delete=models.CASCADE, related_name="+")
    source_type = models.CharField(max_length=20, default="COMPETITION")
    source_id = models.CharField(max_length=64)
    name = models.CharField(max_length=200)
    starts_at = models.DateTimeField()
    url = models.URLField(max_length=500, blank=True, default="")
    announce_at = models.DateTimeField()
    status = models.CharField(
        max_length=10, choices=PromotionStatus.choices, default=PromotionStatus.ACTIVE
    )
    campaign = models.ForeignKey(
        "marketing.Campaign", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Staff's edits of this promotion; empty/null means "as the club's settings say".
    channels = models.JSONField(
        null=True, blank=True, help_text='Any of "email", "sms", "social"; empty: the club\'s.'
    )
    segment = models.ForeignKey(
        "marketing.Segment", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    email_template = models.ForeignKey(
        "marketing.MessageTemplate",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    sms_template = models.ForeignKey(
        "marketing.MessageTemplate",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    social_text = models.TextField(blank=True, default="")
    send_hour = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(23)]
    )
    reminder_days = models.JSONField(
        null=True, blank=True, help_text="Days before the start reminders go; empty: 7, 3, 1."
    )
    cancel_campaign = models.ForeignKey(
        "marketing.Campaign", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-starts_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "source_type", "source_id"], name="social_promotion_source_uniq"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class ReminderStatus(models.TextChoices):
    PENDING = "PENDING", "Pending"
    SENT = "SENT", "Sent"
    CANCELLED = "CANCELLED", "Cancelled"


class PromotionReminder(TenantOwnedModel):
    """A reminder N days before the start, at the club's send hour in its timezone. Its
    campaign is scheduled for ``send_at``; a date change moves pending ones."""

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey("crm.Tenant", on_delete=models.CASCADE, related_name="+")
    promotion = models.ForeignKey(Promotion, on_delete=models.CASCADE, related_name="reminders")
    days_before = models.PositiveSmallIntegerField()
    send_at = models.DateTimeField()
    status = models.CharField(
        max_length=10, choices=ReminderStatus.choices, default=ReminderStatus.PENDING
    )
    campaign = models.ForeignKey(
        "marketing.Campaign", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["send_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "promotion", "days_before"], name="social_reminder_uniq"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.promotion_id} -{self.days_before}d"
