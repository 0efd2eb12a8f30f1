"""Erasure: personal data gone everywhere, suppression stubs and an audit remain, a later
event or import with the same email does not re-subscribe the person."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine

from customers.models import (
    Activity,
    ConsentRecord,
    CustomerProfile,
    Erasure,
    IdentityAlias,
    Note,
    ProfileStatus,
    SyncLogEntry,
)
from marketing.models import Message, MessageStatus, SegmentMembership, Suppression
from marketing.segments import segment_create, segment_members_add
from tests.events.helpers import at, event, run
from tests.marketing.builders import NOON_JHB, make_campaign, run_to_completion

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _midday():
    with time_machine.travel(NOON_JHB - timedelta(minutes=10), tick=True):
        yield


def _person_with_history(api_a, tenant_a):
    run(
        tenant_a,
        event(
            tenant_a,
            "scl.member.created",
            {"email": "erase.me@example.com", "phoneNumber": "082 555 0777"},
            {"firstName": "Erin", "lastName": "Smith", "membershipType": "Full"},
        ),
        event(
            tenant_a,
            "contactPreference.updated",
            {"email": "erase.me@example.com"},
            {"emailOptIn": True, "smsOptIn": True},
            timestamp=at(hours_ago=1),
        ),
    )
    erin = CustomerProfile.objects.get(tenant=tenant_a, email="erase.me@example.com")
    api_a.post(
        f"/api/v1/customers/{erin.pk}/notes", {"body": "Erin's private matter"}, format="json"
    )
    static = segment_create(tenant=tenant_a, data={"name": "VIP", "type": "STATIC"})
    segment_members_add(segment=static, customer_ids=[erin.pk])
    return erin


def test_erasure_removes_personal_data_and_keeps_only_stubs_and_an_audit(api_a, tenant_a):
    erin = _person_with_history(api_a, tenant_a)
    CustomerProfile.objects.filter(pk=erin.pk).update(lifecycle_stage="MEMBER")
    campaign = make_campaign(tenant_a)
    run_to_completion(campaign)
    assert Message.objects.filter(customer=erin, status=MessageStatus.SENT).exists()

    response = api_a.post(
        f"/api/v1/customers/{erin.pk}/erase", {"reason": "Asked by email"}, format="json"
    )
    assert response.status_code == 200
    scope = response.json()["scope"]
    assert scope["aliases"] == 2 and scope["activities"] >= 2 and scope["notes"] == 1

    erin.refresh_from_db()
    assert erin.status == ProfileStatus.ERASED and erin.deleted_at is not None
    assert (erin.email, erin.phone, erin.first_name, erin.last_name) == (None, None, "", "")
    assert erin.membership_type == "" and erin.tags == [] and not erin.email_opt_in
    for model in (IdentityAlias, Activity, ConsentRecord, SegmentMembership):
        field = "profile" if model is IdentityAlias else "customer"
        assert not model.objects.filter(**{field: erin}).exists(), model
    assert not Note.objects.filter(customer=erin).exists()
    scrubbed = SyncLogEntry.objects.filter(profile_id=erin.pk).values_list("identity", "payload")
    assert scrubbed and all(row == ({}, {}) for row in scrubbed)
    assert set(Message.objects.filter(customer=erin).values_list("address", flat=True)) == {""}
    stubs = set(
        Suppression.objects.filter(tenant=tenant_a, reason="erased").values_list(
            "channel", "address"
        )
    )
    assert stubs == {
        ("email", "erase.me@example.com"),
        ("sms", "+27825550777"),
        ("whatsapp", "+27825550777"),
    }
    audit = Erasure.objects.get(customer_id=erin.pk)
    assert audit.actor.startswith("api_key:") and audit.reason == "Asked by email"
    assert "erase.me" not in str(audit.scope)

    # The erased customer is gone from the API: reading or erasing again is a 404.
    assert api_a.get(f"/api/v1/customers/{erin.pk}").status_code == 404
    assert api_a.post(f"/api/v1/customers/{erin.pk}/erase").status_code == 404


def test_the_same_person_arriving_again_is_a_new_profile_that_is_not_marketed(api_a, tenant_a):
    erin = _person_with_history(api_a, tenant_a)
    api_a.post(f"/api/v1/customers/{erin.pk}/erase", {}, format="json")
    run(
        tenant_a,
        event(
            tenant_a,
            "contactPreference.updated",
            {"email": "erase.me@example.com"},
            {"emailOptIn": True},
        ),
    )
    again = CustomerProfile.objects.get(tenant=tenant_a, email="erase.me@example.com")
    assert again.pk != erin.pk and again.email_opt_in
    CustomerProfile.objects.filter(pk=again.pk).update(lifecycle_stage="MEMBER")
    run_ = run_to_completion(make_campaign(tenant_a))
    message = Message.objects.get(run=run_, customer=again)
    assert (message.status, message.skip_reason) == (MessageStatus.SKIPPED, "suppressed")


def test_erasing_another_tenants_customer_is_404(api_b, api_a, tenant_a):
    erin = _person_with_history(api_a, tenant_a)
    assert api_b.post(f"/api/v1/customers/{erin.pk}/erase").status_code == 404
    erin.refresh_from_db()
    assert erin.status == ProfileStatus.ACTIVE


def test_admin_erasure_needs_a_confirmation_and_the_admin_role(
    client, api_a, tenant_a, staff_a, marketer_a
):
    erin = _person_with_history(api_a, tenant_a)
    url = f"/admin/customers/customerprofile/{erin.pk}/erase/"
    client.force_login(marketer_a)
    assert client.get(url).status_code == 403
    client.force_login(staff_a)
    page = client.get(url)
    assert page.status_code == 200 and b"cannot be undone" in page.content
    client.post(url, {"reason": "asked"})  # no confirmation: nothing happens
    erin.refresh_from_db()
    assert erin.status == ProfileStatus.ACTIVE
    response = client.post(url, {"reason": "asked", "confirm": "erase"}, follow=True)
    assert b"Erased. Audit" in response.content
    erin.refresh_from_db()
    assert erin.status == ProfileStatus.ERASED
    assert Erasure.objects.get(customer_id=erin.pk).actor == "staff:anna"
