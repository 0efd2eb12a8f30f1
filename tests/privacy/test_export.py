"""Subject-access export: everything held about one person, from the API (JSON) and the
customer page in the admin (HTML page and JSON download), with an audit row."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.apps import apps
from django.urls import reverse

from backfill.models import ImportRow, ImportRun
from crm.audit import AuditAction
from crm.models import AuditEvent, StaffRole
from crm.registry import export_sections
from crm.services import api_key_create
from customers.models import Activity, CustomerProfile
from customers.services import profile_merge
from marketing.models import Message, MessageStatus
from marketing.segments import segment_create, segment_members_add
from scoring.models import Score
from tests.automation.helpers import NOON, enroll, journey, send_end, template
from tests.customers.helpers import person
from tests.events.helpers import at, event, run
from tests.factories import StaffMembershipFactory, UserFactory
from tests.marketing.builders import NOON_JHB, make_campaign, run_to_completion

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _midday():
    with time_machine.travel(NOON_JHB - timedelta(minutes=10), tick=True):
        yield


def _export(client, customer) -> dict:
    response = client.get(f"/api/v1/customers/{customer.pk}/export")
    assert response.status_code == 200, response
    assert response.streaming and response["Content-Type"] == "application/json"
    return json.loads(b"".join(response.streaming_content))


def _erin(api_a, tenant_a) -> CustomerProfile:
    run(
        tenant_a,
        event(
            tenant_a,
            "scl.member.created",
            {"email": "erin@example.com", "phoneNumber": "082 555 0777"},
            {"firstName": "Erin", "lastName": "Smith", "membershipType": "Full"},
        ),
        event(
            tenant_a,
            "contactPreference.updated",
            {"email": "erin@example.com"},
            {"emailOptIn": True, "smsOptIn": True},
            timestamp=at(hours_ago=1),
        ),
    )
    return CustomerProfile.objects.get(tenant=tenant_a, email="erin@example.com")


def test_export_holds_every_kind_of_data_about_the_person(api_a, tenant_a):
    erin = _erin(api_a, tenant_a)
    CustomerProfile.objects.filter(pk=erin.pk).update(lifecycle_stage="MEMBER")
    api_a.post(f"/api/v1/customers/{erin.pk}/notes", {"body": "Asked about lessons"}, format="json")
    vip = segment_create(tenant=tenant_a, data={"name": "VIP", "type": "STATIC"})
    segment_members_add(segment=vip, customer_ids=[erin.pk])
    run_to_completion(make_campaign(tenant_a))
    assert Message.objects.filter(customer=erin, status=MessageStatus.SENT).exists()
    welcome = journey(tenant_a, send_end(template(tenant_a)), name="Welcome")
    enroll(welcome, erin)
    Score.objects.create(
        tenant=tenant_a, customer=erin, engagement=40, band="MEDIUM", churn_risk=70,
        reasons=[{"code": "ROUND_OVERDUE", "points": 35}], computed_at=NOON,
    )  # fmt: skip
    import_run = ImportRun.objects.create(
        tenant=tenant_a, region="ZA", source="mca-2024.zip", fingerprint="f",
        exported_at="2024-08-01T00:00:00Z",
    )  # fmt: skip
    ImportRow.objects.create(
        tenant=tenant_a, run=import_run, file="members", line=7, raw=["SVG", "1059", "Erin"],
        data={"first_name": "Erin"}, outcome="updated", profile_id=erin.pk,
    )  # fmt: skip

    document = _export(api_a, erin)
    sections = document["sections"]
    assert document["customer_id"] == str(erin.pk)
    assert sections["profile"][0]["email"] == "erin@example.com"
    assert sections["profile"][0]["first_name"] == "Erin"
    assert {(a["kind"], a["value"]) for a in sections["identifiers"]} >= {
        ("email", "erin@example.com")
    }
    assert {(c["channel"], c["opt_in"]) for c in sections["consent_history"]} >= {
        ("email", True),
        ("sms", True),
    }
    assert len(sections["timeline"]) == Activity.objects.filter(customer=erin).count() >= 3
    assert [n["body"] for n in sections["notes"]] == ["Asked about lessons"]
    assert {e["type"] for e in sections["events_received"]} == {
        "scl.member.created",
        "contactPreference.updated",
    }
    assert "VIP" in [m["segment__name"] for m in sections["segment_memberships"]]
    assert sections["messages"][0]["address"] == "erin@example.com"
    assert sections["messages"][0]["status"] == MessageStatus.SENT
    assert [e["journey__name"] for e in sections["journey_enrollments"]] == ["Welcome"]
    assert {s["enrollment__journey__name"] for s in sections["journey_steps"]} == {"Welcome"}
    assert sections["scores"][0]["reasons"][0]["code"] == "ROUND_OVERDUE"
    assert sections["import_records"][0]["raw"] == ["SVG", "1059", "Erin"]
    assert sections["import_records"][0]["run__source"] == "mca-2024.zip"
    audit = AuditEvent.objects.get(tenant=tenant_a, action=AuditAction.CUSTOMER_EXPORTED)
    assert audit.object_id == str(erin.pk) and audit.actor.startswith("api_key:")
    assert audit.ip == "127.0.0.1"


# Models that hold a person's id and are deliberately in no section, and why.
NOT_EXPORTED = {
    # The record that an erasure happened: no personal data, and an erased person has no
    # export (404).
    "customers.Erasure",
}
PERSON_ID_COLUMNS = ("customer_id", "profile_id")


def _about_a_person() -> dict[str, str]:
    """Every model whose rows are about one person, and how: a foreign key to the profile,
    a plain column holding a profile id (kept as a UUID so an app does not depend on
    ``customers``), or a foreign key to a model of the first kind (a note's revisions,
    an enrollment's steps)."""
    profile = apps.get_model("customers", "CustomerProfile")
    keyed = {
        model
        for model in apps.get_models()
        for field in model._meta.concrete_fields
        if field.is_relation and field.related_model is profile
    }
    found = {model._meta.label: "customer key" for model in keyed}
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if not field.is_relation and field.name in PERSON_ID_COLUMNS:
                found.setdefault(model._meta.label, f"plain {field.name} column")
            elif field.is_relation and field.related_model in keyed and model not in keyed:
                found.setdefault(model._meta.label, f"key to {field.related_model._meta.label}")
    return found


def test_every_model_with_a_customer_key_is_in_some_export_section():
    covered = {label for section in export_sections() for label in section.covers}
    about = _about_a_person()
    missing = {
        label: how
        for label, how in sorted(about.items())
        if label not in covered and label not in NOT_EXPORTED
    }
    assert missing == {}, f"models about a person that no export section covers: {missing}"
    # The walk finds all three kinds (so the test would see a new model of each).
    assert about["marketing.Message"] == "customer key"
    assert about["backfill.ImportRow"] == "plain profile_id column"
    assert about["customers.NoteRevision"] == "key to customers.Note"


def test_the_export_includes_profiles_merged_into_the_person(api_a, tenant_a):
    erin = _erin(api_a, tenant_a)
    old = person(tenant_a, email="erin.old@example.com")
    profile_merge(tenant=tenant_a, winner=erin, loser=old, actor="test")
    document = _export(api_a, erin)
    assert document["profile_ids"] == [str(erin.pk), str(old.pk)]
    assert {p["email"] for p in document["sections"]["profile"]} == {
        "erin@example.com",
        "erin.old@example.com",
    }
    assert len(document["sections"]["merges"]) == 1
    # The merged profile itself has no export of its own: it is the winner's.
    assert api_a.get(f"/api/v1/customers/{old.pk}/export").status_code == 404


def test_another_tenants_person_is_a_404_and_leaves_no_audit(api_b, api_a, tenant_a):
    erin = _erin(api_a, tenant_a)
    assert api_b.get(f"/api/v1/customers/{erin.pk}/export").status_code == 404
    assert not AuditEvent.objects.filter(action=AuditAction.CUSTOMER_EXPORTED).exists()


def test_an_erased_person_is_a_404(api_a, tenant_a):
    erin = _erin(api_a, tenant_a)
    assert api_a.post(f"/api/v1/customers/{erin.pk}/erase", {}, format="json").status_code == 200
    assert api_a.get(f"/api/v1/customers/{erin.pk}/export").status_code == 404
    erased = AuditEvent.objects.get(tenant=tenant_a, action=AuditAction.CUSTOMER_ERASED)
    assert erased.object_id == str(erin.pk) and erased.detail["erasure_id"]


def test_export_needs_the_privacy_export_scope(api_a, tenant_a):
    erin = _erin(api_a, tenant_a)
    issued = api_key_create(tenant=tenant_a, name="reader", scopes=["customers:read"])
    api_a.credentials(HTTP_AUTHORIZATION=f"Api-Key {issued.raw_key}")
    assert api_a.get(f"/api/v1/customers/{erin.pk}/export").status_code == 403
    assert not AuditEvent.objects.filter(action=AuditAction.CUSTOMER_EXPORTED).exists()


def test_private_notes_follow_the_notes_rules(api_a, tenant_a):
    erin = _erin(api_a, tenant_a)
    other = api_key_create(tenant=tenant_a, name="other", scopes=["customers:write"])
    shared = api_a.post(f"/api/v1/customers/{erin.pk}/notes", {"body": "Shard"}, format="json")
    api_a.patch(f"/api/v1/notes/{shared.json()['id']}", {"body": "Shared"}, format="json")
    api_a.credentials(HTTP_AUTHORIZATION=f"Api-Key {other.raw_key}")
    private = api_a.post(
        f"/api/v1/customers/{erin.pk}/notes",
        {"body": "Someone else's private nte", "is_private": True},
        format="json",
    )
    edited = api_a.patch(
        f"/api/v1/notes/{private.json()['id']}",
        {"body": "Someone else's private note"},
        format="json",
    )
    assert edited.status_code == 200
    api_a.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_create_all(tenant_a)}")
    sections = _export(api_a, erin)["sections"]
    assert [n["body"] for n in sections["notes"]] == ["Shared"]
    # Earlier texts follow the same rules: the shared note's, not the private one's.
    assert [r["body"] for r in sections["note_revisions"]] == ["Shard"]


