"""Segments and campaigns record who created them (a staff user, or the API credential),
shown read-only in the API and the admin; campaigns have a description."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from marketing.models import Campaign, Segment

pytestmark = pytest.mark.django_db
MEMBERS = {
    "combinator": "AND",
    "rules": [{"field": "lifecycle_stage", "operator": "eq", "value": "MEMBER"}],
}


def test_api_created_records_the_key_prefix_and_cannot_be_forged(
    api_a, api_key_a, tenant_a, staff_a
):
    segment = api_a.post(
        "/api/v1/segments",
        {"name": "Members", "criteria": MEMBERS, "created_by": staff_a.pk, "created_by_label": "x"},
        format="json",
    ).json()
    label = f"api_key:{api_key_a.api_key.prefix}"
    assert (segment["created_by"], segment["created_by_label"]) == (None, label)
    campaign = api_a.post(
        "/api/v1/campaigns",
        {"name": "News", "description": "Monthly club news.", "created_by_label": "x"},
        format="json",
    )
    assert campaign.status_code == 201
    body = campaign.json()
    assert (body["description"], body["created_by"], body["created_by_label"]) == (
        "Monthly club news.",
        None,
        label,
    )
    # Read-only: a change leaves them, and the description can be edited.
    changed = api_a.patch(
        f"/api/v1/campaigns/{body['id']}",
        {"description": "Weekly.", "created_by_label": "someone else"},
        format="json",
    ).json()
    assert (changed["description"], changed["created_by_label"]) == ("Weekly.", label)
    stored = Campaign.objects.get(pk=body["id"])
    assert (stored.created_by_id, stored.created_by_label, stored.description) == (
        None,
        label,
        "Weekly.",
    )


def test_jwt_created_records_the_subject(tenant_a, make_jwt):
    client = APIClient()
    token = make_jwt(tenant_id=str(tenant_a.pk), sub="svc-automation", scope="marketing:write")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = client.post("/api/v1/segments", {"name": "VIPs", "type": "STATIC"}, format="json")
    assert response.status_code == 201
    assert response.json()["created_by_label"] == "jwt:svc-automation"


def test_admin_created_records_the_staff_user_shown_not_editable(client, staff_a, tenant_a):
    client.force_login(staff_a)
    form = {
        "tenant": str(tenant_a.pk),
        "name": "Members",
        "description": "",
        "type": "DYNAMIC",
        "criteria": json.dumps(MEMBERS),
        "refresh_frequency": "DAILY",
        "created_by_label": "forged",
    }
    assert client.post("/admin/marketing/segment/add/", form).status_code == 302
    segment = Segment.objects.get()
    assert (segment.created_by, segment.created_by_label) == (staff_a, "anna")
    page = client.get(f"/admin/marketing/segment/{segment.pk}/change/")
    form_fields = page.context["adminform"].form.fields
    assert "created_by" not in form_fields and "created_by_label" not in form_fields
    assert "anna" in page.content.decode()

    add = client.get("/admin/marketing/campaign/add/")
    assert "description" in add.context["adminform"].form.fields
    assert "created_by_label" not in add.context["adminform"].form.fields
    response = client.post(
        "/admin/marketing/campaign/add/",
        {
            "tenant": str(tenant_a.pk),
            "name": "Autumn",
            "description": "For the autumn league.",
            "type": "ONE_TIME",
            "status": "DRAFT",
            "channels": "email",
            "ab_test": "{}",
            "created_by_label": "forged",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    campaign = Campaign.objects.get()
    assert (campaign.created_by, campaign.created_by_label, campaign.description) == (
        staff_a,
        "anna",
        "For the autumn league.",
    )
    page = client.get(f"/admin/marketing/campaign/{campaign.pk}/change/")
    assert "anna" in page.content.decode()
