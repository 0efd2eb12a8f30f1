"""Staff console screens of the automation app: the journey editor (settings and the step
graph as JSON, validated by the services, errors keyed by step), a server-side SVG of the
flow with per-step counts, activate / pause / resume / archive buttons, and a dry run for one
customer. ``EnrollmentInline`` shows a customer's enrollments (for the customer screen)."""

from __future__ import annotations

import uuid
from html import escape

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse, reverse_lazy
from django.utils.safestring import mark_safe
from unfold.admin import ModelAdmin, TabularInline

from crm.admin_mixins import TenantScopedAdminMixin
from crm.admin_widgets import ERROR_PREFIX, RuleBuilderWidget
from crm.models import StaffRole
from customers.models import CustomerProfile

from .analytics import step_analytics
from .dryrun import journey_dry_run
from .journeys import (
    journey_activate,
    journey_archive,
    journey_pause,
    journey_resume,
    journey_settings_clean,
    journey_steps_save,
    steps_validate,
    version_steps,
)
from .models import Enrollment, Journey

MARKETING_ROLES = (StaffRole.ADMIN, StaffRole.MARKETER)
ACTIONS = {
    "activate": journey_activate,
    "pause": journey_pause,
    "resume": journey_resume,
    "archive": journey_archive,
}
JSON_WIDGET = forms.Textarea(attrs={"rows": 8, "class": "font-mono", "spellcheck": "false"})
SETTINGS = (
    "name",
    "description",
    "club",
    "timezone",
    "trigger",
    "entry_criteria",
    "reentry",
    "reentry_days",
    "goal",
    "exit_criteria",
    "holdout_percent",
)


class JourneyForm(forms.ModelForm):
    trigger = forms.JSONField(widget=JSON_WIDGET, initial=dict)
    # The entry filter is drawn with the rule builder (the segments' fields and live count),
    # so staff pick fields and operators rather than write the criteria's JSON.
    entry_criteria = forms.JSONField(
        required=False,
        initial=dict,
        widget=RuleBuilderWidget(
            fields_url=reverse_lazy("admin:marketing_segment_rule_fields"),
            count_url=reverse_lazy("admin:marketing_segment_preview"),
        ),
        help_text="Who may enter when the trigger names them (no rules: everyone).",
    )
    goal = forms.JSONField(required=False, widget=JSON_WIDGET, initial=dict)
    exit_criteria = forms.JSONField(required=False, widget=JSON_WIDGET, initial=dict)
    steps = forms.JSONField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 24, "class": "font-mono", "spellcheck": "false"}),
        help_text="The step graph (docs/journeys.md); the first step is the entry. Saving it "
        "while people are in the journey makes a new version.",
    )

    class Meta:
        model = Journey
        fields = ["tenant", *SETTINGS]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.tenant_id is not None:
            self.fields["entry_criteria"].widget.tenant_id = str(self.instance.tenant_id)
        version = self.instance.current_version if self.instance.pk else None
        if version is not None:
            self.fields["steps"].initial = version_steps(version)

    def clean(self):
        data = super().clean()
        tenant = data.get("tenant") or getattr(self.instance, "tenant", None)
        if tenant is None:
            return data
        raw = {k: data.get(k) for k in SETTINGS if k in data and k != "club"}
        raw["club"] = data["club"].pk if data.get("club") else None
        for name in ("entry_criteria", "goal", "exit_criteria"):
            raw[name] = raw.get(name) or {}
        try:
            journey_settings_clean(tenant, raw, self.instance if self.instance.pk else None)
            if data.get("steps"):
                steps_validate(tenant, data["steps"])
        except ValidationError as exc:
            # The builder shows each entry filter message on the rule its path names.
            self.fields["entry_criteria"].widget.errors = {
                ERROR_PREFIX + key.removeprefix("entry_criteria."): errors
                for key, errors in exc.message_dict.items()
                if key.startswith("entry_criteria.")
            }
            for key, errors in exc.message_dict.items():
                field = key.split(".")[0].split("[")[0]
                target = field if field in self.fields else None
                for error in errors:
                    self.add_error(target, f"{key}: {error}" if target != key else error)
        return data


