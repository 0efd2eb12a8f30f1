"""The journeys API: CRUD with steps, validation errors keyed by step, state changes,
enrollment (one, many, a segment, a CSV), enrollments with trails, analytics; another
tenant's ids are 404."""

from __future__ import annotations

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from marketing.segments import segment_create, segment_members_add

from .helpers import NOON, advance, customer, journey, send_end, template

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _noon():
    """Midday in Johannesburg, outside quiet hours, whenever the suite runs."""
    with time_machine.travel(NOON, tick=True):
        yield


def _create(api, tpl, **extra):
    body = {
        "name": extra.pop("name", "Welcome"),
        "trigger": {"type": "manual"},
        "steps": send_end(tpl),
        **extra,
    }
    return api.post("/api/v1/journeys/", body, format="json")


def test_create_validate_activate_enroll_and_read(api_a, tenant_a):
    tpl = template(tenant_a)
    created = _create(api_a, tpl)
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["status"] == "DRAFT"
    assert [s["key"] for s in body["version"]["steps"]] == ["send", "end"]
    pk = body["id"]
    assert api_a.post(f"/api/v1/journeys/{pk}/validate/").json() == {"valid": True}
    assert api_a.post(f"/api/v1/journeys/{pk}/activate/").json()["status"] == "ACTIVE"
    ann = customer(tenant_a, email="ann@example.com")
    entered = api_a.post(f"/api/v1/journeys/{pk}/enroll/", {"customer_id": str(ann.pk)})
    assert entered.json() == {"entered": 1}
    advance(tenant_a, now=timezone.now())
    rows = api_a.get(f"/api/v1/journeys/{pk}/enrollments/").json()["results"]
    assert [(r["status"], [t["step_key"] for t in r["trail"]]) for r in rows] == [
        ("COMPLETED", ["send", "end"])
    ]
    mine = api_a.get(f"/api/v1/journey-enrollments/?customer={ann.pk}").json()["results"]
    assert [r["journey_id"] for r in mine] == [pk]
    figures = api_a.get(f"/api/v1/journeys/{pk}/analytics/").json()
    assert (figures["entered"], figures["completed"]) == (1, 1)
    assert api_a.post(f"/api/v1/journeys/{pk}/pause/").json()["status"] == "PAUSED"
    assert api_a.post(f"/api/v1/journeys/{pk}/resume/").json()["status"] == "ACTIVE"
    assert api_a.post(f"/api/v1/journeys/{pk}/archive/").json()["status"] == "ARCHIVED"


def test_step_errors_are_400_keyed_by_step_and_change_nothing(api_a, tenant_a):
    tpl = template(tenant_a)
    steps = send_end(tpl)
    steps[0]["next"] = ["nowhere"]
    response = _create(api_a, tpl, steps=steps)
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert fields["steps.send.next"] == ["No step has the key 'nowhere'."]
    assert api_a.get("/api/v1/journeys/").json()["results"] == []
    pk = _create(api_a, tpl).json()["id"]
    bad = api_a.put(f"/api/v1/journeys/{pk}/steps/", {"steps": steps}, format="json")
    assert bad.status_code == 400
    kept = api_a.get(f"/api/v1/journeys/{pk}/").json()["version"]["steps"]
    assert kept[0]["next"] == ["end"]
    state = api_a.post(f"/api/v1/journeys/{pk}/resume/")
    assert state.status_code == 400
    assert "status" in state.json()["error"]["fields"]


def test_enroll_a_segment_and_a_csv(api_a, tenant_a):
    tpl = template(tenant_a)
    j = journey(tenant_a, send_end(tpl))
    ann, bob = customer(tenant_a, email="ann@example.com"), customer(tenant_a, email="b@x.com")
    segment = segment_create(tenant=tenant_a, data={"name": "S", "type": "STATIC"})
    segment_members_add(segment=segment, customer_ids=[ann.pk])
    response = api_a.post(f"/api/v1/journeys/{j.pk}/enroll/", {"segment_id": str(segment.pk)})
    assert response.json() == {"entered": 1}
    upload = SimpleUploadedFile("people.csv", b"email\nb@x.com\nnobody@x.com\n", "text/csv")
    result = api_a.post(f"/api/v1/journeys/{j.pk}/enroll/", {"file": upload}, format="multipart")
    assert (result.json()["entered"], result.json()["unmatched"][0]["line"]) == (1, 3)
    neither = api_a.post(f"/api/v1/journeys/{j.pk}/enroll/", {}, format="json")
    assert neither.status_code == 400
    assert bob.pk


def test_another_tenants_ids_are_404(api_b, tenant_a, tenant_b):
    tpl = template(tenant_a)
    j = journey(tenant_a, send_end(tpl))
    for method, path in [
        ("get", f"/api/v1/journeys/{j.pk}/"),
        ("patch", f"/api/v1/journeys/{j.pk}/"),
        ("put", f"/api/v1/journeys/{j.pk}/steps/"),
        ("post", f"/api/v1/journeys/{j.pk}/activate/"),
        ("post", f"/api/v1/journeys/{j.pk}/pause/"),
        ("post", f"/api/v1/journeys/{j.pk}/enroll/"),
        ("get", f"/api/v1/journeys/{j.pk}/enrollments/"),
        ("get", f"/api/v1/journeys/{j.pk}/analytics/"),
    ]:
        response = getattr(api_b, method)(path, {}, format="json")
        assert response.status_code == 404, (method, path)
    # A segment of tenant A named by tenant B's journey: refused, nobody enrolled.
    mine = journey(tenant_b, send_end(template(tenant_b)))
    segment = segment_create(tenant=tenant_a, data={"name": "A's", "type": "STATIC"})
    response = api_b.post(f"/api/v1/journeys/{mine.pk}/enroll/", {"segment_id": str(segment.pk)})
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"segment_id": ["No such segment."]}
    # Templates of another tenant are not found by step validation either.
    other = _create(api_b, tpl, name="Theirs")
    assert other.json()["error"]["fields"]["steps.send.config.template_id"] == ["No such template."]
