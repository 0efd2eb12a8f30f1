"""The journey screens: the editor validates through the services (errors keyed by step),
the flow is drawn server-side with per-step counts, state buttons, the dry run; another
tenant's journey is not reachable."""

from __future__ import annotations

import json

import pytest
import time_machine

from automation.models import Journey, JourneyStatus

from .helpers import NOON, advance, customer, enroll, journey, send_end, template

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _noon():
    with time_machine.travel(NOON, tick=True):
        yield


@pytest.fixture
def console(client, staff_a):
    client.force_login(staff_a)
    return client


def _form(tenant, tpl, **extra):
    return {
        "tenant": str(tenant.pk),
        "name": "Welcome",
        "description": "",
        "timezone": "",
        "trigger": json.dumps({"type": "manual"}),
        "entry_criteria": "{}",
        "reentry": "never",
        "reentry_days": "0",
        "goal": "{}",
        "exit_criteria": "{}",
        "holdout_percent": "0",
        "steps": json.dumps(send_end(tpl)),
        **extra,
    }


def test_the_editor_saves_steps_and_reports_errors_by_step(console, tenant_a):
    tpl = template(tenant_a)
    broken = send_end(tpl)
    broken[0]["next"] = ["nowhere"]
    page = console.post(
        "/admin/automation/journey/add/", _form(tenant_a, tpl, steps=json.dumps(broken))
    )
    assert page.status_code == 200
    assert "steps.send.next: No step has the key" in page.content.decode()
    assert not Journey.objects.exists()
    response = console.post("/admin/automation/journey/add/", _form(tenant_a, tpl))
    assert response.status_code == 302
    created = Journey.objects.get()
    assert [s.key for s in created.current_version.steps.all()] == ["send", "end"]


def test_the_journey_page_draws_the_flow_with_counts_and_acts(console, tenant_a):
    j = journey(tenant_a, send_end(template(tenant_a)))
    enroll(j, customer(tenant_a), customer(tenant_a), now=NOON)
    advance(tenant_a)
    page = console.get(f"/admin/automation/journey/{j.pk}/change/")
    svg = str(page.context["flow_svg"])
    assert svg.startswith("<svg") and 'data-step="send"' in svg
    assert "now 0 · visits 2" in svg
    assert "<script" not in svg and "http" not in svg.replace("http://www.w3.org/2000/svg", "")
    response = console.post(f"/admin/automation/journey/{j.pk}/do/pause/", follow=True)
    assert "Journey is now Paused" in response.content.decode()
    assert Journey.objects.get(pk=j.pk).status == JourneyStatus.PAUSED
    response = console.post(f"/admin/automation/journey/{j.pk}/do/pause/", follow=True)
    assert "cannot become paused" in response.content.decode()


def test_the_dry_run_shows_the_path_and_why(console, tenant_a):
    tpl = template(tenant_a)
    steps = [
        {
            "key": "member",
            "type": "CONDITION",
            "config": {
                "criteria": {
                    "combinator": "AND",
                    "rules": [{"field": "lifecycle_stage", "operator": "eq", "value": "MEMBER"}],
                }
            },
            "next": ["send", "end"],
        },
        *send_end(tpl),
    ]
    j = journey(tenant_a, steps)
    customer(tenant_a, email="ann@example.com", lifecycle_stage="MEMBER", email_opt_in=False)
    page = console.get(f"/admin/automation/journey/{j.pk}/dry-run/?customer=ann@example.com")
    assert page.context["path"] == [
        {"step": "member", "type": "CONDITION", "what": "yes: the profile matches the criteria"},
        {"step": "send", "type": "SEND", "what": "would be skipped: no consent"},
        {"step": "end", "type": "END", "what": "ends the journey"},
    ]
    assert not j.enrollments.exists()
    missing = console.get(f"/admin/automation/journey/{j.pk}/dry-run/?customer=who@example.com")
    assert "No customer of this tenant" in missing.content.decode()


def test_another_tenants_journey_is_not_reachable(console, tenant_b):
    j = journey(tenant_b, send_end(template(tenant_b)))
    assert console.get(f"/admin/automation/journey/{j.pk}/change/").status_code in (302, 404)
    assert console.get(f"/admin/automation/journey/{j.pk}/dry-run/").status_code == 403
    assert console.post(f"/admin/automation/journey/{j.pk}/do/pause/").status_code == 403
    assert Journey.objects.get(pk=j.pk).status == JourneyStatus.ACTIVE