class JourneyAdmin(TenantScopedAdminMixin, ModelAdmin):
    """Journeys: the editor, the flow with counts, state buttons, a dry run."""

    form = JourneyForm
    write_roles = MARKETING_ROLES
    list_display = ["name", "status", "trigger_type", "activated_at"]
    list_filter = ["status"]
    search_fields = ["name"]
    readonly_fields = ["status", "activated_at"]
    change_form_template = "admin/automation/journey/change_form.html"

    @admin.display(description="Trigger")
    def trigger_type(self, obj: Journey) -> str:
        return (obj.trigger or {}).get("type", "")

    def save_model(self, request, obj, form, change) -> None:
        if not self._can_write(request, obj):
            raise PermissionDenied("You cannot write to this tenant.")
        with transaction.atomic():
            obj.save()
            if form.cleaned_data.get("steps"):
                journey_steps_save(journey=obj, steps=form.cleaned_data["steps"])

    def get_urls(self):
        own = [
            path(
                "<uuid:object_id>/do/<str:action>/",
                self.admin_site.admin_view(self.action_view),
                name="automation_journey_action",
            ),
            path(
                "<uuid:object_id>/dry-run/",
                self.admin_site.admin_view(self.dry_run_view),
                name="automation_journey_dry_run",
            ),
        ]
        return own + super().get_urls()

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        journey = self.get_object(request, object_id) if object_id else None
        if journey is not None:
            extra_context["journey"] = journey
            extra_context["flow_svg"] = flow_svg(journey)
            extra_context["can_act"] = self._can_write(request, journey)
        return super().changeform_view(request, object_id, form_url, extra_context)

    def _journey(self, request, object_id) -> Journey:
        journey = self.get_object(request, str(object_id))
        if journey is None:
            raise PermissionDenied
        return journey

    def action_view(self, request, object_id, action):
        journey = self._journey(request, object_id)
        service = ACTIONS.get(action)
        if request.method != "POST" or service is None or not self._can_write(request, journey):
            raise PermissionDenied
        try:
            journey = service(journey=journey)
            messages.success(request, f"Journey is now {journey.get_status_display()}.")
        except ValidationError as exc:
            for key, errors in exc.message_dict.items():
                messages.error(request, f"{key}: {' '.join(errors)}")
        return HttpResponseRedirect(reverse("admin:automation_journey_change", args=[object_id]))

    def dry_run_view(self, request, object_id):
        journey = self._journey(request, object_id)
        who = (request.GET.get("customer") or "").strip()
        customer = None
        error = ""
        if who:
            people = CustomerProfile.objects.for_tenant(journey.tenant)
            customer = (
                people.filter(email__iexact=who).first()
                if "@" in who
                else people.filter(pk=who).first()
                if _is_uuid(who)
                else None
            )
            if customer is None:
                error = "No customer of this tenant has that email or id."
        context = {
            **self.admin_site.each_context(request),
            "title": f"{journey.name}: test with one customer",
            "opts": self.model._meta,
            "journey": journey,
            "query": who,
            "customer": customer,
            "error": error,
            "path": journey_dry_run(journey=journey, customer=customer) if customer else [],
        }
        return TemplateResponse(request, "admin/automation/journey/dry_run.html", context)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


NODE_W, NODE_H, GAP_X, GAP_Y = 200, 58, 30, 44


def flow_svg(journey: Journey) -> str:
    """The current version's steps as an SVG (laid out by distance from the entry), each
    with the people there now and its visits (from the history rows)."""
    version = journey.current_version
    if version is None:
        return ""
    steps = list(version.steps.order_by("position"))
    by_key = {s.key: s for s in steps}
    level = {version.entry_key: 0}
    queue = [version.entry_key]
    while queue:
        key = queue.pop(0)
        for target in by_key[key].next_keys:
            if target in by_key and target not in level:
                level[target] = level[key] + 1
                queue.append(target)
    rows: dict[int, list[str]] = {}
    for step in steps:
        rows.setdefault(level.get(step.key, max(level.values(), default=0) + 1), []).append(
            step.key
        )
    place = {}
    for depth, keys in rows.items():
        for i, key in enumerate(keys):
            place[key] = (20 + i * (NODE_W + GAP_X), 20 + depth * (NODE_H + GAP_Y))
    width = 40 + max(len(k) for k in rows.values()) * (NODE_W + GAP_X)
    height = 40 + (max(rows) + 1) * (NODE_H + GAP_Y)
    counts = step_analytics(journey=journey)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="Journey flow" '
        'data-testid="journey-flow" font-family="sans-serif" font-size="12">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" '
        'markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#888"/></marker>'
        "</defs>",
    ]
    for step in steps:
        x, y = place[step.key]
        for n, target in enumerate(step.next_keys):
            if target not in place:
                continue
            tx, ty = place[target]
            label = _edge_label(step, n)
            parts.append(
                f'<line x1="{x + NODE_W / 2}" y1="{y + NODE_H}" x2="{tx + NODE_W / 2}" '
                f'y2="{ty}" stroke="#888" marker-end="url(#arrow)"/>'
            )
            if label:
                parts.append(
                    f'<text x="{(x + tx) / 2 + NODE_W / 2 + 4}" y="{(y + NODE_H + ty) / 2}" '
                    f'fill="#666">{escape(label)}</text>'
                )
    for step in steps:
        x, y = place[step.key]
        figures = counts.get(step.key, {})
        parts.append(
            f'<g data-step="{escape(step.key)}"><rect x="{x}" y="{y}" width="{NODE_W}" '
            f'height="{NODE_H}" rx="8" fill="#f4f4f5" stroke="#71717a"/>'
            f'<text x="{x + 10}" y="{y + 20}" font-weight="bold">{escape(step.key)} · '
            f"{escape(step.type)}</text>"
            f'<text x="{x + 10}" y="{y + 42}" fill="#3f3f46">now {figures.get("current", 0)}'
            f" · visits {figures.get('visits', 0)}</text></g>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308  (every text is escaped above)


def _edge_label(step, n: int) -> str:
    if step.type == "CONDITION":
        return ("yes", "no")[n]
    if step.type == "WAIT" and len(step.next_keys) == 2:
        return ("event", "timeout")[n]
    if step.type == "SPLIT":
        return f"{step.config['weights'][n]}"
    return ""


class EnrollmentInline(TabularInline):
    """A customer's journey enrollments (read-only), for the customer screen:
    ``CustomerProfileAdmin.inlines += [EnrollmentInline]``."""

    model = Enrollment
    fk_name = "customer"
    extra = 0
    can_delete = False
    show_change_link = False
    fields = ["journey", "status", "step_key", "entered_at", "ended_at", "exit_reason"]
    readonly_fields = fields
    ordering = ["-entered_at"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


admin.site.register(Journey, JourneyAdmin)

__all__ = ["EnrollmentInline", "JourneyAdmin", "flow_svg"]
