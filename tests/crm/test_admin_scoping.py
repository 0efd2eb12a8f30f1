"""The staff console shows a staff user only their tenants' rows; superusers see all."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from crm.models import ApiKey, StaffRole
from tests.factories import StaffMembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def console_a(client, staff_a):
    client.force_login(staff_a)
    return client


def test_staff_sees_only_their_tenants_clubs(console_a, club_a, club_b):
    page = console_a.get("/admin/crm/club/").content.decode()

    assert club_a.name in page
    assert club_b.name not in page


def test_staff_sees_only_their_tenant(console_a, tenant_a, tenant_b):
    page = console_a.get("/admin/crm/tenant/").content.decode()

    assert tenant_a.name in page
    assert tenant_b.name not in page


def test_another_tenants_row_is_not_found_for_staff(console_a, club_b):
    response = console_a.get(f"/admin/crm/club/{club_b.pk}/change/", follow=True)

    assert club_b.name not in response.content.decode()
    assert "doesn\u2019t exist" in response.content.decode()


def test_staff_cannot_point_a_club_at_another_tenant(console_a, tenant_a, tenant_b):
    response = console_a.post(
        "/admin/crm/club/add/",
        {"tenant": str(tenant_b.pk), "name": "Smuggled", "timezone": "Europe/London"},
    )

    assert response.status_code == 200  # the form again, with an error
    assert "Select a valid choice" in response.content.decode()
    from crm.models import Club

    assert not Club.objects.filter(name="Smuggled").exists()


def test_support_role_can_view_but_not_change(client, tenant_a, club_a):
    user = StaffMembershipFactory(
        tenant=tenant_a, user=UserFactory(username="sam"), role=StaffRole.SUPPORT
    ).user
    client.force_login(user)

    assert client.get("/admin/crm/club/").status_code == 200
    assert client.get("/admin/crm/club/add/").status_code == 403
    response = client.post(
        f"/admin/crm/club/{club_a.pk}/change/", {"name": "Renamed", "timezone": "UTC"}
    )
    assert response.status_code == 403
    club_a.refresh_from_db()
    assert club_a.name != "Renamed"


def test_superuser_sees_every_tenant(client, tenant_a, tenant_b):
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-123")
    client.force_login(root)

    page = client.get("/admin/crm/tenant/").content.decode()

    assert tenant_a.name in page
    assert tenant_b.name in page


def test_admin_issues_an_api_key_shown_once(console_a, tenant_a):
    response = console_a.post(
        "/admin/crm/apikey/add/", {"tenant": str(tenant_a.pk), "name": "Messaging"}, follow=True
    )

    page = response.content.decode()
    api_key = ApiKey.objects.get(tenant=tenant_a, name="Messaging")
    assert "it will not be shown again" in page
    assert f"crm_{api_key.prefix}_" in page
    later = console_a.get(f"/admin/crm/apikey/{api_key.pk}/change/").content.decode()
    assert f"crm_{api_key.prefix}_" not in later
    assert api_key.prefix in later


def test_admin_revokes_keys_with_an_action(console_a, api_key_a, api_a):
    response = console_a.post(
        "/admin/crm/apikey/",
        {"action": "revoke_keys", "_selected_action": [str(api_key_a.api_key.pk)]},
        follow=True,
    )

    assert "Revoked 1 key(s)." in response.content.decode()
    assert api_a.get("/api/v1/tenant").status_code == 401


def test_login_is_locked_after_repeated_failures(client, staff_a, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/admin/login/", {"username": "anna", "password": "wrong"})

    response = client.post(
        "/admin/login/", {"username": "anna", "password": "correct-horse-battery"}
    )

    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


# --- the tenant field of add forms ----------------------------------------------------------

ADD_FORMS = [
    "/admin/crm/club/add/",
    "/admin/marketing/messagetemplate/add/",
    "/admin/marketing/segment/add/",
    "/admin/marketing/campaign/add/",
]


def _tenant_picker(page: str) -> bool:
    return '<select name="tenant"' in page


@pytest.mark.parametrize("url", ADD_FORMS)
def test_one_tenant_staff_never_picks_the_tenant(console_a, tenant_a, url):
    page = console_a.get(url).content.decode()

    assert not _tenant_picker(page)
    assert f'type="hidden" name="tenant" value="{tenant_a.pk}"' in page


def test_one_tenant_staff_adds_a_club_to_their_tenant(console_a, tenant_a):
    response = console_a.post(
        "/admin/crm/club/add/", {"tenant": str(tenant_a.pk), "name": "New nine", "timezone": "UTC"}
    )

    assert response.status_code == 302
    from crm.models import Club

    assert Club.objects.get(name="New nine").tenant_id == tenant_a.pk


def test_a_form_posted_without_the_tenant_uses_the_staff_members_tenant(console_a, tenant_a):
    response = console_a.post(
        "/admin/marketing/messagetemplate/add/",
        {"name": "Welcome", "channel": "sms", "body": "Hi {{ customer.first_name }}"},
    )

    assert response.status_code == 302
    from marketing.models import MessageTemplate

    assert MessageTemplate.objects.get(name="Welcome").tenant_id == tenant_a.pk


def test_staff_of_two_tenants_pick_among_theirs_only(client, tenant_a, tenant_b):
    from tests.factories import TenantFactory

    third = TenantFactory(slug="third-c", name="Third C Golf")
    user = StaffMembershipFactory(tenant=tenant_a, user=UserFactory(username="tess")).user
    StaffMembershipFactory(tenant=tenant_b, user=user)
    client.force_login(user)

    page = client.get("/admin/crm/club/add/").content.decode()

    assert _tenant_picker(page)
    assert tenant_a.name in page
    assert tenant_b.name in page
    assert third.name not in page


def test_a_support_member_of_a_second_tenant_only_writes_to_one(client, tenant_a, tenant_b):
    """The picker lists tenants the user may write to: one writable tenant, no picker."""
    user = StaffMembershipFactory(tenant=tenant_a, user=UserFactory(username="uma")).user
    StaffMembershipFactory(tenant=tenant_b, user=user, role=StaffRole.SUPPORT)
    client.force_login(user)

    page = client.get("/admin/crm/club/add/").content.decode()

    assert not _tenant_picker(page)
    assert f'name="tenant" value="{tenant_a.pk}"' in page


def test_superuser_picks_from_every_tenant(client, tenant_a, tenant_b):
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-123")
    client.force_login(root)

    page = client.get("/admin/crm/club/add/").content.decode()

    assert _tenant_picker(page)
    assert tenant_a.name in page
    assert tenant_b.name in page


def test_a_one_tenant_marketer_adds_a_segment_without_the_tenant(client, tenant_a):
    marketer = StaffMembershipFactory(
        tenant=tenant_a, user=UserFactory(username="mo"), role=StaffRole.MARKETER
    ).user
    client.force_login(marketer)

    response = client.post(
        "/admin/marketing/segment/add/",
        {
            "name": "Members",
            "description": "",
            "type": "DYNAMIC",
            "criteria": '{"combinator": "AND", "rules": [{"field": "lifecycle_stage", '
            '"operator": "eq", "value": "MEMBER"}]}',
            "refresh_frequency": "DAILY",
        },
    )

    assert response.status_code == 302
    from marketing.models import Segment

    assert Segment.objects.get(name="Members").tenant_id == tenant_a.pk


def test_a_forged_tenant_on_a_one_tenant_form_is_refused(console_a, tenant_b):
    response = console_a.post(
        "/admin/marketing/messagetemplate/add/",
        {"tenant": str(tenant_b.pk), "name": "Forged", "channel": "sms", "body": "Hi"},
    )

    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    from marketing.models import MessageTemplate

    assert not MessageTemplate.objects.filter(name="Forged").exists()
