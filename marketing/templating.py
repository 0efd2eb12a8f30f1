"""Rendering message templates: a restricted Django template language over a fixed context.

Templates are written by tenant staff and rendered for thousands of recipients whose names
they do not control, so the engine is an allow-list, not Django's full language:

* tags: ``if`` / ``elif`` / ``else`` / ``endif`` and ``comment`` only. No ``for`` (nothing in
  the context is a list, and a loop is the only way a template's work can outgrow its
  source), no ``autoescape``, ``include``, ``extends``, ``load``, ``lorem``, ``now`` ...
* filters: ``ALLOWED_FILTERS`` (none that pads, repeats or marks text safe: no ``safe``,
  ``stringformat``, ``ljust``, ``center`` ...);
* variables: plain names (``{{ first_name }}``); no ``a.b`` lookups. Unknown names render
  empty.

A template is checked when it is compiled (``_compiled``: a walk over the parsed nodes), so
``template_validate`` rejects what the sender could not render, with a field error. Without
loops, includes or recursion the work of a render is bounded by the source (at most
``MAX_SOURCE_LENGTH`` characters) times the length of the context values, so it needs no
timer; the output is still capped (``MAX_OUTPUT_LENGTH``, SMS ``SMS_MAX_LENGTH``) and a render
past the cap raises ``TemplateRenderError``.

The rendered HTML is sanitised with nh3 (Ammonia): scripts, event handlers and
``javascript:`` links are dropped from what goes out, whatever produced them. Marketing
email always carries a visible unsubscribe link: the template's own ``{{ unsubscribe_url }}``
or, when it has none, a footer added after sanitising.

Context (see docs/campaigns.md): ``first_name``, ``last_name``, ``full_name``, ``email``,
``club``, ``tenant``, ``unsubscribe_url``.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from html import unescape
from typing import Any

import nh3
from django.core.exceptions import ValidationError
from django.template import Context, Engine, Library, TemplateSyntaxError, defaultfilters
from django.template import Template as DjangoTemplate
from django.template.base import FilterExpression, Lexer, TokenType, Variable, VariableNode
from django.template.defaulttags import IfNode
from django.template.defaulttags import register as default_tags
from django.utils.html import escape

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
MAX_SOURCE_LENGTH = 100_000  # characters of one template part
MAX_OUTPUT_LENGTH = 500_000  # characters of one rendered part (an email this big is refused)
ALLOWED_TAGS_TEMPLATE = ("if", "elif", "else", "endif", "comment", "endcomment")
ALLOWED_FILTERS = (
    "capfirst",
    "cut",
    "default",
    "default_if_none",
    "first",
    "last",
    "length",
    "linebreaksbr",
    "lower",
    "striptags",
    "title",
    "truncatechars",
    "truncatewords",
    "upper",
    "urlencode",
    "yesno",
)
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

# The only tags and filters a template can use: Django's own implementations, picked by name.
LIBRARY = Library()
LIBRARY.tags.update({name: default_tags.tags[name] for name in ("if", "comment")})
LIBRARY.filters.update({name: defaultfilters.register.filters[name] for name in ALLOWED_FILTERS})


class _RestrictedEngine(Engine):
    """An engine whose builtins are ``LIBRARY`` alone (Django's engine always adds its
    default tags and filters, ``include`` and ``extends`` among them), with no loaders and
    no loadable libraries."""

    def get_template_builtins(self, builtins):
        return [LIBRARY]


ENGINE = _RestrictedEngine(
    autoescape=True, string_if_invalid="", debug=False, loaders=[], libraries={}, builtins=[]
)
# What the save-time check renders: placeholder values about as long as real ones.
PLACEHOLDER_CONTEXT = {
    "first_name": "Thabo",
    "last_name": "Nkosi",
    "full_name": "Thabo Nkosi",
    "email": "thabo.nkosi@example.com",
    "club": "Royal Johannesburg Golf Club",
    "tenant": "Royal Johannesburg Golf Club",
    "unsubscribe_url": "https://example.invalid/u/preview",
}


class TemplateRenderError(ValidationError):
    """A template that cannot be rendered (disallowed construct, output past a cap). A
    ``ValidationError`` with the field, so the API answers 400 and the admin shows it;
    the sender fails the message with it."""


@dataclass(frozen=True)
class Rendered:
    subject: str = ""
    html: str = ""
    text: str = ""
    body: str = ""


def _check_tags(source: str) -> None:
    """Refuse any tag but the allowed ones before Django parses (its own message, "Did you
    forget to register or load this tag?", would point staff the wrong way)."""
    for token in Lexer(source).tokenize():
        if token.token_type is TokenType.BLOCK:
            name = (token.split_contents() or [""])[0]
            if name not in ALLOWED_TAGS_TEMPLATE:
                raise TemplateSyntaxError(
                    f"The {{% {name} %}} tag is not allowed (line {token.lineno}); "
                    "use {% if %} / {% elif %} / {% else %} / {% endif %}."
                )


def _expressions(node) -> Iterator[FilterExpression]:
    """The filter expressions of a node: a variable's, or the operands of an if's
    conditions (a tree of operators whose leaves hold a ``value``)."""
    if isinstance(node, VariableNode):
        yield node.filter_expression
    elif isinstance(node, IfNode):
        stack: list[Any] = [
            condition for condition, _ in node.conditions_nodelists if condition is not None
        ]
        while stack:
            item = stack.pop()
            if isinstance(getattr(item, "value", None), FilterExpression):
                yield item.value
            operands = (getattr(item, "first", None), getattr(item, "second", None))
            stack.extend(operand for operand in operands if operand is not None)


def _check_lookups(template: DjangoTemplate) -> None:
    """Only plain names: ``{{ first_name.upper }}`` would call a method of the value."""
    nodes = template.nodelist.get_nodes_by_type(VariableNode) + (
        template.nodelist.get_nodes_by_type(IfNode)
    )
    for node in nodes:
        for expression in _expressions(node):
            variables = [expression.var] + [arg for lookup, arg in _args(expression) if lookup]
            for variable in variables:
                if (
                    isinstance(variable, Variable)
                    and variable.lookups
                    and len(variable.lookups) > 1
                ):
                    raise TemplateSyntaxError(
                        f"Use a plain name instead of {variable.var!r}: "
                        f"the names are {', '.join(CONTEXT_KEYS)}."
                    )


def _args(expression: FilterExpression) -> list[tuple[bool, Any]]:
    return [arg for _, args in expression.filters for arg in args]


@lru_cache(maxsize=512)
def _compiled(source: str) -> DjangoTemplate:
    """Compiled and checked once per distinct source (a campaign renders the same template
    thousands of times)."""
    if len(source) > MAX_SOURCE_LENGTH:
        raise TemplateSyntaxError(f"At most {MAX_SOURCE_LENGTH:,} characters.")
    _check_tags(source)
    template = ENGINE.from_string(source)
    _check_lookups(template)
    return template


def _compile(source: str, field: str) -> DjangoTemplate:
    try:
        return _compiled(source)
    except TemplateSyntaxError as exc:
        raise TemplateRenderError({field: [f"Template error: {exc}"]}) from exc


def _render(source: str, context: dict[str, Any], *, autoescape: bool, field: str) -> str:
    if not source:
        return ""
    try:
        output = _compile(source, field).render(Context(context, autoescape=autoescape))
    except TemplateRenderError:
        raise
    except Exception as exc:  # a filter refusing a value: the template's fault, not the send's
        raise TemplateRenderError({field: [f"Template error: {exc}"]}) from exc
    if len(output) > MAX_OUTPUT_LENGTH:
        raise TemplateRenderError(
            {field: [f"The rendered text is longer than {MAX_OUTPUT_LENGTH:,} characters."]}
        )
    return output


def subject_render(source: str, context: dict[str, Any], *, field: str = "subject") -> str:
    """A subject: plain text on one line (a header, so not HTML-escaped)."""
    return " ".join(_render(source, context, autoescape=False, field=field).split())


def subject_validate(*, subject: str, field: str = "subject") -> None:
    """A subject (a template's, or an A/B variant's) compiles and renders."""
    subject_render(subject, PLACEHOLDER_CONTEXT, field=field)


def template_validate(
    *, channel: str, subject: str, html_body: str, text_body: str, body: str
) -> None:
    """Every part compiles under the restricted engine, the parts the channel needs are
    there, and a render for placeholder values fits (an SMS at most ``SMS_MAX_LENGTH``
    characters as sent, not as written)."""
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
    if not errors:
        try:
            render(_Draft(channel, subject, html_body, text_body, body), PLACEHOLDER_CONTEXT)
        except ValidationError as exc:
            errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)


