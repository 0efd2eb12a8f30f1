"""Staff console screens of the social app: connections (connect buttons that run the
OAuth flow, health), posts with the status of each target, publications held for review,
promotions with what they created, and each club's promotion settings."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from unfold.admin import ModelAdmin, TabularInline
from unfold.decorators import display

from crm.admin_mixins import TenantScopedAdminMixin
from crm.audit import AuditAction, audit_record, request_actor
from crm.models import Club, StaffRole, Tenant
from crm.selectors import staff_tenant_ids, staff_tenant_ids_with_role

from .calendar import publications_calendar
from .connections import (
    OAuthFlowError,
    connection_disconnect,
    oauth_complete,
    oauth_start,
    page_choice_options,
    page_choice_pick,
)
from .models import (
    ClubSocialSettings,
    Connection,
    ConnectionStatus,
    PageChoice,
    Platform,
    Post,
    Promotion,
    PromotionReminder,
    Publication,
    PublicationStatus,
)
from .posts import post_cancel, post_create, post_schedule
from .promotion import EDIT_FIELDS, promotion_cancel, promotion_edit
from .publishers import publication_review

SOCIAL_ROLES = (StaffRole.ADMIN, StaffRole.MARKETER)


def _local_datetime(raw: str) -> datetime | None:
    """A ``datetime-local`` value, read in the active (admin) timezone."""
    if not raw:
        return None
    parsed = parse_datetime(raw)
    if parsed is None:
        raise ValidationError({"scheduled_at": "Not a date and time."})
    return timezone.make_aware(parsed) if timezone.is_naive(parsed) else parsed


PROMOTION_CHANNELS = ("email", "sms", "social")
CONNECTION_LABELS = {"ACTIVE": "success", "NEEDS_ATTENTION": "danger", "DISCONNECTED": "info"}
PUBLICATION_LABELS = {
    "DRAFT": "info",
    "SCHEDULED": "info",
    "PUBLISHING": "warning",
    "PUBLISHED": "success",
    "FAILED": "danger",
    "CANCELLED": "info",
    "NEEDS_REVIEW": "danger",
}


def _session_key(request) -> str:
    if not request.session.session_key:
        request.session.save()
    return request.session.session_key


@admin.register(Connection)
class ConnectionAdmin(TenantScopedAdminMixin, ModelAdmin):
    """Accounts clubs post to. "Connect" runs the platform's OAuth flow; a connection whose
    token the platform refused shows NEEDS ATTENTION with the platform's words."""

    write_roles = SOCIAL_ROLES
    list_display = [
        "__str__",
        "club",
        "platform",
        "status_badge",
        "status_error",
        "token_expires_at",
        "last_used_at",
    ]
    list_filter = ["status", "platform", "club"]
    search_fields = ["account_name", "account_id"]
    readonly_fields = [
        "tenant",
        "club",
        "platform",
        "account_id",
        "account_name",
        "account_type",
        "scopes",
        "status",
        "status_error",
        "token_expires_at",
        "connected_by",
        "last_used_at",
        "last_refreshed_at",
    ]
    fields = readonly_fields
    actions = ["disconnect"]

    @display(description="Status", label=CONNECTION_LABELS)
    def status_badge(self, obj: Connection) -> str:
        return obj.status

    def has_add_permission(self, request, *args) -> bool:
        return False  # accounts arrive through the connect flow only

    @admin.action(description="Disconnect (forget the tokens)")
    def disconnect(self, request, queryset) -> None:
        for connection in queryset:
            if self._can_write(request, connection):
                connection_disconnect(connection=connection)
        messages.success(request, "Disconnected.")

    def get_urls(self):
        own = [
            path(
                "connect/",
                self.admin_site.admin_view(self.connect_view),
                name="social_connection_connect",
            ),
            path(
                "callback/",
                self.admin_site.admin_view(self.callback_view),
                name="social_connection_callback",
            ),
            path(
                "pick/<uuid:choice_id>/",
                self.admin_site.admin_view(self.pick_view),
                name="social_connection_pick",
            ),
        ]
        return own + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "connect_url": reverse("admin:social_connection_connect"),
        }
        return super().changelist_view(request, extra_context)

    def _clubs(self, request):
        clubs = Club.objects.select_related("tenant")
        if request.user.is_superuser:
            return clubs
        writable = staff_tenant_ids_with_role(user=request.user, roles=self.write_roles)
        return clubs.filter(tenant_id__in=writable)

    def connect_view(self, request):
        clubs = self._clubs(request)
        if request.method == "POST":
            club = clubs.filter(pk=request.POST.get("club") or None).first()
            if club is None:
                raise PermissionDenied
            try:
                url = oauth_start(
                    tenant=club.tenant,
                    club=club,
                    platform=request.POST.get("platform", ""),
                    user=request.user,
                    session_key=_session_key(request),
                    redirect_uri=request.build_absolute_uri(
                        reverse("admin:social_connection_callback")
                    ),
                )
            except ValidationError as exc:
                messages.error(request, " ".join(exc.messages))
                return HttpResponseRedirect(reverse("admin:social_connection_connect"))
            return HttpResponseRedirect(url)
        context = {
            **self.admin_site.each_context(request),
            "title": "Connect a social account",
            "opts": self.model._meta,
            "clubs": clubs,
            "platforms": Platform.choices,
        }
        return TemplateResponse(request, "admin/social/connection/connect.html", context)

    def callback_view(self, request):
        back = HttpResponseRedirect(reverse("admin:social_connection_changelist"))
        try:
            result = oauth_complete(
                state=request.GET.get("state", ""),
                code=request.GET.get("code", ""),
                error=request.GET.get("error_description") or request.GET.get("error", ""),
                session_key=_session_key(request),
                user=request.user,
            )
        except OAuthFlowError as exc:
            messages.error(request, " ".join(exc.messages))
            return back
        if result.page_choice is not None:
            return HttpResponseRedirect(
                reverse("admin:social_connection_pick", args=[result.page_choice.pk])
            )
        _audit_connected(request, result.connection)
        messages.success(request, f"Connected {result.connection}.")
        return back

    def pick_view(self, request, choice_id):
        choice = (
            PageChoice.objects.select_related("club", "tenant")
            .filter(pk=choice_id, user=request.user, session_key=_session_key(request))
            .first()
        )
        if choice is None:
            messages.error(request, "This choice has expired; connect again.")
            return HttpResponseRedirect(reverse("admin:social_connection_changelist"))
        if request.method == "POST":
            try:
                connection = page_choice_pick(
                    tenant=choice.tenant,
                    choice_id=choice.pk,
                    page_id=request.POST.get("page", ""),
                    session_key=_session_key(request),
                    user=request.user,
                )
            except OAuthFlowError as exc:
                messages.error(request, " ".join(exc.messages))
                return HttpResponseRedirect(request.path)
            _audit_connected(request, connection)
            messages.success(request, f"Connected {connection}.")
            return HttpResponseRedirect(reverse("admin:social_connection_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Pick the account",
            "opts": self.model._meta,
            "club": choice.club,
            "instagram": choice.platform == Platform.INSTAGRAM,
            "pages": page_choice_options(choice=choice),
        }
        return TemplateResponse(request, "admin/social/connection/pick.html", context)


def _audit_connected(request, connection: Connection) -> None:
    audit_record(
        tenant=connection.tenant,
        actor=request_actor(request),
        action=AuditAction.SOCIAL_CONNECTED,
        object_type="social.Connection",
        object_id=connection.pk,
        request=request,
        detail={
            "platform": connection.platform,
            "account": connection.account_name or connection.account_id,
            "club": connection.club_id,
        },
    )


class PublicationInline(TabularInline):
    model = Publication
    extra = 0
    can_delete = False
    fields = [
        "connection",
        "status",
        "scheduled_at",
        "published_at",
        "platform_url",
        "attempts",
        "error",
    ]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Post)
