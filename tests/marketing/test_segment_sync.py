"""A new dynamic segment is refreshed at once and a rule change refreshes it again (API and
admin, queued on commit); every membership change and a rename push the segment to
Messaging, with the members' names (checked at the HTTP boundary)."""

from __future__ import annotations

import json
import re

import pytest
import responses

from crm.celery import app
from customers.models import CustomerProfile
from marketing import messaging
from marketing.models import Segment
from tests.customers.helpers import person

pytestmark = pytest.mark.django_db
MEMBERS = {
    "combinator": "AND",
    "rules": [{"field": "lifecycle_stage", "operator": "eq", "value": "MEMBER"}],
}
LAPSED = {
    "combinator": "AND",
    "rules": [{"field": "lifecycle_stage", "operator": "eq", "value": "LAPSED"}],
}
SEGMENTS = re.compile(r"http://messaging\.test/v1/segments/[0-9a-f-]+$")
PAGES = re.compile(r"http://messaging\.test/v1/segments/[0-9a-f-]+/members/\w+/\d+$")


@pytest.fixture
def eager():
    """Queued tasks run in this process as soon as they are sent (after commit)."""
    before = (app.conf.task_always_eager, app.conf.task_eager_propagates)
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = before


@pytest.fixture
def http_messaging(settings):
    settings.MESSAGING_BACKEND = "http"
    settings.MESSAGING_URL = "http://messaging.test"
    settings.MESSAGING_API_KEY = "secret"
    messaging.get_backend.cache_clear()
    yield
    messaging.get_backend.cache_clear()


@pytest.fixture
def sent_tasks(monkeypatch):
    """The names of the tasks sent to the broker (instead of sending them)."""
    from marketing import tasks

    sent: list[str] = []
    for task in (tasks.refresh_segment, tasks.sync_segment):
        monkeypatch.setattr(
            task, "delay", lambda *args, _name=task.name, **kwargs: sent.append(_name)
        )
    return sent


def _person(tenant, email, stage, first, last):
    profile = person(tenant, email=email)
    CustomerProfile.objects.filter(pk=profile.pk).update(
        lifecycle_stage=stage, first_name=first, last_name=last
    )
    return profile


def test_api_create_refreshes_the_new_segment_on_commit_and_a_rule_change_again(
    api_a, tenant_a, eager, django_capture_on_commit_callbacks
):
    _person(tenant_a, "ann@example.com", "MEMBER", "Ann", "Dlamini")
    _person(tenant_a, "bob@example.com", "MEMBER", "Bob", "Smith")
    _person(tenant_a, "cat@example.com", "LAPSED", "Cat", "Naidoo")
    with django_capture_on_commit_callbacks(execute=True) as queued:
        created = api_a.post(
            "/api/v1/segments",
            {"name": "Members", "criteria": MEMBERS, "refresh_frequency": "MANUAL"},
            format="json",
        )
        assert created.status_code == 201
        assert created.json()["member_count"] == 0  # not refreshed in the request
    assert len(queued) == 1
    segment_id = created.json()["id"]
    shown = api_a.get(f"/api/v1/segments/{segment_id}").json()
    assert shown["member_count"] == 2 and shown["last_refreshed_at"]

    with django_capture_on_commit_callbacks(execute=True) as queued:
        api_a.patch(f"/api/v1/segments/{segment_id}", {"criteria": LAPSED}, format="json")
    assert len(queued) == 1
    assert api_a.get(f"/api/v1/segments/{segment_id}").json()["member_count"] == 1

    # A change that is not about the rules queues nothing.
    with django_capture_on_commit_callbacks(execute=True) as queued:
        api_a.patch(f"/api/v1/segments/{segment_id}", {"description": "Lapsed"}, format="json")
    assert queued == []


def test_admin_saves_queue_the_same_refresh(
    client, staff_a, tenant_a, sent_tasks, django_capture_on_commit_callbacks
):
    client.force_login(staff_a)
    form = {
        "tenant": str(tenant_a.pk),
        "name": "Members",
        "description": "",
        "type": "DYNAMIC",
        "criteria": json.dumps(MEMBERS),
        "refresh_frequency": "DAILY",
    }
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post("/admin/marketing/segment/add/", form).status_code == 302
    assert sent_tasks == ["marketing.refresh_segment"]
    segment = Segment.objects.get()
    change = f"/admin/marketing/segment/{segment.pk}/change/"
    with django_capture_on_commit_callbacks(execute=True):
        client.post(change, {**form, "description": "All members"})
    assert sent_tasks == ["marketing.refresh_segment"]  # the rules did not change
    with django_capture_on_commit_callbacks(execute=True):
        client.post(change, {**form, "criteria": json.dumps(LAPSED)})
    assert sent_tasks == ["marketing.refresh_segment"] * 2