@dataclass(frozen=True)
class _Draft:
    """The parts of a template not saved yet (what ``render`` reads of a MessageTemplate)."""

    channel: str
    subject: str
    html_body: str
    text_body: str
    body: str


def _text_of(html: str) -> str:
    """The plain-text part derived from the rendered, sanitised HTML (tags dropped with
    what scripts and styles held, entities decoded: it is not HTML)."""
    text = unescape(nh3.clean(html, tags=set()))
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


def sanitize(html: str) -> str:
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto", "tel"},
        link_rel="noopener noreferrer",
    )


def render(template, context: dict[str, Any], *, marketing: bool = True) -> Rendered:
    """Render a template for one recipient (``context`` keys: ``CONTEXT_KEYS``). Raises
    ``TemplateRenderError`` (naming the field) when it cannot."""
    if template.channel != "email":
        body = _render(template.body, context, autoescape=False, field="body").strip()
        if template.channel == "sms" and len(body) > SMS_MAX_LENGTH:
            raise TemplateRenderError(
                {"body": [f"At most {SMS_MAX_LENGTH:,} characters (this one is {len(body):,})."]}
            )
        return Rendered(body=body)
    subject = subject_render(template.subject, context)
    # Sanitised as rendered: whatever a value or a filter produced is cleaned too.
    html = _render(template.html_body, context, autoescape=True, field="html_body")
    html = sanitize(html) if html else ""
    if template.text_body:
        text = _render(template.text_body, context, autoescape=False, field="text_body").strip()
    else:
        text = _text_of(html)
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