def api_key_create_all(tenant) -> str:
    return api_key_create(
        tenant=tenant, name="dpo", scopes=["customers:read", "privacy:export"]
    ).raw_key


def test_a_long_history_streams_in_chunks(api_a, tenant_a):
    erin = _erin(api_a, tenant_a)
    start = datetime(2020, 1, 1, tzinfo=UTC)
    Activity.objects.bulk_create(
        Activity(
            tenant=tenant_a, customer=erin, type="ROUND_PLAYED", category="GOLF",
            title="Round", source_service="teetime", source_event_id=f"r{i}",
            occurred_at=start + timedelta(hours=i),
        )
        for i in range(5000)
    )  # fmt: skip
    response = api_a.get(f"/api/v1/customers/{erin.pk}/export")
    chunks = list(response.streaming_content)
    assert len(chunks) > 10  # rows leave in batches, not as one document built in memory
    timeline = json.loads(b"".join(chunks))["sections"]["timeline"]
    assert len(timeline) == Activity.objects.filter(customer=erin).count() > 5000
    assert timeline[0]["occurred_at"] > timeline[-1]["occurred_at"]  # newest first


def test_tenant_admin_reads_the_export_page_and_downloads_json(client, staff_a, api_a, tenant_a):
    erin = _erin(api_a, tenant_a)
    client.force_login(staff_a)
    page = client.get(reverse("admin:customers_customerprofile_change", args=[erin.pk]))
    assert 'data-testid="export-html"' in page.content.decode()
    html = client.get(reverse("admin:customers_customerprofile_export", args=[erin.pk]))
    text = b"".join(html.streaming_content).decode()
    assert "Personal data held about Erin Smith" in text
    assert "erin@example.com" in text and "Consent history" in text
    download = client.get(
        reverse("admin:customers_customerprofile_export", args=[erin.pk]) + "?as=json"
    )
    assert json.loads(b"".join(download.streaming_content))["customer_id"] == str(erin.pk)
    actors = set(
        AuditEvent.objects.filter(action=AuditAction.CUSTOMER_EXPORTED).values_list(
            "actor", flat=True
        )
    )
    assert actors == {"staff:anna"}


def test_support_staff_get_no_export(client, api_a, tenant_a):
    erin = _erin(api_a, tenant_a)
    user = UserFactory(username="sam")
    StaffMembershipFactory(tenant=tenant_a, user=user, role=StaffRole.SUPPORT)
    client.force_login(user)
    page = client.get(reverse("admin:customers_customerprofile_change", args=[erin.pk]))
    assert page.status_code == 200 and "export-html" not in page.content.decode()
    html = client.get(reverse("admin:customers_customerprofile_export", args=[erin.pk]))
    assert html.status_code == 403


def test_another_tenants_admin_gets_no_export(client, staff_b, api_a, tenant_a):
    erin = _erin(api_a, tenant_a)
    client.force_login(staff_b)
    response = client.get(reverse("admin:customers_customerprofile_export", args=[erin.pk]))
    assert response.status_code == 404
    assert not AuditEvent.objects.exists()