def _pushes():
    """(segment name, members) of each push to Messaging so far."""
    pushes, name = [], None
    for call in responses.calls:
        body = json.loads(call.request.body)
        if SEGMENTS.match(call.request.url):
            name = body["name"]
        else:
            pushes.append((name, body["members"]))
    return pushes


@responses.activate
def test_every_membership_change_and_a_rename_push_the_segment_with_names(
    api_a, tenant_a, eager, http_messaging, django_capture_on_commit_callbacks
):
    responses.put(SEGMENTS, json={"id": "remote-1"})
    responses.put(PAGES, json={})
    ann = _person(tenant_a, "ann@example.com", "MEMBER", "Ann", "Dlamini")
    bob = _person(tenant_a, "bob@example.com", "LAPSED", "Bob", "Smith")

    # Dynamic: created, refreshed at once, and the refresh pushes the members.
    with django_capture_on_commit_callbacks(execute=True):
        api_a.post("/api/v1/segments", {"name": "Members", "criteria": MEMBERS}, format="json")
    [(name, members)] = _pushes()
    assert name == "Members"
    assert members == [
        {
            "customerId": str(ann.pk),
            "email": "ann@example.com",
            "phone": None,
            "messagingContactId": None,
            "firstName": "Ann",
            "lastName": "Dlamini",
        }
    ]
    assert responses.calls[0].request.headers["Authorization"] == "Bearer secret"

    # Static: add, rename, remove; each one push of the whole list.
    with django_capture_on_commit_callbacks(execute=True):
        static = api_a.post(
            "/api/v1/segments", {"name": "VIPs", "type": "STATIC"}, format="json"
        ).json()
    assert len(_pushes()) == 1  # an empty new static segment has nothing to push yet
    url = f"/api/v1/segments/{static['id']}"
    with django_capture_on_commit_callbacks(execute=True):
        api_a.post(f"{url}/add-members", {"customer_ids": [str(bob.pk)]}, format="json")
    assert _pushes()[-1] == (
        "VIPs",
        [
            {
                "customerId": str(bob.pk),
                "email": "bob@example.com",
                "phone": None,
                "messagingContactId": None,
                "firstName": "Bob",
                "lastName": "Smith",
            }
        ],
    )
    with django_capture_on_commit_callbacks(execute=True):
        api_a.patch(url, {"name": "Very important"}, format="json")
    assert _pushes()[-1][0] == "Very important"
    with django_capture_on_commit_callbacks(execute=True):
        api_a.post(f"{url}/remove-members", {"customer_ids": [str(bob.pk)]}, format="json")
    assert _pushes()[-1] == ("Very important", [])
    # Removing nobody changes nothing and pushes nothing.
    with django_capture_on_commit_callbacks(execute=True):
        api_a.post(f"{url}/remove-members", {"customer_ids": [str(bob.pk)]}, format="json")
    assert len(_pushes()) == 4
    segment = Segment.objects.get(pk=static["id"])
    assert segment.messaging_segment_id == "remote-1" and segment.messaging_synced_at


@responses.activate
def test_a_csv_import_pushes_the_segment(
    api_a, tenant_a, eager, http_messaging, django_capture_on_commit_callbacks
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    responses.put(SEGMENTS, json={"id": "remote-2"})
    responses.put(PAGES, json={})
    _person(tenant_a, "ann@example.com", "MEMBER", "Ann", "Dlamini")
    with django_capture_on_commit_callbacks(execute=True):
        static = api_a.post(
            "/api/v1/segments", {"name": "Imported", "type": "STATIC"}, format="json"
        ).json()
        upload = SimpleUploadedFile("people.csv", b"email\nann@example.com\n", "text/csv")
        answer = api_a.post(
            f"/api/v1/segments/{static['id']}/import", {"file": upload}, format="multipart"
        )
    assert answer.json()["added"] == 1
    [(name, members)] = _pushes()
    assert name == "Imported" and [(m["firstName"], m["lastName"]) for m in members] == [
        ("Ann", "Dlamini")
    ]