def _names_read(template) -> tuple[frozenset[str], bool]:
    """The context names the parts of ``template`` read, and whether every use of
    ``unsubscribe_url`` is bare (``{{ unsubscribe_url }}``: no filter, no condition)."""
    names: set[str] = set()
    unsubscribe_bare = True
    for source in (template.subject, template.html_body, template.text_body, template.body):
        if not source:
            continue
        nodelist = _compiled(source).nodelist
        for node in nodelist.get_nodes_by_type(VariableNode) + nodelist.get_nodes_by_type(IfNode):
            for expression in _expressions(node):
                variables = [expression.var] + [arg for lookup, arg in _args(expression) if lookup]
                for variable in variables:
                    if isinstance(variable, Variable):
                        name = str(variable.var)
                        names.add(name)
                        if name == "unsubscribe_url" and (
                            isinstance(node, IfNode) or expression.filters
                        ):
                            unsubscribe_bare = False
    return frozenset(names), unsubscribe_bare


class RenderCache:
    """``render`` for many recipients of one send, each distinct set of the values a
    template reads rendered (and sanitised) once: a newsletter that greets by first name
    renders once per first name, not once per recipient.

    The unsubscribe URL differs for every recipient: when the template uses it only bare
    (``{{ unsubscribe_url }}``, no filter, no condition) or not at all (the footer), the
    cached render holds a random marker in its place and each recipient's URL is put in
    afterwards; the URLs the sender makes hold no character that escaping, sanitising or
    whitespace folding would change, so the result is the same text ``render`` gives.
    Otherwise the URL is part of the key (no reuse). Failed renders are not kept (each
    recipient's raises again). Bounded: past ``max_chars`` of kept output it starts over."""

    def __init__(self, *, max_chars: int = 20_000_000) -> None:
        self._marker = f"https://unsubscribe.invalid/{secrets.token_hex(16)}"
        self._plans: dict[tuple[str, ...], tuple[tuple[str, ...], bool]] = {}
        self._kept: dict[tuple, Rendered] = {}
        self._chars = 0
        self._max_chars = max_chars

    def render(self, template, context: dict[str, Any], *, marketing: bool = True) -> Rendered:
        parts = (
            template.channel,
            template.subject,
            template.html_body,
            template.text_body,
            template.body,
        )
        plan = self._plans.get(parts)
        if plan is None:
            try:
                names, bare = _names_read(template)
            except TemplateSyntaxError:
                return render(template, context, marketing=marketing)
            # A text message's length is checked as rendered: the marker must not stand in
            # for a URL of another length there.
            bare = bare and (template.channel == "email" or "unsubscribe_url" not in names)
            plan = (tuple(sorted(names - {"unsubscribe_url"})), bare)
            self._plans[parts] = plan
        names_read, bare = plan
        url = context.get("unsubscribe_url", "")
        if not bare or not _URL_SAFE.fullmatch(url):
            return render(template, context, marketing=marketing)
        key = (parts, marketing, tuple(context.get(name) for name in names_read))
        rendered = self._kept.get(key)
        if rendered is None:
            try:
                rendered = render(
                    template, {**context, "unsubscribe_url": self._marker}, marketing=marketing
                )
            except TemplateRenderError:  # raised (or not) as rendered for this recipient
                return render(template, context, marketing=marketing)
            size = len(rendered.subject) + len(rendered.html) + len(rendered.text)
            if size > MAX_OUTPUT_LENGTH // 2:
                # Near the output cap, where the marker's length could decide: as it is.
                return render(template, context, marketing=marketing)
            if self._chars + size > self._max_chars:
                self._kept.clear()
                self._chars = 0
            self._kept[key] = rendered
            self._chars += size + len(rendered.body)
        marker = self._marker
        return Rendered(
            subject=rendered.subject.replace(marker, url),
            html=rendered.html.replace(marker, url),
            text=rendered.text.replace(marker, url),
            body=rendered.body.replace(marker, url),
        )


# What an unsubscribe URL the sender makes is made of: escaping, sanitising and folding
# whitespace leave these characters alone.
_URL_SAFE = re.compile(r"[A-Za-z0-9_:/._~+=-]*")


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
