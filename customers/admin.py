"""Staff console: customers (fast on a million rows) and the customer page (a header card,
the timeline and notes as its body, segments, messages and merges beside them, the raw
fields folded away for tenant admins), merge-suggestion review, and the sync log with
replay."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import Http404, HttpResponseRedirect, QueryDict, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import urlencode
from unfold.admin import ModelAdmin, TabularInline
from unfold.contrib.filters.admin import RangeDateTimeFilter, TextFilter
from unfold.decorators import display
from unfold.paginator import InfinitePaginator

from crm.admin_mixins import TenantScopedAdminMixin
from crm.audit import AuditAction, audit_record, field_changes, request_actor, request_ip
from crm.formatting import money_format
from crm.models import Club, StaffRole, Tenant
from crm.registry import customer_panels
from crm.selectors import staff_tenant_ids, staff_tenant_ids_with_role

from .erasure import customer_erase
from .events import Category
from .export import customer_export
from .identity import normalize_email, normalize_phone
from .ingest import events_replay
from .models import (
    CHANNEL_ADDRESS_COLUMN,
    CHANNELS,
    CONSENT_FIELDS,
    IDENTITY_FIELDS,
    MEMBERSHIP_FIELDS,
    METRIC_FIELDS,
    AliasKind,
    Channel,
    ConsentRecord,
    CustomerProfile,
    IdentityAlias,
    LifecycleStage,
    MergeSuggestion,
    NoteType,
    ProfileMerge,
    SavedFilter,
    SuggestionStatus,
    SyncLogEntry,
    SyncStatus,
)
from .services import merge_suggestion_dismiss, profile_merge
from .timeline import Author, note_create, note_list, note_update, timeline_page

TIMELINE_PAGE_SIZE = 25
MERGES_SHOWN = 10

# Membership statuses arrive as SCL's free text; the page shows them as coloured badges.
MEMBERSHIP_STATUS_TONES = {
    "ACTIVE": "success",
    "CURRENT": "success",
    "PENDING": "info",
    "LAPSED": "warning",
    "SUSPENDED": "warning",
    "RESIGNED": "danger",
    "CANCELLED": "danger",
    "EXPIRED": "danger",
}

STAFF_WRITE_ROLES = (StaffRole.ADMIN, StaffRole.MARKETER, StaffRole.SUPPORT)

COMPARED_FIELDS = [
    ("Name", "full_name"),
    ("Email", "email"),
    ("Phone", "phone"),
    ("Auth user", "auth_user_id"),
    ("SCL member", "scl_member_id"),
    ("TeeTime player", "teetime_player_id"),
    ("Status", "status"),
    ("Lifecycle", "lifecycle_stage"),
    ("Membership", "membership_type"),
    ("Handicap", "handicap_index"),
    ("Email opt-in", "email_opt_in"),
    ("SMS opt-in", "sms_opt_in"),
    ("Last activity", "last_activity_at"),
    ("Created", "created_at"),
]


class ConsentRecordInline(TabularInline):
    """The consent history (append-only): read only."""

    model = ConsentRecord
    fields = ["occurred_at", "channel", "opt_in", "source", "evidence"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    verbose_name_plural = "consent history"

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class IdentityAliasInline(TabularInline):
    model = IdentityAlias
    fields = ["kind", "value", "source", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


def _snapshot_name(snapshot: dict | None) -> str:
    """Who a merged-away profile was: its name, else its email or phone (the snapshot)."""
    snapshot = snapshot or {}
    name = f"{snapshot.get('first_name') or ''} {snapshot.get('last_name') or ''}".strip()
    return name or snapshot.get("email") or snapshot.get("phone") or ""


def _phone_regions(request) -> list[str]:
    if request.user.is_superuser:
        return ["ZA", "GB"]
    regions = Tenant.objects.filter(pk__in=staff_tenant_ids(user=request.user)).values_list(
        "default_phone_region", flat=True
    )
    return sorted(set(regions)) or ["ZA", "GB"]


# --- list filters a club marketer uses (each an indexed or tenant-bounded condition) -----------


class ClubFilter(admin.SimpleListFilter):
    """Home club, among the clubs of the staff member's tenants only."""

    title = "club"
    parameter_name = "club"

    def lookups(self, request, model_admin):
        clubs = Club.objects.all()
        if not request.user.is_superuser:
            clubs = clubs.filter(tenant_id__in=staff_tenant_ids(user=request.user))
        return [(str(pk), name) for pk, name in clubs.order_by("name").values_list("pk", "name")]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        valid = {key for key, _ in self.lookup_choices}
        return queryset.filter(home_club_id=value) if value in valid else queryset.none()


