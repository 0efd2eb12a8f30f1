"""Rendering message templates: the Django template language over a fixed context.

The engine has no loaders (no ``{% include %}`` or ``{% extends %}`` of files) and renders
unknown variables as empty text. The author's email HTML is sanitised with nh3 (Ammonia)
once per template (scripts, event handlers and ``javascript:`` links are dropped), and what
the context puts into it is autoescaped, so neither reaches a recipient.
Marketing email always carries a visible unsubscribe link: the template's own
``{{ unsubscribe_url }}`` or, when it has none, a footer added here.

Context (see docs/campaigns.md): ``first_name``, ``last_name``, ``full_name``, ``email``,
``club``, ``tenant``, ``unsubscribe_url``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import nh3
from django.core.exceptions import ValidationError
from django.template import Context, Engine, TemplateSyntaxError
from django.utils.html import escape, strip_tags

ENGINE = Engine(autoescape=True, string_if_invalid="", debug=False, loaders=[])
CONTEXT_KEYS = (
    "first_name",
    "last_name",
    "full_name",
    "email",
    "club",
    "tenant",
    "unsubscribe_url",
)
SMS_MAX_LENGTH = 1_600  # ten concatenated SMS parts
ALLOWED_TAGS = nh3.ALLOWED_TAGS | {
    "center",
    "font",
    "span",
    "div",
    "table",
    "tbody",
    "thead",
    "tr",
    "td",
    "th",
    "img",
    "hr",
    "br",
}
ALLOWED_ATTRIBUTES = {
    **{tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()},
    "*": {"style", "align", "width", "height", "class"},
    "a": {"href", "title", "target"},
    "img": {"src", "alt", "width", "height", "style"},
    "td": {"colspan", "rowspan", "style", "align", "valign", "width"},
    "th": {"colspan", "rowspan", "style", "align", "valign", "width"},
    "table": {"width", "cellpadding", "cellspacing", "border", "style", "align"},
    "font": {"color", "face", "size"},
}


@dataclass(frozen=True)
class Rendered:
    subject: str = ""
    html: str = ""
    text: str = ""
    body: str = ""


@lru_cache(maxsize=512)
def _compiled(source: str):
    return ENGINE.from_string(source)


def _compile(source: str, field: str):
    """Compiled once per distinct source (a campaign renders the same template thousands
    of times)."""
    try:
        return _compiled(source)
    except TemplateSyntaxError as exc:
        raise ValidationError({field: [f"Template error: {exc}"]}) from exc


def template_validate(
    *, channel: str, subject: str, html_body: str, text_body: str, body: str
) -> None:
    """Every part compiles and the parts the channel needs are there."""
    errors: dict[str, list[str]] = {}
    parts = {"subject": subject, "html_body": html_body, "text_body": text_body, "body": body}
    for field, source in parts.items():
        try:
            _compile(source, field)
        except ValidationError as exc:
            errors.update(exc.message_dict)
    if channel == "email":
        if not subject.strip():
            errors.setdefault("subject", []).append("An email needs a subject.")
        if not (html_body.strip() or text_body.strip()):
            errors.setdefault("html_body", []).append("Write the HTML or the text version.")
    elif not body.strip():
        errors.setdefault("body", []).append(f"A {channel} message needs a body.")
    if channel == "sms" and len(body) > SMS_MAX_LENGTH:
        errors.setdefault("body", []).append(f"At most {SMS_MAX_LENGTH} characters.")
    if errors:
        raise ValidationError(errors)


def _render(source: str, context: dict[str, Any], *, autoescape: bool) -> str:
    if not source:
        return ""
    return _compile(source, "body").render(Context(context, autoescape=autoescape))


@lru_cache(maxsize=256)
def _sanitized(source: str) -> str:
    """The template's HTML, sanitised once: what the author wrote is cleaned, and what the
    context puts into it is autoescaped when it renders."""
    return sanitize(source) if source else ""


@lru_cache(maxsize=256)
def _text_of(html_source: str) -> str:
    """A plain-text template derived from the HTML one (tags dropped, template tags kept)."""
    return "\n".join(
        line.strip() for line in strip_tags(_sanitized(html_source)).splitlines() if line.strip()
    )


def sanitize(html: str) -> str:
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto", "tel"},
        link_rel="noopener noreferrer",
    )


def render(template, context: dict[str, Any], *, marketing: bool = True) -> Rendered:
    """Render a template for one recipient (``context`` keys: ``CONTEXT_KEYS``)."""
    if template.channel != "email":
        return Rendered(body=_render(template.body, context, autoescape=False).strip())
    subject = " ".join(_render(template.subject, context, autoescape=False).split())
    html = _render(_sanitized(template.html_body), context, autoescape=True)
    text_source = template.text_body or _text_of(template.html_body)
    text = _render(text_source, context, autoescape=False).strip()
    unsubscribe = context.get("unsubscribe_url", "")
    if marketing and unsubscribe:
        if html and "unsubscribe_url" not in template.html_body:
            html += (
                '<p style="font-size:12px;color:#666">You receive this because you are on the '
                f'club\'s mailing list. <a href="{escape(unsubscribe)}">Unsubscribe</a></p>'
            )
        if "unsubscribe_url" not in template.text_body:
            text += f"\n\nUnsubscribe: {unsubscribe}"
    return Rendered(subject=subject, html=html, text=text)


def sample_context(tenant, club_name: str = "", customer=None) -> dict[str, Any]:
    """The context of a preview: a customer's own values, or placeholders."""
    if customer is not None:
        return recipient_context(tenant, club_name, customer, "https://example.invalid/u/preview")
    return {
        "first_name": "Thabo",
        "last_name": "Nkosi",
        "full_name": "Thabo Nkosi",
        "email": "thabo@example.com",
        "club": club_name or tenant.name,
        "tenant": tenant.name,
        "unsubscribe_url": "https://example.invalid/u/preview",
    }


def recipient_context(tenant, club_name: str, customer, unsubscribe_url: str) -> dict[str, Any]:
    return {
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "full_name": customer.full_name,
        "email": customer.email or "",
        "club": club_name or tenant.name,
        "tenant": tenant.name,
        "unsubscribe_url": unsubscribe_url,
    }
