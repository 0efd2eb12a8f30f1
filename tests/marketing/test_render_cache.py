"""A send renders each distinct set of the values a template reads once (``RenderCache``),
and what each recipient gets is exactly what ``render`` gives them on their own."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketing import templating
from marketing.templating import SMS_MAX_LENGTH, RenderCache, TemplateRenderError, render


@dataclass(frozen=True)
class Part:
    channel: str = "email"
    subject: str = ""
    html_body: str = ""
    text_body: str = ""
    body: str = ""


NEWSLETTER = Part(
    subject="News for {{ first_name }}",
    html_body='<p>Hello {{ first_name }}, <a href="https://club.example/book">book</a> '
    "at {{ club }}.</p>",
)
TEMPLATES = [
    NEWSLETTER,
    Part(  # the template's own link, bare, and a text part
        subject="{% if first_name %}Hi {{ first_name|title }}{% else %}Hello{% endif %}",
        html_body='<p>{{ full_name|upper }}</p><a href="{{ unsubscribe_url }}">Leave</a>',
        text_body="Hi {{ first_name }}\nLeave: {{ unsubscribe_url }}",
    ),
    Part(  # the link through a filter and in a condition: rendered per recipient
        subject="{{ unsubscribe_url|length }} {{ last_name|default:'friend' }}",
        html_body="{% if unsubscribe_url %}<p>{{ unsubscribe_url|truncatechars:12 }}</p>"
        "{% endif %}<p>{{ email|lower }}</p>",
    ),
    Part(channel="sms", body="Hi {{ first_name }}, tee off at {{ club }}"),
    Part(channel="sms", body="{{ first_name }} stop: {{ unsubscribe_url }}"),
]
NAMES = st.sampled_from(["Thabo", "Ann", "", "O'Neil", "<b>x</b>", 'a "q" & b', "Zoë"])
TOKENS = st.from_regex(r"[A-Za-z0-9_:.-]{4,40}", fullmatch=True)


def _context(first, last, token):
    return {
        "first_name": first,
        "last_name": last,
        "full_name": f"{first} {last}".strip(),
        "email": f"{first or 'x'}@example.com",
        "club": "Royal <Durban> & Co",
        "tenant": "Bench",
        "unsubscribe_url": f"https://crm.example/u/{token}",
    }


@settings(max_examples=150, deadline=None)
@given(
    recipients=st.lists(st.tuples(NAMES, NAMES, TOKENS), min_size=1, max_size=12),
    marketing=st.booleans(),
)
def test_every_recipient_gets_what_render_alone_gives(recipients, marketing):
    cache = RenderCache()
    for template in TEMPLATES:
        for first, last, token in recipients:
            context = _context(first, last, token)
            assert cache.render(template, context, marketing=marketing) == render(
                template, context, marketing=marketing
            )


def test_a_newsletter_renders_once_per_first_name(monkeypatch):
    calls = []
    original = templating.render

    def counted(template, context, *, marketing=True):
        calls.append(context["first_name"])
        return original(template, context, marketing=marketing)

    monkeypatch.setattr(templating, "render", counted)
    cache = RenderCache()
    firsts = ["Ann", "Bob", "Ann", "Cy", "Bob", "Ann"]
    outputs = [
        cache.render(NEWSLETTER, _context(first, "Last", f"tok{i}"))
        for i, first in enumerate(firsts)
    ]
    assert sorted(calls) == ["Ann", "Bob", "Cy"]
    # Each recipient still has their own unsubscribe link (the footer here).
    assert [f"https://crm.example/u/tok{i}" in out.html for i, out in enumerate(outputs)] == [
        True
    ] * 6
    assert all(
        f"Unsubscribe: https://crm.example/u/tok{i}" in out.text for i, out in enumerate(outputs)
    )


def test_an_unusual_url_is_rendered_for_its_recipient_alone(monkeypatch):
    cache = RenderCache()
    context = {**_context("Ann", "Lee", "x"), "unsubscribe_url": "https://crm.example/u/a b<c>"}
    assert cache.render(NEWSLETTER, context) == render(NEWSLETTER, context)


def test_a_text_message_over_the_limit_fails_for_each_recipient():
    long_sms = Part(channel="sms", body="x" * (SMS_MAX_LENGTH - 3) + "{{ first_name }}")
    cache = RenderCache()
    assert cache.render(long_sms, _context("Al", "B", "t1")).body.endswith("Al")
    for token in ("t2", "t3"):
        with pytest.raises(TemplateRenderError):
            cache.render(long_sms, _context("Thabo", "B", token))


def test_a_template_that_does_not_compile_fails_as_render_does():
    broken = Part(subject="{% for x in y %}{% endfor %}", html_body="<p>x</p>")
    with pytest.raises(TemplateRenderError) as cached:
        RenderCache().render(broken, _context("A", "B", "t"))
    with pytest.raises(TemplateRenderError) as direct:
        render(broken, _context("A", "B", "t"))
    assert cached.value.message_dict == direct.value.message_dict
