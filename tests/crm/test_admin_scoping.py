"""The staff console shows a staff user only their tenants' rows; superusers see all. Three
personas: the tenant-A admin (``staff_a``), a tenant-A marketer (``marketer_a``, a lower role
of the same tenant) and tenant B's admin (the outsider)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from crm.models import ApiKey, StaffMembership, StaffRole
from marketing.models import Campaign, CampaignStatus, MessageTemplate
from tests.customers.helpers import person
from tests.factories import MessageTemplateFactory, StaffMembershipFactory, UserFactory
from tests.marketing.builders import make_campaign

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


def test_list_filters_name_only_the_staff_users_tenants(console_a, tenant_a, tenant_b, club_a):
    for screen in ("club", "staffmembership", "apikey"):
        page = console_a.get(f"/admin/crm/{screen}/").content.decode()

        assert tenant_b.name not in page, screen
        assert str(tenant_b.pk) not in page, screen


def test_superusers_filters_name_every_tenant(client, tenant_a, tenant_b, club_a, club_b):
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-123")
    client.force_login(root)

    page = client.get("/admin/crm/club/").content.decode()

    assert f"tenant__id__exact={tenant_a.pk}" in page
    assert f"tenant__id__exact={tenant_b.pk}" in page


def test_tenant_admin_adds_a_new_staff_login(console_a, tenant_a):
    response = console_a.post(
        "/admin/crm/staffmembership/add/",
        {
            "tenant": str(tenant_a.pk),
            "new_username": "sipho",
            "new_email": "sipho@links-a.example",
            "new_password": "a-long-enough-passphrase-42",
            "role": StaffRole.MARKETER,
        },
    )

    assert response.status_code == 302
    sipho = get_user_model().objects.get(username="sipho")
    assert sipho.is_staff and not sipho.is_superuser
    assert sipho.check_password("a-long-enough-passphrase-42")
    membership = sipho.crm_memberships.get()
    assert (membership.tenant_id, membership.role) == (tenant_a.pk, StaffRole.MARKETER)


def test_tenant_admin_cannot_see_take_over_or_add_other_tenants_users(console_a, tenant_a, staff_b):
    form = console_a.get("/admin/crm/staffmembership/add/").content.decode()
    picked = console_a.post(
        "/admin/crm/staffmembership/add/",
        {"tenant": str(tenant_a.pk), "user": str(staff_b.pk), "role": StaffRole.ADMIN},
    )
    named = console_a.post(
        "/admin/crm/staffmembership/add/",
        {
            "tenant": str(tenant_a.pk),
            "new_username": staff_b.username,
            "new_password": "a-long-enough-passphrase-42",
            "role": StaffRole.ADMIN,
        },
    )

    assert staff_b.username not in form
    assert "Select a valid choice" in picked.content.decode()
    assert "This username is taken." in named.content.decode()
    staff_b.refresh_from_db()
    assert not staff_b.check_password("a-long-enough-passphrase-42")
    assert list(staff_b.crm_memberships.values_list("tenant__slug", flat=True)) == ["parkland-b"]


def test_tenant_admin_cannot_add_staff_to_another_tenant(console_a, tenant_b):
    response = console_a.post(
        "/admin/crm/staffmembership/add/",
        {
            "tenant": str(tenant_b.pk),
            "new_username": "mole",
            "new_password": "a-long-enough-passphrase-42",
            "role": StaffRole.ADMIN,
        },
    )

    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not get_user_model().objects.filter(username="mole").exists()


# ----------------------------------------------------------------------------- the marketer


@pytest.fixture
def console_marketer(client, marketer_a):
    client.force_login(marketer_a)
    return client


def test_marketer_sees_tenant_a_rows_and_not_tenant_b(
    console_marketer, tenant_a, tenant_b, club_a, club_b
):
    MessageTemplateFactory(tenant=tenant_a, name="Links A newsletter")
    MessageTemplateFactory(tenant=tenant_b, name="Parkland B newsletter")

    clubs = console_marketer.get("/admin/crm/club/").content.decode()
    templates = console_marketer.get("/admin/marketing/messagetemplate/").content.decode()
    theirs = console_marketer.get(f"/admin/crm/club/{club_b.pk}/change/", follow=True)

    assert club_a.name in clubs and club_b.name not in clubs
    assert "Links A newsletter" in templates and "Parkland B newsletter" not in templates
    assert club_b.name not in theirs.content.decode()
    assert "doesn\u2019t exist" in theirs.content.decode()


def test_marketer_cannot_issue_or_revoke_api_keys(console_marketer, tenant_a, api_key_a, api_a):
    assert console_marketer.get("/admin/crm/apikey/add/").status_code == 403
    response = console_marketer.post(
        "/admin/crm/apikey/add/", {"tenant": str(tenant_a.pk), "name": "Sneaky"}
    )
    assert response.status_code == 403
    assert not ApiKey.objects.filter(name="Sneaky").exists()

    console_marketer.post(
        "/admin/crm/apikey/",
        {"action": "revoke_keys", "_selected_action": [str(api_key_a.api_key.pk)]},
    )
    assert api_a.get("/api/v1/tenant").status_code == 200  # the key still works


def test_marketer_cannot_manage_staff_or_promote_themselves(console_marketer, tenant_a, marketer_a):
    membership = StaffMembership.objects.get(user=marketer_a)

    assert console_marketer.get("/admin/crm/staffmembership/add/").status_code == 403
    response = console_marketer.post(
        f"/admin/crm/staffmembership/{membership.pk}/change/",
        {"tenant": str(tenant_a.pk), "user": str(marketer_a.pk), "role": StaffRole.ADMIN},
    )
    assert response.status_code == 403
    membership.refresh_from_db()
    assert membership.role == StaffRole.MARKETER


def test_marketer_cannot_change_clubs_or_erase_customers(console_marketer, tenant_a, club_a):
    erin = person(tenant_a, email="erin@example.com")

    response = console_marketer.post(
        f"/admin/crm/club/{club_a.pk}/change/", {"name": "Renamed", "timezone": "UTC"}
    )
    assert response.status_code == 403
    club_a.refresh_from_db()
    assert club_a.name == "Links A Country Club"
    url = f"/admin/customers/customerprofile/{erin.pk}/erase/"
    assert console_marketer.get(url).status_code == 403
    assert console_marketer.post(url, {"confirm": "erase"}).status_code == 403
    erin.refresh_from_db()
    assert erin.email == "erin@example.com"


def test_marketer_writes_templates_for_tenant_a_only(console_marketer, tenant_a, tenant_b):
    body = {
        "name": "Spring news",
        "channel": "email",
        "subject": "Hello {{ first_name }}",
        "html_body": "<p>Spring is here</p>",
        "text_body": "",
        "body": "",
    }

    ours = console_marketer.post(
        "/admin/marketing/messagetemplate/add/", {**body, "tenant": str(tenant_a.pk)}
    )
    theirs = console_marketer.post(
        "/admin/marketing/messagetemplate/add/",
        {**body, "tenant": str(tenant_b.pk), "name": "Smuggled"},
    )

    assert ours.status_code == 302
    assert MessageTemplate.objects.get(name="Spring news").tenant == tenant_a
    assert theirs.status_code == 200  # the form again, with an error
    assert "Select a valid choice" in theirs.content.decode()
    assert not MessageTemplate.objects.filter(name="Smuggled").exists()


def test_marketer_schedules_a_campaign(console_marketer, tenant_a):
    campaign = make_campaign(tenant_a, scheduled_at=timezone.now() + timedelta(hours=1))

    response = console_marketer.post(
        f"/admin/marketing/campaign/{campaign.pk}/do/schedule/", follow=True
    )

    assert "now Scheduled" in response.content.decode()
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.SCHEDULED


def test_support_cannot_write_marketing_screens(client, tenant_a):
    support = StaffMembershipFactory(
        tenant=tenant_a, user=UserFactory(username="sue"), role=StaffRole.SUPPORT
    ).user
    client.force_login(support)
    campaign = make_campaign(tenant_a, scheduled_at=timezone.now() + timedelta(hours=1))

    assert client.get("/admin/marketing/campaign/").status_code == 200
    assert client.get("/admin/marketing/messagetemplate/add/").status_code == 403
    assert client.post(f"/admin/marketing/campaign/{campaign.pk}/do/schedule/").status_code == 403
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.DRAFT


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
        {"name": "Welcome", "channel": "sms", "body": "Hi {{ first_name }}"},
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