class PostAdmin(TenantScopedAdminMixin, ModelAdmin):
    """Posts and, per target account, where they stand."""

    write_roles = SOCIAL_ROLES
    list_display = ["__str__", "club", "targets", "created_by_label", "created_at"]
    list_filter = ["club"]
    search_fields = ["content"]
    readonly_fields = [
        "tenant",
        "club",
        "content",
        "media_urls",
        "link",
        "hashtags",
        "promotion",
        "created_by_label",
    ]
    fields = readonly_fields
    inlines = [PublicationInline]
    actions = ["publish_now", "cancel"]

    def has_add_permission(self, request, *args) -> bool:
        return False  # composed on the compose screen (services validate per platform)

    def get_urls(self):
        own = [
            path(
                "compose/",
                self.admin_site.admin_view(self.compose_view),
                name="social_post_compose",
            ),
            path(
                "calendar/",
                self.admin_site.admin_view(self.calendar_view),
                name="social_post_calendar",
            ),
        ]
        return own + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "compose_url": reverse("admin:social_post_compose"),
            "calendar_url": reverse("admin:social_post_calendar"),
        }
        return super().changelist_view(request, extra_context)

    def calendar_view(self, request):
        """A month of publications, by local day in the tenant's timezone (one tenant at a
        time: each has its own timezone), filtered by club and platform."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        tenants = Tenant.objects.order_by("name")
        if not request.user.is_superuser:
            tenants = tenants.filter(pk__in=staff_tenant_ids(user=request.user))
        tenants = list(tenants)
        wanted = request.GET.get("tenant", "")
        tenant = next((t for t in tenants if str(t.pk) == wanted), tenants[0] if tenants else None)
        if tenant is None:
            raise PermissionDenied
        today = timezone.now().astimezone(ZoneInfo(tenant.timezone)).date()
        try:
            year, month = (int(part) for part in request.GET.get("month", "").split("-"))
            date(year, month, 1)
        except ValueError:
            year, month = today.year, today.month
        clubs = list(Club.objects.for_tenant(tenant).order_by("name"))
        club_id = request.GET.get("club", "")
        if club_id not in {str(c.pk) for c in clubs}:
            club_id = ""  # another tenant's club (or nonsense) filters nothing in
        platform = request.GET.get("platform", "")
        if platform not in Platform.values:
            platform = ""
        weeks = publications_calendar(
            tenant=tenant, year=year, month=month, club_id=club_id or None, platform=platform
        )
        first = date(year, month, 1)
        previous = (first - timedelta(days=1)).strftime("%Y-%m")
        following = (first + timedelta(days=31)).strftime("%Y-%m")
        context = {
            **self.admin_site.each_context(request),
            "title": f"Calendar: {first.strftime('%B %Y')}",
            "opts": self.model._meta,
            "weeks": weeks,
            "tenant": tenant,
            "tenants": tenants,
            "clubs": clubs,
            "platforms": Platform.choices,
            "selected": {"club": club_id, "platform": platform, "tenant": str(tenant.pk)},
            "previous": previous,
            "following": following,
            "today": today,
            "weekdays": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
        }
        return TemplateResponse(request, "admin/social/post/calendar.html", context)

    def compose_view(self, request):
        """Write a post for one club's accounts, with live per-platform counts; the
        services validate again and answer with field errors."""
        writable = (
            None
            if request.user.is_superuser
            else staff_tenant_ids_with_role(user=request.user, roles=self.write_roles)
        )
        clubs = Club.objects.select_related("tenant")
        connections = Connection.objects.select_related("club").filter(
            status=ConnectionStatus.ACTIVE
        )
        if writable is not None:
            clubs = clubs.filter(tenant_id__in=writable)
            connections = connections.filter(tenant_id__in=writable)
        values = {"connections": []}
        errors: dict[str, list[str]] = {}
        if request.method == "POST":
            values = {
                key: request.POST.get(key, "")
                for key in ("club", "content", "link", "hashtags", "media_urls", "scheduled_at")
            }
            values["connections"] = request.POST.getlist("connections")
            club = clubs.filter(pk=values["club"] or None).first()
            if club is None:
                raise PermissionDenied
            try:
                when = _local_datetime(values["scheduled_at"])
                post = post_create(
                    tenant=club.tenant,
                    club=club,
                    data={
                        "content": values["content"],
                        "link": values["link"].strip(),
                        "hashtags": values["hashtags"].split(),
                        "media_urls": values["media_urls"].split(),
                    },
                    connection_ids=values["connections"],
                    actor=request.user,
                )
                if request.POST.get("do") == "schedule":
                    try:
                        post_schedule(post=post, scheduled_at=when)
                    except ValidationError as exc:
                        messages.error(request, "Saved as a draft: " + " ".join(exc.messages))
                    else:
                        messages.success(request, "Scheduled.")
                return HttpResponseRedirect(reverse("admin:social_post_change", args=[post.pk]))
            except ValidationError as exc:
                errors = exc.message_dict
        context = {
            **self.admin_site.each_context(request),
            "title": "Compose a post",
            "opts": self.model._meta,
            "clubs": clubs,
            "connections": connections,
            "values": values,
            "errors": errors,
            "platform_choices": Platform.choices,
        }
        return TemplateResponse(request, "admin/social/post/compose.html", context)

    @display(description="Targets")
    def targets(self, obj: Post) -> str:
        return ", ".join(
            f"{p.connection.get_platform_display()}: {p.get_status_display()}"
            for p in obj.publications.all()
        )

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("publications__connection")

    @admin.action(description="Publish now")
    def publish_now(self, request, queryset) -> None:
        for post in queryset:
            if not self._can_write(request, post):
                continue
            try:
                post_schedule(post=post)
            except ValidationError as exc:
                messages.error(request, f"{post}: {' '.join(exc.messages)}")

    @admin.action(description="Cancel what has not gone")
    def cancel(self, request, queryset) -> None:
        done = sum(post_cancel(post=p) for p in queryset if self._can_write(request, p))
        messages.success(request, f"Cancelled {done} publication(s).")


@admin.register(Publication)
class PublicationAdmin(TenantScopedAdminMixin, ModelAdmin):
    """Every publication; those held for review (outcome unknown) wait for staff to look at
    the account and say whether the post is there."""

    write_roles = SOCIAL_ROLES
    list_display = [
        "post",
        "connection",
        "status_badge",
        "scheduled_at",
        "published_at",
        "attempts",
        "error",
    ]
    list_filter = ["status"]
    readonly_fields = [f.name for f in Publication._meta.fields]
    actions = ["found_on_the_account", "not_on_the_account"]

    @display(description="Status", label=PUBLICATION_LABELS)
    def status_badge(self, obj: Publication) -> str:
        return obj.status

    def has_add_permission(self, request, *args) -> bool:
        return False

    @admin.action(description="Held for review: it IS on the account (mark published)")
    def found_on_the_account(self, request, queryset) -> None:
        rows = queryset.filter(status=PublicationStatus.NEEDS_REVIEW)
        done = sum(
            publication_review(publication=p, published=True)
            for p in rows
            if self._can_write(request, p)
        )
        messages.success(request, f"{done} marked published.")

    @admin.action(description="Held for review: it is NOT on the account (publish again)")
    def not_on_the_account(self, request, queryset) -> None:
        rows = queryset.filter(status=PublicationStatus.NEEDS_REVIEW)
        done = sum(
            publication_review(publication=p, published=False)
            for p in rows
            if self._can_write(request, p)
        )
        messages.success(request, f"{done} scheduled again.")


class ReminderInline(TabularInline):
    model = PromotionReminder
    extra = 0
    can_delete = False
    fields = ["days_before", "send_at", "status", "campaign"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class PromotionForm(forms.ModelForm):
    """Staff's edit of a promotion: run through ``promotion_edit`` while the form is
    cleaned, so its refusals (a part that has gone out) show as field errors and nothing
    changes; the service saves the row and moves what is pending."""

    class Meta:
        model = Promotion
        fields = list(EDIT_FIELDS)

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        promotion = self.instance
        channels = data.get("channels")
        if channels is not None and (
            not isinstance(channels, list)
            or any(c not in PROMOTION_CHANNELS for c in channels)
            or len(set(channels)) != len(channels)
        ):
            self.add_error("channels", 'Empty, or a list of "email", "sms" and "social".')
        days = data.get("reminder_days")
        if days is not None and (
            not isinstance(days, list)
            or any(not isinstance(d, int) or isinstance(d, bool) or not 1 <= d <= 60 for d in days)
            or len(set(days)) != len(days)
        ):
            self.add_error("reminder_days", "Empty, or a list of days from 1 to 60.")
        for name in ("segment", "email_template", "sms_template"):
            row = data.get(name)
            if row is not None and row.tenant_id != promotion.tenant_id:
                self.add_error(name, "Belongs to another tenant.")
        for name, channel in (("email_template", "email"), ("sms_template", "sms")):
            row = data.get(name)
            if row is not None and row.channel != channel:
                self.add_error(name, f"Choose a {channel} template.")
        if self.errors:
            return data
        changed = {name: data.get(name) for name in self.changed_data if name in EDIT_FIELDS}
        if "social_text" in changed:
            changed["social_text"] = changed["social_text"] or ""
        if changed:
            try:
                promotion_edit(promotion=promotion, data=changed)
            except ValidationError as refused:
                # The service rolled back; its errors show on the form (by field when the
                # field is on it).
                for field, messages_ in refused.message_dict.items():
                    self.add_error(field if field in self.fields else None, messages_)
        return data


@admin.register(Promotion)
class PromotionAdmin(TenantScopedAdminMixin, ModelAdmin):
    """Competition promotions with their announcement, reminders and posts; editable
    until the parts edited have gone out."""

    write_roles = SOCIAL_ROLES
    form = PromotionForm
    list_display = ["name", "club", "starts_at", "status", "campaign"]
    list_filter = ["status", "club"]
    readonly_fields = [
        "tenant",
        "club",
        "source_type",
        "source_id",
        "name",
        "starts_at",
        "url",
        "status",
        "campaign",
        "cancel_campaign",
    ]
    fields = [*readonly_fields, *EDIT_FIELDS]

    def save_model(self, request, obj, form, change) -> None:
        # promotion_edit saved it (in the form's clean) with everything it moved; saving
        # the form's copy again could undo a campaign it set.
        return None

    inlines = [ReminderInline]
    actions = ["cancel"]

    def has_add_permission(self, request, *args) -> bool:
        return False  # from TeeTime's events, or by hand through the API

    @admin.action(description="Cancel (reminders, unsent announcement, posts)")
    def cancel(self, request, queryset) -> None:
        for promotion in queryset:
            if self._can_write(request, promotion):
                promotion_cancel(promotion=promotion)
        messages.success(request, "Cancelled.")


class ClubSocialSettingsForm(forms.ModelForm):
    class Meta:
        model = ClubSocialSettings
        fields = [
            "tenant",
            "club",
            "auto_promote",
            "channels",
            "segment",
            "email_template",
            "sms_template",
            "social_text",
            "send_hour",
            "notify_on_cancel",
        ]

    def clean(self):
        data = super().clean()
        channels = data.get("channels")
        if not isinstance(channels, list) or any(c not in PROMOTION_CHANNELS for c in channels):
            self.add_error("channels", 'A list of "email", "sms" and "social".')
        tenant = data.get("tenant")
        for name in ("club", "segment", "email_template", "sms_template"):
            row = data.get(name)
            if row is not None and tenant is not None and row.tenant_id != tenant.pk:
                self.add_error(name, "Belongs to another tenant.")
        for name, channel in (("email_template", "email"), ("sms_template", "sms")):
            row = data.get(name)
            if row is not None and row.channel != channel:
                self.add_error(name, f"Choose a {channel} template.")
        return data


@admin.register(ClubSocialSettings)
class ClubSocialSettingsAdmin(TenantScopedAdminMixin, ModelAdmin):
    """Per club: auto-promote published competitions, on which channels, to whom, with
    which templates and words, and the local hour reminders go."""

    write_roles = SOCIAL_ROLES
    form = ClubSocialSettingsForm
    list_display = ["club", "auto_promote", "channels", "segment", "send_hour"]