class LastActivityFilter(admin.SimpleListFilter):
    title = "last activity"
    parameter_name = "active"
    WINDOWS = {"7": 7, "30": 30, "90": 90}

    def lookups(self, request, model_admin):
        return [
            ("7", "In the last 7 days"),
            ("30", "In the last 30 days"),
            ("90", "In the last 90 days"),
            ("quiet", "Not in 90 days"),
            ("never", "Never"),
        ]

    def queryset(self, request, queryset):
        value = self.value()
        now = timezone.now()  # passed into SQL: one clock (docs/architecture.md)
        if value in self.WINDOWS:
            since = now - timedelta(days=self.WINDOWS[value])
            return queryset.filter(last_activity_at__gt=since)
        if value == "quiet":
            return queryset.filter(last_activity_at__lte=now - timedelta(days=90))
        if value == "never":
            return queryset.filter(last_activity_at__isnull=True)
        return queryset


class ConsentFilter(admin.SimpleListFilter):
    """Who marketing may reach: opted in on a channel (with an address), or on none."""

    title = "marketing consent"
    parameter_name = "consent"

    def lookups(self, request, model_admin):
        return [*((c, f"{dict(Channel.choices)[c]} opt-in") for c in CHANNELS), ("none", "None")]

    def queryset(self, request, queryset):
        value = self.value()
        if value in CHANNELS:
            address = CHANNEL_ADDRESS_COLUMN[value]
            return queryset.filter(**{f"{value}_opt_in": True, f"{address}__isnull": False})
        if value == "none":
            return queryset.filter(**{f"{c}_opt_in": False for c in CHANNELS})
        return queryset


