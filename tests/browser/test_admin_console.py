"""The staff console in a real browser: login, and a staff user sees only their tenant."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from tests.browser.helpers import login
from tests.factories import (
    PASSWORD,
    ClubFactory,
    StaffMembershipFactory,
    TenantFactory,
    UserFactory,
)


@pytest.fixture
def two_tenants(transactional_db):
    tenant_a = TenantFactory(slug="links-a", name="Links A Golf")
    tenant_b = TenantFactory(slug="parkland-b", name="Parkland B Golf", uk=True)
    club_a = ClubFactory(tenant=tenant_a, name="Links A Country Club")
    club_b = ClubFactory(tenant=tenant_b, name="Parkland B Golf Club")
    StaffMembershipFactory(tenant=tenant_a, user=UserFactory(username="anna"))
    return tenant_a, tenant_b, club_a, club_b


def test_staff_login_lands_on_the_console(page, live_server, two_tenants):
    login(page, live_server.url, "anna", PASSWORD)

    assert page.url == f"{live_server.url}/admin/"
    assert page.locator("body").inner_text().count("Club CRM") >= 1
    assert (
        page.locator(
            "form#logout-form, a[href$='/admin/logout/'], button:has-text('Log out')"
        ).count()
        >= 1
    )


def test_wrong_password_shows_the_error_and_stays_out(page, live_server, two_tenants):
    login(page, live_server.url, "anna", "not-the-password")

    assert "/admin/login/" in page.url
    assert "correct username and password" in page.locator("body").inner_text()


def test_staff_sees_only_their_tenants_rows(page, live_server, two_tenants):
    _tenant_a, _tenant_b, club_a, club_b = two_tenants
    login(page, live_server.url, "anna", PASSWORD)

    page.goto(f"{live_server.url}/admin/crm/club/")
    clubs = page.locator("#result_list, table").first.inner_text()
    page.goto(f"{live_server.url}/admin/crm/tenant/")
    tenants = page.locator("body").inner_text()
    page.goto(f"{live_server.url}/admin/crm/club/{club_b.pk}/change/")
    other = page.locator("body").inner_text()

    assert club_a.name in clubs
    assert club_b.name not in clubs
    assert "Links A Golf" in tenants
    assert "Parkland B Golf" not in tenants
    assert club_b.name not in other
    assert "doesn\u2019t exist" in other or "not found" in other.lower()


def test_superuser_sees_every_tenant(page, live_server, two_tenants):
    get_user_model().objects.create_superuser("root", "root@example.com", PASSWORD)
    login(page, live_server.url, "root", PASSWORD)

    page.goto(f"{live_server.url}/admin/crm/tenant/")
    tenants = page.locator("body").inner_text()

    assert "Links A Golf" in tenants
    assert "Parkland B Golf" in tenants
