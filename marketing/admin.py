"""Staff console screens of the marketing app: segments, templates, campaigns, suppressions."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse, reverse_lazy
from django.utils import timezone
from unfold.admin import ModelAdmin
from unfold.decorators import display
from unfold.paginator import InfinitePaginator

from crm import rules
from crm.admin_mixins import TenantScopedAdminMixin
from crm.admin_widgets import RuleBuilderWidget, rule_fields_payload
from crm.models import StaffRole, Tenant
from crm.selectors import staff_tenant_ids

from .campaigns import (
    EDITABLE,
    campaign_audience,
    campaign_cancel,
    campaign_pause,
    campaign_resume,
    campaign_schedule,
    campaign_stats,
    campaign_validate,
    campaigns_rates,
)
from .models import (
    Campaign,
    CampaignStatus,
    ChangeKind,
    MessageTemplate,
    Segment,
    SegmentChange,
    SegmentMembership,
    SegmentType,
    SkipReason,
    Suppression,
    created_by_fields,
)
from .segments import (
    SLOW_REFRESH_MS,
    criteria_parse,
    segment_derive,
    segment_import_upload,
    segment_preview,
    segment_refresh,
    segment_saved,
)
from .templating import render, sample_context, template_validate

MARKETING_ROLES = (StaffRole.ADMIN, StaffRole.MARKETER)
MEMBERS_PAGE = 100
RULE_SEGMENT_CHOICES = 500  # "member of segment" offers at most this many, by name
TREND_DAYS = 7


def segments_trend(*, segments: list[Segment], now) -> dict:
    """``{segment_id: (entered, left)}`` in the last TREND_DAYS days, for a page of segments
    in one grouped query (the change log's (tenant, segment, created_at) index)."""
    if not segments:
        return {}
    trend: dict = {segment.pk: [0, 0] for segment in segments}
    rows = (
        SegmentChange.objects.filter(
            tenant_id__in={segment.tenant_id for segment in segments},
            segment_id__in=list(trend),
            created_at__gt=now - timedelta(days=TREND_DAYS),
        )
        .values_list("segment_id", "kind")
        .annotate(n=Count("id"))
        .values_list("segment_id", "kind", "n")
    )
    for segment_id, kind, n in rows:
        trend[segment_id][0 if kind == ChangeKind.ENTERED else 1] = n
    return {key: tuple(value) for key, value in trend.items()}


class SegmentForm(forms.ModelForm):
    criteria = forms.JSONField(
        required=False,
        widget=RuleBuilderWidget(
            fields_url=reverse_lazy("admin:marketing_segment_rule_fields"),
            count_url=reverse_lazy("admin:marketing_segment_preview"),
        ),
        help_text="Who is in the segment. The rules as JSON are under “Rules as JSON”.",
    )

    class Meta:
        model = Segment
        fields = ["tenant", "club", "name", "description", "type", "criteria", "refresh_frequency"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.tenant_id is not None:
            # An existing segment's tenant is read-only: the builder counts for this one.
            self.fields["criteria"].widget.tenant_id = str(self.instance.tenant_id)

    def clean(self):
        data = super().clean()
        tenant: Tenant | None = data.get("tenant") or getattr(self.instance, "tenant", None)
        if tenant is None:
            return data
        club = data.get("club")
        if club is not None and club.tenant_id != tenant.pk:
            self.add_error("club", "This club belongs to another tenant.")
        if data.get("type") == SegmentType.DYNAMIC:
            if not data.get("criteria"):
                self.add_error("criteria", "A dynamic segment needs rules.")
            else:
                try:
                    criteria_parse(tenant, data["criteria"], segment=self.instance)
                except ValidationError as exc:
                    # The builder shows each message on the rule its path names.
                    self.fields["criteria"].widget.errors = exc.message_dict
                    for path, messages_ in exc.message_dict.items():
                        for message in messages_:
                            self.add_error("criteria", f"{path}: {message}")
        else:
            data["criteria"] = {}
        return data


@admin.register(Segment)
class SegmentAdmin(TenantScopedAdminMixin, ModelAdmin):
    """Segments: the rules editor with a live count, refresh, members, refresh timings."""

    form = SegmentForm
    write_roles = MARKETING_ROLES
    list_display = [
        "name",
        "type",
        "members",
        "trend",
        "refresh_frequency",
        "last_refreshed_at",
        "refresh_duration",
    ]
    list_filter = ["type", "refresh_frequency"]
    search_fields = ["name"]
    actions = ["refresh_selected"]
    readonly_fields = [
        "member_count",
        "last_refreshed_at",
        "refresh_duration",
        "next_refresh_at",
        "messaging_segment_id",
        "messaging_synced_at",
        "created_by",
        "created_by_label",
    ]
    change_form_template = "admin/marketing/segment/change_form.html"

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "tenant"] if obj is not None else fields

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        trend = segments_trend(segments=list(changelist.result_list), now=timezone.now())
        for segment in changelist.result_list:
            segment.page_trend = trend.get(segment.pk, (0, 0))
        return changelist

    @display(description="Members", ordering="member_count")
    def members(self, obj: Segment) -> str:
        return f"{obj.member_count:,}"

    @display(
        description=f"Last {TREND_DAYS} days",
        label={"up": "success", "down": "danger", "flat": "info"},
    )
    def trend(self, obj: Segment):
        entered, left = getattr(obj, "page_trend", (0, 0))
        net = entered - left
        tone = "up" if net > 0 else "down" if net < 0 else "flat"
        return tone, f"{net:+,} (+{entered:,} / -{left:,})"

    @display(description="Last refresh took", label={"slow": "warning", "ok": "success"})
    def refresh_duration(self, obj: Segment):
        if obj.last_refresh_ms is None:
            return "—"
        seconds = f"{obj.last_refresh_ms / 1000:.1f} s"
        return (
            ("slow", f"{seconds} (slow)")
            if obj.last_refresh_ms > SLOW_REFRESH_MS
            else ("ok", seconds)
        )

    def save_model(self, request, obj, form, change) -> None:
        segment_derive(obj, form.changed_data if change else None)
        if not change:
            for name, value in created_by_fields(request.user).items():
                setattr(obj, name, value)
        super().save_model(request, obj, form, change)
        segment_saved(segment=obj, changed=form.changed_data if change else None)

    @admin.action(description="Refresh selected segments now")
    def refresh_selected(self, request, queryset):
        done = []
        for segment in queryset.select_related("tenant"):
            if not self._can_write(request, segment):
                continue
            result = segment_refresh(segment=segment)
            if result is not None:
                done.append(
                    f"{segment.name}: {result.members:,} members (+{result.entered}, "
                    f"-{result.left}) in {result.ms / 1000:.1f} s"
                )
        if done:
            messages.success(request, "Refreshed. " + "; ".join(done))
        else:
            messages.warning(request, "Nothing refreshed.")

    # --- extra screens -------------------------------------------------------------------
    def get_urls(self):
        own = [
            path(
                "preview/",
                self.admin_site.admin_view(self.preview_view),
                name="marketing_segment_preview",
            ),
            path(
                "rule-fields/",
                self.admin_site.admin_view(self.rule_fields_view),
                name="marketing_segment_rule_fields",
            ),
            path(
                "<uuid:object_id>/refresh/",
                self.admin_site.admin_view(self.refresh_view),
                name="marketing_segment_refresh",
            ),
            path(
                "<uuid:object_id>/members/",
                self.admin_site.admin_view(self.members_view),
                name="marketing_segment_members",
            ),
            path(
                "<uuid:object_id>/import/",
                self.admin_site.admin_view(self.import_view),
                name="marketing_segment_import",
            ),
        ]
        return own + super().get_urls()

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "rule_fields": rules.registry("customer").describe(),
            "slow_ms": SLOW_REFRESH_MS,
        }
        return super().changeform_view(request, object_id, form_url, extra_context)

    def _staff_tenant(self, request, tenant_id: Any) -> Tenant | None:
        """The tenant ``tenant_id`` names if the staff user may see it (superusers: any)."""
        try:
            pk = uuid.UUID(str(tenant_id))
        except ValueError:
            return None
        tenants = Tenant.objects.filter(pk=pk)
        if not request.user.is_superuser:
            tenants = tenants.filter(pk__in=staff_tenant_ids(user=request.user))
        return tenants.first()

    def rule_fields_view(self, request):
        """The rule builder's fields: GET ?tenant=id -> typed fields, the tenant's currency and
        its clubs and segments to choose from; without a tenant, the fields only."""
        tenant = None
        if request.GET.get("tenant"):
            tenant = self._staff_tenant(request, request.GET["tenant"])
            if tenant is None:
                return JsonResponse({"errors": {"tenant": ["Unknown tenant."]}}, status=404)
        options = {}
        if tenant is not None:
            segments = Segment.objects.for_tenant(tenant).order_by("name")
            options["segment"] = [
                {"value": str(pk), "label": name}
                for pk, name in segments.values_list("pk", "name")[:RULE_SEGMENT_CHOICES]
            ]
        return JsonResponse(rule_fields_payload(tenant=tenant, options=options))

    def preview_view(self, request):
        """Live count for the rule builder: POST {"tenant": id, "criteria": {...}} ->
        {"count", "sample"}; 400 {"errors": {path: [...]}} for bad criteria."""
        if request.method != "POST":
            return JsonResponse({"error": "POST the criteria."}, status=405)
        try:
            body = json.loads(request.body or b"{}")
        except json.JSONDecodeError:
            return JsonResponse({"errors": {"criteria": ["Not valid JSON."]}}, status=400)
        if not isinstance(body, dict):
            return JsonResponse({"errors": {"criteria": ["Not valid JSON."]}}, status=400)
        tenant = self._staff_tenant(request, body.get("tenant")) if body.get("tenant") else None
        if tenant is None:
            return JsonResponse({"errors": {"tenant": ["Choose the tenant first."]}}, status=400)
        try:
            preview = segment_preview(tenant=tenant, criteria=body.get("criteria"))
        except ValidationError as exc:
            return JsonResponse({"errors": exc.message_dict}, status=400)
        return JsonResponse({"count": preview.count, "sample": [str(p) for p in preview.sample]})

    def _segment(self, request, object_id) -> Segment:
        segment = self.get_object(request, str(object_id))
        if segment is None:
            raise PermissionDenied
        return segment

    def refresh_view(self, request, object_id):
        segment = self._segment(request, object_id)
        if request.method != "POST" or not self._can_write(request, segment):
            raise PermissionDenied
        result = segment_refresh(segment=segment)
        if result is None:
            messages.warning(request, "A refresh of this segment is already running.")
        else:
            text = (
                f"{result.members:,} members (+{result.entered}, -{result.left}) in "
                f"{result.ms / 1000:.1f} s"
            )
            level = messages.WARNING if result.ms > SLOW_REFRESH_MS else messages.SUCCESS
            messages.add_message(request, level, f"Refreshed: {text}.")
        return HttpResponseRedirect(reverse("admin:marketing_segment_change", args=[segment.pk]))

    def import_view(self, request, object_id):
        """Static segments: upload a CSV (id, email and/or phone); rows that match nobody
        come back at once as a CSV download with an ``error`` column."""
        segment = self._segment(request, object_id)
        if request.method != "POST" or not self._can_write(request, segment):
            raise PermissionDenied
        back = HttpResponseRedirect(reverse("admin:marketing_segment_change", args=[segment.pk]))
        upload = request.FILES.get("file")
        if upload is None:
            messages.error(request, "Choose a CSV file.")
            return back
        try:
            result = segment_import_upload(segment=segment, upload=upload)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return back
        summary = (
            f"{result.rows:,} rows: {result.matched:,} matched, {result.added:,} added, "
            f"{result.unmatched:,} matched nobody."
        )
        if not result.unmatched:
            messages.success(request, summary)
            return back
        messages.warning(request, summary + " Their rows are in the downloaded file.")
        response = HttpResponse(result.error_csv, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = (
            f'attachment; filename="{segment.name}-unmatched.csv"'.replace("/", "-")
        )
        return response

    def members_view(self, request, object_id):
        segment = self._segment(request, object_id)
        # In the order of the membership's key (tenant, segment, customer): each page is a
        # range of it, after the last customer of the previous page.
        rows = SegmentMembership.objects.filter(tenant=segment.tenant, segment=segment)
        try:
            after = uuid.UUID(request.GET.get("after") or "")
        except ValueError:
            after = None
        if after is not None:
            rows = rows.filter(customer_id__gt=after)
        page = list(rows.select_related("customer").order_by("customer_id")[: MEMBERS_PAGE + 1])
        more = len(page) > MEMBERS_PAGE
        page = page[:MEMBERS_PAGE]
        context = {
            **self.admin_site.each_context(request),
            "title": f"Members of {segment.name}",
            "opts": self.model._meta,
            "segment": segment,
            "rows": page,
            "next_after": page[-1].customer_id if more else None,
        }
        return TemplateResponse(request, "admin/marketing/segment/members.html", context)


# ----------------------------------------------------------------------------- campaigns


class TemplateForm(forms.ModelForm):
    class Meta:
        model = MessageTemplate
        fields = ["tenant", "club", "name", "channel", "subject", "html_body", "text_body", "body"]

    def clean(self):
        data = super().clean()
        try:
            template_validate(
                channel=data.get("channel") or "",
                subject=data.get("subject") or "",
                html_body=data.get("html_body") or "",
                text_body=data.get("text_body") or "",
                body=data.get("body") or "",
            )
        except ValidationError as exc:
            for field, problems in exc.message_dict.items():
                for problem in problems:
                    self.add_error(field if field in self.fields else None, problem)
        return data


@admin.register(MessageTemplate)
class MessageTemplateAdmin(TenantScopedAdminMixin, ModelAdmin):
    """Templates, with a preview rendered for a sample recipient."""

    form = TemplateForm
    write_roles = MARKETING_ROLES
    list_display = ["name", "channel", "subject", "updated_at"]
    list_filter = ["channel"]
    search_fields = ["name"]
    change_form_template = "admin/marketing/messagetemplate/change_form.html"

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        template = self.get_object(request, object_id) if object_id else None
        if template is not None:
            try:
                extra_context["preview"] = render(
                    template,
                    sample_context(template.tenant, template.club.name if template.club else ""),
                )
            except ValidationError as exc:  # saved before today's rules: say why, don't 500
                extra_context["preview_errors"] = [
                    f"{field}: {problem}"
                    for field, problems in exc.message_dict.items()
                    for problem in problems
                ]
        return super().changeform_view(request, object_id, form_url, extra_context)


@admin.register(Suppression)
class SuppressionAdmin(TenantScopedAdminMixin, ModelAdmin):
    """Addresses that get no marketing: unsubscribed, complained, bounced, or added here."""

    write_roles = MARKETING_ROLES
    list_display = ["address", "channel", "reason", "source", "created_at"]
    list_filter = ["channel", "reason"]
    search_fields = ["address"]
    search_help_text = "Exact address (email in lower case, phone in E.164)."
    paginator = InfinitePaginator

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        return (queryset.filter(address=term.lower()) if term else queryset), False


STATUS_LABELS = {
    CampaignStatus.DRAFT: "info",
    CampaignStatus.SCHEDULED: "info",
    CampaignStatus.SENDING: "warning",
    CampaignStatus.COMPLETED: "success",
    CampaignStatus.PAUSED: "warning",
    CampaignStatus.CANCELLED: "danger",
    CampaignStatus.FAILED: "danger",
}
FUNNEL = ("targeted", "sent", "delivered", "opened", "clicked")
ACTIONS = {
    "schedule": campaign_schedule,
    "pause": campaign_pause,
    "resume": campaign_resume,
    "cancel": campaign_cancel,
}


@admin.register(Campaign)
class CampaignAdmin(TenantScopedAdminMixin, ModelAdmin):
    """Campaigns: the editor shows who would get it before scheduling; schedule, pause,
    resume and cancel buttons; a stats page with the funnel and the skip reasons."""

    write_roles = MARKETING_ROLES
    list_display = [
        "name",
        "status_badge",
        "segment",
        "type",
        "sent",
        "open_rate",
        "click_rate",
        "last_run_at",
        "next_run_at",
    ]
    list_filter = ["status", "type"]
    list_select_related = ["segment"]
    search_fields = ["name"]
    readonly_fields = [
        "status",
        "next_run_at",
        "ab_winner",
        "target_count",
        "last_run_at",
        "failure",
        "created_by",
        "created_by_label",
    ]
    change_form_template = "admin/marketing/campaign/change_form.html"

    @display(description="Status", label=STATUS_LABELS)
    def status_badge(self, obj: Campaign) -> str:
        return obj.status

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        rates = campaigns_rates(campaigns=list(changelist.result_list))
        for campaign in changelist.result_list:
            campaign.page_rates = rates.get(campaign.pk, {})
        return changelist

    @display(description="Sent")
    def sent(self, obj: Campaign) -> str:
        sent = getattr(obj, "page_rates", {}).get("sent")
        return f"{sent:,}" if sent else "—"

    @staticmethod
    def _rate(obj: Campaign, key: str) -> str:
        rate = getattr(obj, "page_rates", {}).get(key)
        return "—" if rate is None else f"{rate:.1%}"

    @display(description="Open rate")
    def open_rate(self, obj: Campaign) -> str:
        return self._rate(obj, "open_rate")

    @display(description="Click rate")
    def click_rate(self, obj: Campaign) -> str:
        return self._rate(obj, "click_rate")

    def has_change_permission(self, request, obj=None) -> bool:
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or obj.status in EDITABLE)

    def save_model(self, request, obj, form, change) -> None:
        campaign_validate(obj)
        if not change:
            for name, value in created_by_fields(request.user).items():
                setattr(obj, name, value)
        super().save_model(request, obj, form, change)

    def get_urls(self):
        own = [
            path(
                "<uuid:object_id>/do/<str:action>/",
                self.admin_site.admin_view(self.action_view),
                name="marketing_campaign_action",
            ),
            path(
                "<uuid:object_id>/stats/",
                self.admin_site.admin_view(self.stats_view),
                name="marketing_campaign_stats",
            ),
        ]
        return own + super().get_urls()

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        campaign = self.get_object(request, object_id) if object_id else None
        if campaign is not None:
            extra_context["audience"] = campaign_audience(campaign=campaign)
            extra_context["campaign"] = campaign
            extra_context["can_act"] = self._can_write(request, campaign)
        return super().changeform_view(request, object_id, form_url, extra_context)

    def _campaign(self, request, object_id) -> Campaign:
        campaign = self.get_object(request, str(object_id))
        if campaign is None:
            raise PermissionDenied
        return campaign

    def action_view(self, request, object_id, action):
        campaign = self._campaign(request, object_id)
        service = ACTIONS.get(action)
        if request.method != "POST" or service is None or not self._can_write(request, campaign):
            raise PermissionDenied
        try:
            campaign = service(campaign=campaign)
            messages.success(request, f"Campaign {action}d: now {campaign.get_status_display()}.")
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        return HttpResponseRedirect(reverse("admin:marketing_campaign_change", args=[object_id]))

    def stats_view(self, request, object_id):
        campaign = self._campaign(request, object_id)
        stats = campaign_stats(campaign=campaign)
        top = max(stats["targeted"], 1)
        funnel = [
            {"label": name.title(), "value": stats[name], "width": round(100 * stats[name] / top)}
            for name in FUNNEL
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": f"{campaign.name}: results",
            "opts": self.model._meta,
            "campaign": campaign,
            "stats": stats,
            "funnel": funnel,
            "skip_reasons": [
                (SkipReason(reason).label if reason in SkipReason.values else reason, count)
                for reason, count in sorted(stats["skip_reasons"].items())
            ],
        }
        return TemplateResponse(request, "admin/marketing/campaign/stats.html", context)