class HandicapBandFilter(admin.SimpleListFilter):
    title = "handicap"
    parameter_name = "handicap"
    BANDS = {
        "plus": (None, Decimal("0")),
        "0-9": (Decimal("0"), Decimal("10")),
        "10-18": (Decimal("10"), Decimal("18.5")),
        "19-28": (Decimal("18.5"), Decimal("28.5")),
        "29+": (Decimal("28.5"), None),
    }

    def lookups(self, request, model_admin):
        return [
            ("plus", "Plus (under 0)"),
            ("0-9", "0 to 9.9"),
            ("10-18", "10 to 18.4"),
            ("19-28", "18.5 to 28.4"),
            ("29+", "28.5 and up"),
            ("none", "No handicap"),
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "none":
            return queryset.filter(handicap_index__isnull=True)
        if value not in self.BANDS:
            return queryset
        low, high = self.BANDS[value]
        if low is not None:
            queryset = queryset.filter(handicap_index__gte=low)
        if high is not None:
            queryset = queryset.filter(handicap_index__lt=high)
        return queryset


class MembershipTypeFilter(TextFilter):
    """Membership types are SCL's free text: typed, matched without regard to case."""

    title = "membership type"
    parameter_name = "membership"

    def queryset(self, request, queryset):
        value = (self.value() or "").strip()
        return queryset.filter(membership_type__iexact=value) if value else queryset


@admin.register(CustomerProfile)
class CustomerProfileAdmin(TenantScopedAdminMixin, ModelAdmin):
    """Customers. Search is exact on email and phone (any local format) and by name prefix,
    so every search is an index look-up; the list never counts the table."""

    write_roles = STAFF_WRITE_ROLES
    paginator = InfinitePaginator
    show_full_result_count = False
    list_per_page = 50
    list_display = [
        "display_name",
        "email",
        "home_club",
        "lifecycle_badge",
        "membership",
        "handicap_index",
        "consent_summary",
        "last_activity_at",
    ]
    list_filter = [
        ClubFilter,
        "lifecycle_stage",
        MembershipTypeFilter,
        ConsentFilter,
        LastActivityFilter,
        HandicapBandFilter,
        "status",
    ]
    list_filter_submit = True  # the membership type is typed: filters apply on submit
    list_before_template = "admin/customers/customerprofile/saved_filters.html"
    list_select_related = ["home_club"]
    search_fields = ["email"]  # replaced by get_search_results below
    search_help_text = "Email, phone (any format) or the start of a first or last name."
    inlines = [IdentityAliasInline, ConsentRecordInline]
    raw_id_fields = ["merged_into"]
    readonly_fields = [
        "id",
        "tenant",
        *IDENTITY_FIELDS,
        "external_ids",
        "status",
        "merged_into",
        *METRIC_FIELDS,
        *CONSENT_FIELDS,
        "created_at",
        "updated_at",
        "deleted_at",
    ]
    fieldsets = [
        (
            "Person",
            {
                "fields": [
                    "id",
                    "tenant",
                    "first_name",
                    "last_name",
                    "date_of_birth",
                    "home_club",
                    "status",
                    "lifecycle_stage",
                    "tags",
                    "merged_into",
                ]
            },
        ),
        ("Identity", {"fields": [*IDENTITY_FIELDS, "external_ids"]}),
        ("Consent", {"fields": list(CONSENT_FIELDS)}),
        ("Membership and golf", {"fields": list(MEMBERSHIP_FIELDS)}),
        ("Activity and value", {"fields": list(METRIC_FIELDS)}),
        ("Record", {"fields": ["created_at", "updated_at", "deleted_at"]}),
    ]

    #: What non-admin staff may correct on the customer page (folded away below the body).
    staff_fieldsets = [
        (
            "Edit details",
            {
                "fields": [
                    "first_name",
                    "last_name",
                    "date_of_birth",
                    "home_club",
                    "lifecycle_stage",
                    "tags",
                ],
                "classes": ["collapse"],
            },
        ),
    ]

    def _is_tenant_admin(self, request, obj) -> bool:
        if request.user.is_superuser:
            return True
        admins = staff_tenant_ids_with_role(user=request.user, roles=(StaffRole.ADMIN,))
        return obj is not None and obj.tenant_id in admins

    def get_fieldsets(self, request, obj=None):
        # The raw record (every column) is for tenant admins, folded; the page above it is
        # what everyone else reads.
        if not self._is_tenant_admin(request, obj):
            return self.staff_fieldsets
        return [(name, {**options, "classes": ["collapse"]}) for name, options in self.fieldsets]

    def get_inlines(self, request, obj):
        return self.inlines if self._is_tenant_admin(request, obj) else []

    def get_queryset(self, request):
        # The customer page's header reads the club and the tenant's currency.
        return super().get_queryset(request).select_related("home_club", "tenant")

    def has_add_permission(self, request, *args) -> bool:
        return False  # people arrive through identity resolution (API, events, imports)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # erasure is its own audited process, not a delete button

    @display(description="Name", ordering="last_name")
    def display_name(self, obj: CustomerProfile) -> str:
        return obj.full_name or "—"

    @display(
        description="Lifecycle",
        label={
            LifecycleStage.MEMBER: "success",
            LifecycleStage.VISITOR: "info",
            LifecycleStage.LEAD: "info",
            LifecycleStage.SUBSCRIBER: "info",
            LifecycleStage.LAPSED: "warning",
            LifecycleStage.CHURNED: "danger",
        },
    )
    def lifecycle_badge(self, obj: CustomerProfile):
        return obj.lifecycle_stage, obj.get_lifecycle_stage_display()

    @display(description="Membership")
    def membership(self, obj: CustomerProfile) -> str:
        if not obj.membership_type:
            return "—"
        status = (obj.membership_status or "").title()
        return f"{obj.membership_type} ({status})" if status else obj.membership_type

    @display(description="Consent")
    def consent_summary(self, obj: CustomerProfile) -> str:
        reachable = [
            dict(Channel.choices)[c]
            for c in CHANNELS
            if getattr(obj, f"{c}_opt_in") and getattr(obj, CHANNEL_ADDRESS_COLUMN[c])
        ]
        return ", ".join(reachable) or "—"

    # --- timeline and notes on the customer page -------------------------------------------
    def get_urls(self):
        own = [
            path(
                "<uuid:object_id>/notes/add/",
                self.admin_site.admin_view(self.note_add_view),
                name="customers_customerprofile_note_add",
            ),
            path(
                "saved-filters/add/",
                self.admin_site.admin_view(self.saved_filter_add_view),
                name="customers_customerprofile_savedfilter_add",
            ),
            path(
                "saved-filters/<int:filter_id>/delete/",
                self.admin_site.admin_view(self.saved_filter_delete_view),
                name="customers_customerprofile_savedfilter_delete",
            ),
            path(
                "<uuid:object_id>/export/",
                self.admin_site.admin_view(self.export_view),
                name="customers_customerprofile_export",
            ),
            path(
                "<uuid:object_id>/erase/",
                self.admin_site.admin_view(self.erase_view),
                name="customers_customerprofile_erase",
            ),
            path(
                "<uuid:object_id>/notes/<int:note_id>/pin/",
                self.admin_site.admin_view(self.note_pin_view),
                name="customers_customerprofile_note_pin",
            ),
        ]
        return own + super().get_urls()

    # --- saved filters: named views of this list, per staff user and tenant ----------------
    def _saved_filters(self, request):
        rows = SavedFilter.objects.filter(user=request.user)
        if request.user.is_superuser:
            return rows
        return rows.filter(
            Q(tenant__isnull=True) | Q(tenant_id__in=staff_tenant_ids(user=request.user))
        )

    def changelist_view(self, request, extra_context=None):
        query = request.GET.copy()
        query.pop("p", None)  # a view is the filters, not a page of them
        extra_context = {
            **(extra_context or {}),
            "saved_filters": list(self._saved_filters(request)),
            "saved_filter_query": query.urlencode(),
        }
        return super().changelist_view(request, extra_context)

    def saved_filter_add_view(self, request):
        changelist = reverse("admin:customers_customerprofile_changelist")
        if request.method != "POST":
            return HttpResponseRedirect(changelist)
        name = request.POST.get("name", "").strip()
        query = QueryDict(request.POST.get("query", ""), mutable=True)
        query.pop("p", None)
        encoded = query.urlencode()
        if not name or len(name) > 80:
            messages.error(request, "Name the view (up to 80 characters).")
        elif not encoded or len(encoded) > 1000:
            messages.error(request, "Filter or search the list first, then save the view.")
        else:
            tenants = staff_tenant_ids(user=request.user)
            tenant_id = tenants[0] if len(tenants) == 1 and not request.user.is_superuser else None
            SavedFilter.objects.update_or_create(
                user=request.user, tenant_id=tenant_id, name=name, defaults={"query": encoded}
            )
            messages.success(request, f"Saved the view “{name}”.")
            return HttpResponseRedirect(f"{changelist}?{encoded}")
        return HttpResponseRedirect(f"{changelist}?{encoded}" if encoded else changelist)

    def saved_filter_delete_view(self, request, filter_id):
        if request.method != "POST":
            raise PermissionDenied
        saved = get_object_or_404(self._saved_filters(request), pk=filter_id)
        saved.delete()
        messages.success(request, f"Removed the view “{saved.name}”.")
        return HttpResponseRedirect(reverse("admin:customers_customerprofile_changelist"))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        profile = self.get_object(request, object_id)
        extra_context = dict(extra_context or {})
        if profile is not None and request.method == "GET":
            extra_context.update(self._timeline_context(request, profile))
            extra_context.update(self._summary_context(profile))
            extra_context["can_export"] = profile.is_live and self._is_tenant_admin(
                request, profile
            )
            audit_record(
                tenant=profile.tenant,
                actor=request_actor(request),
                action=AuditAction.CUSTOMER_VIEWED,
                object_type="customers.CustomerProfile",
                object_id=profile.pk,
                request=request,
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change) -> None:
        # The before/after of what the form changed (contact details, consent...), in the
        # same transaction as the save (the admin wraps changeform_view in one).
        changes = {
            name: {"before": form.initial.get(name), "after": form.cleaned_data.get(name)}
            for name in form.changed_data
        }
        super().save_model(request, obj, form, change)
        if change and changes:
            audit_record(
                tenant=obj.tenant,
                actor=request_actor(request),
                action=AuditAction.CUSTOMER_CHANGED,
                object_type="customers.CustomerProfile",
                object_id=obj.pk,
                request=request,
                changes=field_changes(
                    before={k: v["before"] for k, v in changes.items()},
                    after={k: v["after"] for k, v in changes.items()},
                ),
            )

    def _summary_context(self, profile: CustomerProfile) -> dict:
        """The header card and the side panels: a fixed number of indexed queries."""
        tenant = profile.tenant
        status = (profile.membership_status or "").strip()
        aliases = list(
            IdentityAlias.objects.filter(tenant=tenant, profile=profile)
            .order_by("kind", "value")
            .values_list("kind", "value")
        )
        kind_labels = dict(AliasKind.choices)
        merges = list(
            ProfileMerge.objects.filter(tenant=tenant)
            .filter(Q(winner=profile) | Q(loser=profile))
            .order_by("-created_at", "-id")[:MERGES_SHOWN]
        )
        suggestions = list(
            MergeSuggestion.objects.filter(tenant=tenant, status=SuggestionStatus.PENDING)
            .filter(Q(profile=profile) | Q(candidate=profile))
            .order_by("-created_at")[:MERGES_SHOWN]
        )
        return {
            "person": {
                "name": profile.full_name or str(profile),
                "club": profile.home_club.name if profile.home_club else "",
                "lifecycle": profile.get_lifecycle_stage_display(),
                "membership_type": profile.membership_type,
                "membership_status": status.title(),
                "membership_tone": MEMBERSHIP_STATUS_TONES.get(status.upper(), "info"),
                "handicap": profile.handicap_index,
                "lifetime_value": money_format(
                    minor=profile.lifetime_value_minor,
                    currency=profile.currency or tenant.currency,
                ),
                "engagement_score": profile.engagement_score,
                "churn_risk": profile.churn_risk,
                "status": profile.status,
                "status_label": profile.get_status_display(),
            },
            "consent_chips": [
                {
                    "channel": channel,
                    "label": dict(Channel.choices)[channel],
                    "opt_in": getattr(profile, f"{channel}_opt_in"),
                    "decided": getattr(profile, f"{channel}_consent_at") is not None,
                    "at": getattr(profile, f"{channel}_consent_at"),
                    "source": getattr(profile, f"{channel}_consent_source"),
                }
                for channel in CHANNELS
            ],
            "identifiers": [(kind_labels.get(kind, kind), value) for kind, value in aliases],
            "external_ids": sorted((profile.external_ids or {}).items()),
            "merges": [
                {
                    "merge": merge,
                    "role": "absorbed" if merge.winner_id == profile.pk else "merged into",
                    "other_id": (
                        merge.loser_id if merge.winner_id == profile.pk else merge.winner_id
                    ),
                    "other_name": _snapshot_name(merge.loser_snapshot)
                    if merge.winner_id == profile.pk
                    else "",
                }
                for merge in merges
            ],
            "merge_suggestions": suggestions,
            "panels": [
                panel(tenant=tenant, customer=profile) for panel in customer_panels().values()
            ],
        }

    def _timeline_context(self, request, profile: CustomerProfile) -> dict:
        valid = {value for value, _ in Category.CHOICES}
        category = request.GET.get("tl_category", "")
        category = category if category in valid else ""
        try:
            page = timeline_page(
                tenant=profile.tenant,
                customer=profile,
                categories=[category] if category else (),
                cursor=request.GET.get("tl_cursor") or None,
                page_size=TIMELINE_PAGE_SIZE,
            )
        except ValidationError:
            page = timeline_page(tenant=profile.tenant, customer=profile, page_size=25)
        next_url = None
        if page.next_cursor:
            query = {
                "tl_cursor": page.next_cursor,
                **({"tl_category": category} if category else {}),
            }
            next_url = f"?{urlencode(query)}#timeline"
        return {
            "timeline": page.activities,
            "timeline_next_url": next_url,
            "timeline_first_url": f"?{urlencode({'tl_category': category})}#timeline"
            if category
            else "?#timeline",
            "timeline_categories": Category.CHOICES,
            "timeline_category": category,
            "timeline_paged": bool(request.GET.get("tl_cursor")),
            "notes": list(
                note_list(
                    tenant=profile.tenant, customer=profile, viewer=Author.staff(request.user)
                )[:100]
            ),
            "note_types": NoteType.choices,
            "can_write_notes": self._can_write(request, profile),
        }

    def _profile_for_write(self, request, object_id) -> CustomerProfile | None:
        profile = self.get_object(request, str(object_id))
        if profile is None or request.method != "POST" or not self._can_write(request, profile):
            return None
        return profile

    def note_add_view(self, request, object_id):
        profile = self._profile_for_write(request, object_id)
        if profile is None:
            raise PermissionDenied
        note_type = request.POST.get("type", NoteType.GENERAL)
        try:
            if note_type not in NoteType.values:
                raise ValidationError({"type": ["Choose a note type."]})
            note_create(
                tenant=profile.tenant,
                customer=profile,
                author=Author.staff(request.user),
                body=request.POST.get("body", ""),
                type=note_type,
                is_pinned=request.POST.get("is_pinned") == "on",
                is_private=request.POST.get("is_private") == "on",
            )
            messages.success(request, "Note added.")
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        return HttpResponseRedirect(self._change_url(profile) + "#notes")

    def note_pin_view(self, request, object_id, note_id):
        profile = self._profile_for_write(request, object_id)
        if profile is None:
            raise PermissionDenied
        author = Author.staff(request.user)
        note = get_object_or_404(
            note_list(tenant=profile.tenant, customer=profile, viewer=author), pk=note_id
        )
        note_update(
            tenant=profile.tenant, note=note, editor=author, data={"is_pinned": not note.is_pinned}
        )
        messages.success(request, "Note pinned." if not note.is_pinned else "Note unpinned.")
        return HttpResponseRedirect(self._change_url(profile) + "#notes")

    def export_view(self, request, object_id):
        """Subject-access export (tenant admins only): the HTML page, or ``?as=json`` the
        JSON document as a download. Only a live profile: merged and erased ones are 404."""
        profile = self.get_object(request, str(object_id))
        if profile is None or not profile.is_live:
            raise Http404
        if not self._is_tenant_admin(request, profile):
            raise PermissionDenied
        fmt = "json" if request.GET.get("as") == "json" else "html"
        chunks = customer_export(
            tenant=profile.tenant,
            customer=profile,
            viewer=Author.staff(request.user),
            actor=f"staff:{request.user.get_username()}",
            ip=request_ip(request),
            format=fmt,
            now=timezone.now(),
        )
        if fmt == "json":
            response = StreamingHttpResponse(chunks, content_type="application/json")
            response["Content-Disposition"] = f'attachment; filename="customer-{profile.pk}.json"'
            return response
        return StreamingHttpResponse(chunks, content_type="text/html; charset=utf-8")

    def erase_view(self, request, object_id):
        """Erasure requests: a confirmation page (tenant admins only), then the erasure."""
        profile = self.get_object(request, str(object_id))
        if profile is None:
            raise PermissionDenied
        admins = staff_tenant_ids_with_role(user=request.user, roles=(StaffRole.ADMIN,))
        if not (request.user.is_superuser or profile.tenant_id in admins):
            raise PermissionDenied
        if request.method == "POST":
            if request.POST.get("confirm") != "erase":
                messages.error(request, "Tick the box to confirm the erasure.")
                return HttpResponseRedirect(request.path)
            erasure = customer_erase(
                tenant=profile.tenant,
                customer=profile,
                actor=f"staff:{request.user.get_username()}",
                reason=request.POST.get("reason", "")[:255],
                ip=request_ip(request),
            )
            messages.success(
                request,
                f"Erased. Audit {erasure.pk}: {sum(erasure.scope.values())} records removed; "
                "the addresses stay suppressed.",
            )
            return HttpResponseRedirect(reverse("admin:customers_customerprofile_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Erase {profile}?",
            "opts": self.model._meta,
            "profile": profile,
        }
        return TemplateResponse(request, "admin/customers/customerprofile/erase.html", context)

    @staticmethod
    def _change_url(profile: CustomerProfile) -> str:
        return reverse("admin:customers_customerprofile_change", args=[profile.pk])

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        if "@" in term:
            try:
                return queryset.filter(email=normalize_email(term)), False
            except ValidationError:
                return queryset.none(), False
        if sum(ch.isdigit() for ch in term) >= 6:
            phones = set()
            for region in _phone_regions(request):
                try:
                    phones.add(normalize_phone(term, region=region))
                except ValidationError:
                    continue
            return queryset.filter(phone__in=phones), False
        for word in term.split():
            queryset = queryset.filter(first_name__istartswith=word) | queryset.filter(
                last_name__istartswith=word
            )
        return queryset, False


@admin.register(MergeSuggestion)
class MergeSuggestionAdmin(TenantScopedAdminMixin, ModelAdmin):
    """Review: the two profiles side by side, and a button to merge or dismiss."""

    write_roles = STAFF_WRITE_ROLES
    paginator = InfinitePaginator
    list_display = ["__str__", "reason", "status", "created_at"]
    list_filter = ["status"]
    list_select_related = ["profile", "candidate"]
    raw_id_fields = ["profile", "candidate"]

    def has_add_permission(self, request, *args) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def change_view(self, request, object_id, form_url="", extra_context=None):
        suggestion = get_object_or_404(self.get_queryset(request), pk=object_id)
        if request.method == "POST":
            return self._decide(request, suggestion)
        chosen = suggestion.evidence.get("chosen")
        left, right = suggestion.profile, suggestion.candidate
        if chosen == str(right.pk):
            left, right = right, left
        rows = [
            (
                label,
                getattr(left, attr),
                getattr(right, attr),
                getattr(left, attr) != getattr(right, attr),
            )
            for label, attr in COMPARED_FIELDS
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": "Review merge suggestion",
            "opts": self.model._meta,
            "suggestion": suggestion,
            "left": left,
            "right": right,
            "rows": rows,
            "aliases": {
                p.pk: list(IdentityAlias.objects.filter(profile=p).values_list("kind", "value"))
                for p in (left, right)
            },
            "can_decide": suggestion.status == SuggestionStatus.PENDING
            and self._can_write(request, suggestion),
        }
        return TemplateResponse(request, "admin/customers/mergesuggestion/review.html", context)

    def _decide(self, request, suggestion: MergeSuggestion):
        if not self._can_write(request, suggestion):
            messages.error(request, "You cannot change this tenant's customers.")
            return HttpResponseRedirect(request.path)
        actor = f"staff:{request.user.get_username()}"
        decision = request.POST.get("decision")
        try:
            if decision == "dismiss":
                merge_suggestion_dismiss(
                    tenant=suggestion.tenant, suggestion=suggestion, actor=actor
                )
                messages.success(request, "Suggestion dismissed.")
            elif decision in ("keep_left", "keep_right"):
                keep = request.POST.get(decision)
                pair = {
                    str(suggestion.profile_id): suggestion.profile,
                    str(suggestion.candidate_id): suggestion.candidate,
                }
                if keep not in pair:
                    messages.error(request, "Unknown profile.")
                    return HttpResponseRedirect(request.path)
                winner = pair.pop(keep)
                (loser,) = pair.values()
                if suggestion.status != SuggestionStatus.PENDING:
                    raise ValidationError("This suggestion is already decided.")
                profile_merge(
                    tenant=suggestion.tenant,
                    winner=winner,
                    loser=loser,
                    actor=actor,
                    reason=f"Merge suggestion {suggestion.pk} reviewed",
                    ip=request_ip(request),
                )
                messages.success(request, f"Merged into {winner}.")
                return HttpResponseRedirect(
                    reverse("admin:customers_customerprofile_change", args=[winner.pk])
                )
            else:
                messages.error(request, "Choose merge or dismiss.")
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        return HttpResponseRedirect(request.path)


@admin.register(SyncLogEntry)
class SyncLogAdmin(TenantScopedAdminMixin, ModelAdmin):
    """Every event received: filter by status, type, source and time; replay failed ones."""

    write_roles = (StaffRole.ADMIN,)
    paginator = InfinitePaginator
    list_per_page = 50
    list_display = [
        "event_id",
        "type",
        "source",
        "status_badge",
        "attempts",
        "occurred_at",
        "created_at",
        "processed_at",
        "short_error",
    ]
    list_filter = [
        "status",
        "source",
        "type",
        "via",
        ("created_at", RangeDateTimeFilter),
    ]
    list_filter_submit = True
    search_fields = ["event_id"]
    search_help_text = "Exact event id."
    actions = ["replay_selected"]
    raw_id_fields = ["profile"]
    readonly_fields = [
        "tenant",
        "source",
        "event_id",
        "type",
        "occurred_at",
        "via",
        "status",
        "attempts",
        "error",
        "identity",
        "payload",
        "queued_at",
        "next_attempt_at",
        "processed_at",
        "profile",
        "created_at",
        "updated_at",
    ]
    fields = readonly_fields

    def has_add_permission(self, request, *args) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False if obj is not None else super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        return (queryset.filter(event_id=term) if term else queryset), False

    @display(
        description="Status",
        label={
            SyncStatus.PROCESSED: "success",
            SyncStatus.PENDING: "warning",
            SyncStatus.FAILED: "danger",
        },
    )
    def status_badge(self, obj: SyncLogEntry) -> str:
        return obj.status

    @display(description="Error")
    def short_error(self, obj: SyncLogEntry) -> str:
        return (obj.error[:80] + "…") if len(obj.error) > 80 else obj.error

    @admin.action(description="Replay selected failed events")
    def replay_selected(self, request, queryset):
        if not request.user.is_superuser:
            queryset = queryset.filter(
                tenant_id__in=staff_tenant_ids_with_role(user=request.user, roles=self.write_roles)
            )
        replayed = events_replay(queryset=queryset)
        if replayed:
            messages.success(request, f"Replayed {replayed} failed events; they are queued again.")
        else:
            messages.warning(request, "Nothing to replay: only failed events can be replayed.")
