"""The visual rule builder: a form widget for criteria of the rule engine (``crm.rules``).

One widget for every screen that edits criteria (segments now, journey conditions and
promotion filters later). It renders a hidden input that holds the criteria JSON, so the
form's server-side validation stays the single source of truth, and a small script
(``crm/static/crm/rule_builder.js``, no framework, served locally) that draws the editor:
grouped typed fields, operators that fit the type, value inputs that fit the type, nested
AND/OR groups up to the engine's depth, errors shown on the rule whose path they name, a
debounced live count and a raw JSON view that round-trips.

A screen gives it two URLs (see docs/segments.md, "The rule builder"):

- ``fields_url``: GET ``?tenant=<id>`` -> ``{"fields": [...], "currency", "options"}``
  (``rule_fields_payload`` builds the answer);
- ``count_url``: POST ``{"tenant", "criteria"}`` -> ``{"count"}``, or 400
  ``{"errors": {"criteria.rules[0].field": [...]}}``.
"""

from __future__ import annotations

from typing import Any

from django import forms

from . import rules
from .models import Club, Tenant

#: Paths in errors are prefixed like this by the services (``criteria.rules[1].value``).
ERROR_PREFIX = "criteria."


class RuleBuilderWidget(forms.Widget):
    template_name = "crm/widgets/rule_builder.html"

    class Media:
        css = {"all": ("crm/rule_builder.css",)}
        js = ("crm/rule_builder.js",)

    def __init__(
        self,
        *,
        fields_url: Any,
        count_url: Any,
        tenant_field: str = "tenant",
        noun: str = "customers",
        attrs: dict | None = None,
    ) -> None:
        super().__init__(attrs)
        self.fields_url = fields_url  # may be lazy (reverse_lazy): URLs load after forms
        self.count_url = count_url
        self.tenant_field = tenant_field
        self.noun = noun
        #: The tenant when the form has no tenant input (an existing row's tenant is fixed).
        self.tenant_id: str = ""
        #: Errors of the last validation, keyed by path; the form sets them in ``clean``.
        self.errors: dict[str, list[str]] = {}

    def get_context(self, name: str, value: Any, attrs: dict | None) -> dict:
        context = super().get_context(name, value, attrs)
        context["builder"] = {
            "fields_url": str(self.fields_url),
            "count_url": str(self.count_url),
            "tenant_field": self.tenant_field,
            "tenant": self.tenant_id,
            "noun": self.noun,
            "errors": self.errors,
            "error_prefix": ERROR_PREFIX,
            "max_depth": rules.MAX_DEPTH,
            "max_rules": rules.MAX_RULES,
            "max_in_values": rules.MAX_IN_VALUES,
            "max_relative_days": rules.MAX_RELATIVE_DAYS,
        }
        context["config_id"] = f"{context['widget']['attrs'].get('id') or name}-rule-builder"
        return context


def rule_fields_payload(
    *,
    tenant: Tenant | None,
    subject: str = "customer",
    options: dict[str, list[dict[str, str]]] | None = None,
) -> dict[str, Any]:
    """What the builder needs to draw its inputs: the typed fields, the tenant's currency
    (money is typed in major units) and choices for id fields (the tenant's clubs, plus
    ``options`` the screen adds, e.g. the tenant's segments)."""
    choices: dict[str, list[dict[str, str]]] = {}
    if tenant is not None:
        clubs = Club.objects.for_tenant(tenant).order_by("name").values_list("pk", "name")
        choices["home_club"] = [{"value": str(pk), "label": label} for pk, label in clubs]
        choices.update(options or {})
    return {
        "fields": rules.registry(subject).describe(),
        "currency": tenant.currency if tenant is not None else "",
        "options": choices,
    }
