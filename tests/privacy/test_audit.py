"""The staff audit trail: each listed action leaves one append-only row with who, what,
when, from where and the before/after of changed fields; tenant admins search it in the
admin, read-only; nobody else sees it."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.urls import reverse

from crm.audit import AuditAction, audit_record
from crm.models import ApiKey, AuditEvent, StaffRole
from crm.services import api_key_create
from tests.customers.helpers import person
from tests.factories import StaffMembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def _only(action: str) -> AuditEvent:
    (row,) = AuditEvent.objects.filter(action=action)
    return row


def test_viewing_a_customers_page_is_recorded(client, staff_a, tenant_a):
    erin = person(tenant_a, email="erin@example.com")
    client.force_login(staff_a)
    page = client.get(
        reverse("admin:customers_customerprofile_change", args=[erin.pk]), REMOTE_ADDR="10.1.2.3"
    )
    assert page.status_code == 200
    row = _only(AuditAction.CUSTOMER_VIEWED)
    assert (row.tenant_id, row.actor, row.object_id, row.ip) == (
        tenant_a.pk,
        "staff:anna",
        str(erin.pk),
        "10.1.2.3",
    )


def test_another_tenants_page_is_not_shown_and_not_recorded(client, staff_b, tenant_a):
    erin = person(tenant_a, email="erin@example.com")
    client.force_login(staff_b)
    client.get(reverse("admin:customers_customerprofile_change", args=[erin.pk]))
    assert not AuditEvent.objects.exists()


def test_a_patch_records_the_before_and_after_of_changed_fields(api_a, tenant_a):
    erin = person(tenant_a, email="erin@example.com")
    response = api_a.patch(
        f"/api/v1/customers/{erin.pk}",
        {"email": "erin.new@example.com", "lifecycle_stage": erin.lifecycle_stage},
        format="json",
    )
    assert response.status_code == 200
    row = _only(AuditAction.CUSTOMER_CHANGED)
    assert row.actor.startswith("api_key:") and row.object_id == str(erin.pk)
    # lifecycle_stage did not change, so it is not in the row.
    assert row.changes == {"email": {"before": "erin@example.com", "after": "erin.new@example.com"}}


def test_a_patch_that_changes_nothing_or_fails_records_nothing(api_a, tenant_a):
    erin = person(tenant_a, email="erin@example.com")
    other = person(tenant_a, email="other@example.com")
    same = api_a.patch(f"/api/v1/customers/{erin.pk}", {"email": erin.email}, format="json")
    assert same.status_code == 200
    conflict = api_a.patch(f"/api/v1/customers/{erin.pk}", {"email": other.email}, format="json")
    assert conflict.status_code == 409
    assert not AuditEvent.objects.filter(action=AuditAction.CUSTOMER_CHANGED).exists()


def test_saving_the_customer_form_in_the_admin_records_the_change(client, staff_a, tenant_a):
    erin = person(tenant_a, email="erin@example.com")
    client.force_login(staff_a)
    url = reverse("admin:customers_customerprofile_change", args=[erin.pk])
    page = client.get(url)
    data = {}
    form = page.context["adminform"].form
    for name in form.fields:
        value = form[name].value()
        if value is None or value is False:
            continue
        data[name] = ",".join(value) if isinstance(value, list) else value
    for formset in page.context["inline_admin_formsets"]:
        management = formset.formset.management_form
        for name in management.fields:
            data[f"{management.prefix}-{name}"] = management[name].value()
    data["last_name"] = "Smith"
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    row = _only(AuditAction.CUSTOMER_CHANGED)
    assert row.actor == "staff:anna"
    assert row.changes == {"last_name": {"before": "", "after": "Smith"}}


def test_a_merge_is_recorded(api_a, tenant_a):
    erin = person(tenant_a, email="erin@example.com")
    old = person(tenant_a, email="erin.old@example.com")
    response = api_a.post(
        f"/api/v1/customers/{erin.pk}/merge", {"loser_id": str(old.pk)}, format="json"
    )
    assert response.status_code == 200
    row = _only(AuditAction.CUSTOMER_MERGED)
    assert row.object_id == str(erin.pk) and row.detail["loser_id"] == str(old.pk)
    assert row.ip == "127.0.0.1"


def test_erasure_is_recorded(api_a, tenant_a):
    erin = person(tenant_a, email="erin@example.com")
    api_a.post(f"/api/v1/customers/{erin.pk}/erase", {"reason": "asked"}, format="json")
    row = _only(AuditAction.CUSTOMER_ERASED)
    assert row.object_id == str(erin.pk) and row.detail["reason"] == "asked"


def test_issuing_and_revoking_an_api_key_is_recorded(client, staff_a, tenant_a):
    client.force_login(staff_a)
    response = client.post(
        reverse("admin:crm_apikey_add"),
        {"tenant": str(tenant_a.pk), "name": "Till", "scopes": ["customers:read"]},
    )
    assert response.status_code == 302
    key = ApiKey.objects.get(name="Till")
    issued = _only(AuditAction.API_KEY_ISSUED)
    assert issued.object_id == str(key.pk) and issued.detail["scopes"] == ["customers:read"]
    assert "secret" not in str(issued.detail) and key.prefix in issued.detail["prefix"]
    client.post(
        reverse("admin:crm_apikey_changelist"),
        {"action": "revoke_keys", "_selected_action": [key.pk]},
    )
    revoked = _only(AuditAction.API_KEY_REVOKED)
    assert revoked.object_id == str(key.pk) and revoked.actor == "staff:anna"


def test_tenant_admins_search_their_tenants_trail_read_only(client, staff_a, tenant_a, tenant_b):
    audit_record(
        tenant=tenant_a, actor="staff:anna", action=AuditAction.CUSTOMER_VIEWED,
        object_type="customers.CustomerProfile", object_id="obj-of-tenant-a",
    )  # fmt: skip
    audit_record(
        tenant=tenant_b, actor="staff:ben", action=AuditAction.CUSTOMER_VIEWED,
        object_type="customers.CustomerProfile", object_id="obj-of-tenant-b",
    )  # fmt: skip
    client.force_login(staff_a)
    listing = client.get(reverse("admin:crm_auditevent_changelist"), {"q": "anna"})
    text = listing.content.decode()
    assert (
        listing.status_code == 200 and "obj-of-tenant-a" in text and "obj-of-tenant-b" not in text
    )
    row = AuditEvent.objects.get(object_id="obj-of-tenant-a")
    change = reverse("admin:crm_auditevent_change", args=[row.pk])
    assert client.post(change, {"actor": "someone else"}).status_code == 403
    delete = reverse("admin:crm_auditevent_delete", args=[row.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert client.get(reverse("admin:crm_auditevent_add")).status_code == 403
    row.refresh_from_db()
    assert row.actor == "staff:anna"


@pytest.mark.parametrize("role", [StaffRole.MARKETER, StaffRole.SUPPORT])
def test_other_roles_do_not_see_the_trail(client, tenant_a, role):
    user = UserFactory(username="sam")
    StaffMembershipFactory(tenant=tenant_a, user=user, role=role)
    client.force_login(user)
    assert client.get(reverse("admin:crm_auditevent_changelist")).status_code == 403


def test_an_api_key_issued_by_the_operators_command_is_recorded(tenant_a, capsys):
    call_command("create_api_key", "--tenant", tenant_a.slug, "--name", "TeeTime")

    row = _only(AuditAction.API_KEY_ISSUED)
    key = ApiKey.objects.get(tenant=tenant_a, name="TeeTime")
    assert row.actor.startswith("cli:") and row.ip is None
    assert (row.object_id, row.detail["prefix"]) == (str(key.pk), key.prefix)
    assert key.prefix in capsys.readouterr().out


def test_api_key_issued_without_the_admin_is_not_audited_by_a_signal(tenant_a):
    # The trail is written by the admin and API paths, not by signals on the model.
    api_key_create(tenant=tenant_a, name="script", scopes=["customers:read"])
    assert not AuditEvent.objects.exists()
