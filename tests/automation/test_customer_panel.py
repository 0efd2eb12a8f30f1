"""The customer page shows the person's journeys, and their journey messages beside the
campaign ones (a journey message has no campaign to link to)."""

from __future__ import annotations

import pytest

from marketing.models import Message

from .helpers import advance, customer, enroll, journey, send_end, template

pytestmark = pytest.mark.django_db


def test_the_customer_page_shows_journeys_and_journey_messages(client, staff_a, tenant_a):
    tpl = template(tenant_a, name="Welcome to the club")
    welcome = journey(tenant_a, send_end(tpl), name="New member welcome")
    ann = customer(tenant_a, email="ann@example.com", first_name="Ann")
    enroll(welcome, ann)
    advance(tenant_a)
    assert Message.objects.filter(customer=ann, campaign__isnull=True).count() == 1
    client.force_login(staff_a)

    page = client.get(f"/admin/customers/customerprofile/{ann.pk}/change/")

    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="journeys"' in html
    assert "New member welcome" in html
    assert "Journey: Welcome to the club" in html


def test_another_tenants_enrollments_are_not_on_the_page(client, staff_a, tenant_a, tenant_b):
    tpl = template(tenant_b)
    theirs = journey(tenant_b, send_end(tpl), name="Parkland onboarding")
    enroll(theirs, customer(tenant_b, email="ben@example.com"))
    ann = customer(tenant_a, email="ann@example.com")
    client.force_login(staff_a)

    html = client.get(f"/admin/customers/customerprofile/{ann.pk}/change/").content.decode()

    assert "In no journey." in html
    assert "Parkland onboarding" not in html
