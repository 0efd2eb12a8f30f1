"""Segments: set-wise refresh (diff, changes, untouched members), static members and CSV,
the due sweep, the API (validation paths, preview, members, 404s), Messaging sync."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
import responses
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from customers.models import CustomerProfile, ProfileStatus
from marketing.models import ChangeKind, Segment, SegmentChange, SegmentMembership, SegmentType
from marketing.segments import (
    memberships_of,
    segment_create,
    segment_import_csv,
    segment_members_add,
    segment_refresh,
    segments_refresh_due,
)
from tests.customers.helpers import person

pytestmark = pytest.mark.django_db

MEMBERS = {
    "combinator": "AND",
    "rules": [{"field": "lifecycle_stage", "operator": "eq", "value": "MEMBER"}],
}


def _people(tenant, stages):
    made = []
    for i, stage in enumerate(stages):
        profile = person(tenant, email=f"m{i}@example.com")
        CustomerProfile.objects.filter(pk=profile.pk).update(lifecycle_stage=stage)
        made.append(profile)
    return made


def _members(segment):
    return set(
        SegmentMembership.objects.filter(segment=segment).values_list("customer_id", flat=True)
    )


def test_refresh_applies_only_the_difference_and_records_it(tenant_a):
    people = _people(tenant_a, ["MEMBER", "MEMBER", "MEMBER", "VISITOR"])
    segment = segment_create(tenant=tenant_a, data={"name": "Members", "criteria": MEMBERS})
    first = segment_refresh(segment=segment)
    assert (first.members, first.entered, first.left) == (3, 3, 0)
    assert _members(segment) == {p.pk for p in people[:3]}
    kept = SegmentMembership.objects.get(segment=segment, customer=people[0])

    # One lapses, one visitor joins, the others stay.
    CustomerProfile.objects.filter(pk=people[1].pk).update(lifecycle_stage="LAPSED")
    CustomerProfile.objects.filter(pk=people[3].pk).update(lifecycle_stage="MEMBER")
    second = segment_refresh(segment=segment)
    assert (second.members, second.entered, second.left) == (3, 1, 1)
    assert _members(segment) == {people[0].pk, people[2].pk, people[3].pk}
    # Members who stayed were not touched: same row, same "since".
    again = SegmentMembership.objects.get(segment=segment, customer=people[0])
    assert (again.pk, again.created_at) == (kept.pk, kept.created_at)
    changes = list(
        SegmentChange.objects.filter(segment=segment)
        .order_by("id")
        .values_list("customer_id", "kind")
    )
    assert changes[3:] == [(people[1].pk, ChangeKind.LEFT), (people[3].pk, ChangeKind.ENTERED)]
    segment.refresh_from_db()
    assert segment.member_count == 3 and segment.last_refreshed_at is not None
    assert segment.last_refresh_ms is not None
    # Nothing changed: nothing recorded.
    third = segment_refresh(segment=segment)
    assert (third.entered, third.left) == (0, 0)
    assert SegmentChange.objects.filter(segment=segment).count() == 5


def test_merged_and_deleted_profiles_are_never_members(tenant_a):
    people = _people(tenant_a, ["MEMBER", "MEMBER", "MEMBER"])
    CustomerProfile.objects.filter(pk=people[0].pk).update(status=ProfileStatus.MERGED)
    CustomerProfile.objects.filter(pk=people[1].pk).update(deleted_at=timezone.now())
    segment = segment_create(tenant=tenant_a, data={"name": "Members", "criteria": MEMBERS})
    segment_refresh(segment=segment)
    assert _members(segment) == {people[2].pk}


@pytest.mark.django_db(transaction=True)
def test_a_refresh_does_not_run_while_another_holds_the_segment():
    import psycopg

    from tests.factories import TenantFactory
    from tests.worker import subprocess_database_url

    tenant = TenantFactory(slug="lock-test")
    segment = segment_create(tenant=tenant, data={"name": "Members", "criteria": MEMBERS})
    with psycopg.connect(subprocess_database_url()) as other:
        other.execute("SELECT 1 FROM marketing_segment WHERE id = %s FOR UPDATE", [segment.pk])
        assert segment_refresh(segment=segment) is None  # the other session is refreshing
        other.rollback()
    assert segment_refresh(segment=segment) is not None


def test_segments_of_two_tenants_do_not_mix(tenant_a, tenant_b):
    _people(tenant_a, ["MEMBER"])
    theirs = person(tenant_b, email="b@example.com")
    CustomerProfile.objects.filter(pk=theirs.pk).update(lifecycle_stage="MEMBER")
    segment = segment_create(tenant=tenant_a, data={"name": "Members", "criteria": MEMBERS})
    segment_refresh(segment=segment)
    assert theirs.pk not in _members(segment)
    assert len(_members(segment)) == 1


def test_the_due_sweep_queues_due_dynamic_segments_once(tenant_a, monkeypatch):
    from marketing import tasks

    queued = []
    monkeypatch.setattr(
        tasks.refresh_segment, "enqueue", lambda tenant, **kw: queued.append(kw["segment_id"])
    )
    hourly = segment_create(
        tenant=tenant_a, data={"name": "H", "criteria": MEMBERS, "refresh_frequency": "HOURLY"}
    )
    manual = segment_create(
        tenant=tenant_a, data={"name": "M", "criteria": MEMBERS, "refresh_frequency": "MANUAL"}
    )
    segment_create(tenant=tenant_a, data={"name": "S", "type": "STATIC"})
    # Creating a dynamic segment refreshes it at once, whatever its frequency.
    assert queued == [str(hourly.pk), str(manual.pk)]
    queued.clear()
    assert segments_refresh_due() == 0  # not due yet
    later = timezone.now() + timedelta(hours=1, minutes=1)
    assert segments_refresh_due(now=later) == 1
    assert queued == [str(hourly.pk)]
    assert segments_refresh_due(now=later) == 0  # pushed to the next hour already
    hourly.refresh_from_db()
    assert hourly.next_refresh_at > later


# ----------------------------------------------------------------------------- static


def test_static_members_and_csv_upload_with_an_error_file(tenant_a, tenant_b):
    ann = person(tenant_a, email="ann@example.com")
    bob = person(tenant_a, phone="+27825550123")
    cat = person(tenant_a, email="cat@example.com")
    outsider = person(tenant_b, email="out@example.com")
    segment = segment_create(tenant=tenant_a, data={"name": "VIPs", "type": "STATIC"})
    assert segment_members_add(segment=segment, customer_ids=[cat.pk]) == 1
    text = (
        "email,phone,id,note\n"
        "ANN@example.com,,,captain\n"
        ",082 555 0123,,bob\n"
        f",,{cat.pk},already in\n"
        "nobody@example.com,,,ghost\n"
        "out@example.com,,,other club\n"
        f",,{outsider.pk},other tenant\n"
        "not-an-email,,,typo\n"
        ",,,empty\n"
    )
    result = segment_import_csv(segment=segment, text=text)
    assert (result.rows, result.matched, result.added, result.unmatched) == (8, 3, 2, 5)
    assert _members(segment) == {ann.pk, bob.pk, cat.pk}
    errors = list(csv.DictReader(io.StringIO(result.error_csv)))
    assert [e["note"] for e in errors] == ["typo", "empty", "ghost", "other club", "other tenant"]
    assert errors[0]["error"] == "Not a valid id, email or phone."
    assert errors[2]["error"] == "No customer with this email."
    segment.refresh_from_db()
    assert segment.member_count == 3
    # The same file again adds nobody.
    assert segment_import_csv(segment=segment, text=text).added == 0


def test_static_and_dynamic_refuse_the_wrong_kind_of_change(tenant_a):
    from django.core.exceptions import ValidationError

    dynamic = segment_create(tenant=tenant_a, data={"name": "D", "criteria": MEMBERS})
    someone = person(tenant_a, email="x@example.com")
    with pytest.raises(ValidationError) as caught:
        segment_members_add(segment=dynamic, customer_ids=[someone.pk])
    assert caught.value.status_code == 409
    with pytest.raises(ValidationError, match="needs rules"):
        segment_create(tenant=tenant_a, data={"name": "E", "type": "DYNAMIC"})


# ----------------------------------------------------------------------------- API


URL = "/api/v1/segments"


def test_api_create_validates_criteria_with_rule_paths(api_a):
    bad = {
        "combinator": "AND",
        "rules": [
            {"field": "lifecycle_stage", "operator": "eq", "value": "MEMBER"},
            {"combinator": "OR", "rules": [{"field": "salary", "operator": "gt", "value": 1}]},
        ],
    }
    response = api_a.post(URL, {"name": "Bad", "criteria": bad}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "criteria.rules[1].rules[0].field": ["Unknown field 'salary'."]
    }
    assert not Segment.objects.exists()


def test_api_crud_preview_refresh_members_and_changes(api_a, tenant_a):
    people = _people(tenant_a, ["MEMBER", "MEMBER", "VISITOR"])
    preview = api_a.post(f"{URL}/preview", {"criteria": MEMBERS}, format="json")
    assert preview.status_code == 200
    assert preview.json()["count"] == 2
    assert {s["email"] for s in preview.json()["sample"]} == {"m0@example.com", "m1@example.com"}
    assert not Segment.objects.exists()

    created = api_a.post(URL, {"name": "Members", "criteria": MEMBERS}, format="json")
    assert created.status_code == 201
    segment_id = created.json()["id"]
    assert created.json()["type"] == "DYNAMIC" and created.json()["member_count"] == 0
    refreshed = api_a.post(f"{URL}/{segment_id}/refresh")
    assert refreshed.status_code == 200
    assert refreshed.json()["members"] == 2 and refreshed.json()["entered"] == 2
    members = api_a.get(f"{URL}/{segment_id}/members").json()
    assert {m["customer"]["id"] for m in members["results"]} == {str(p.pk) for p in people[:2]}
    changes = api_a.get(f"{URL}/{segment_id}/changes", {"kind": "ENTERED"}).json()
    assert len(changes["results"]) == 2
    assert api_a.get(f"{URL}/{segment_id}/changes", {"kind": "MAYBE"}).status_code == 400

    renamed = api_a.patch(f"{URL}/{segment_id}", {"name": "Active members"}, format="json")
    assert renamed.status_code == 200 and renamed.json()["name"] == "Active members"
    clash = api_a.post(URL, {"name": "Active members", "criteria": MEMBERS}, format="json")
    assert clash.status_code == 400 and "name" in clash.json()["error"]["fields"]
    assert api_a.delete(f"{URL}/{segment_id}").status_code == 204
    assert not SegmentMembership.objects.exists()


def test_api_members_list_has_a_constant_query_count(api_a, tenant_a):
    _people(tenant_a, ["MEMBER"] * 12)
    segment = segment_create(tenant=tenant_a, data={"name": "Members", "criteria": MEMBERS})
    segment_refresh(segment=segment)
    url = f"{URL}/{segment.pk}/members"
    api_a.get(url)
    counts = []
    for size in (2, 12):
        with CaptureQueriesContext(connection) as queries:
            assert len(api_a.get(url, {"page_size": size}).json()["results"]) == size
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_api_static_members_and_csv(api_a, tenant_a):
    ann = person(tenant_a, email="ann@example.com")
    segment = api_a.post(URL, {"name": "VIPs", "type": "STATIC"}, format="json").json()
    url = f"{URL}/{segment['id']}"
    assert api_a.post(
        f"{url}/add-members", {"customer_ids": [str(ann.pk)]}, format="json"
    ).json() == {"added": 1, "member_count": 1}
    upload = SimpleUploadedFile(
        "vips.csv", b"email\nann@example.com\nghost@example.com\n", content_type="text/csv"
    )
    result = api_a.post(f"{url}/import", {"file": upload}, format="multipart").json()
    assert (result["matched"], result["added"], result["unmatched"]) == (1, 0, 1)
    assert "ghost@example.com,No customer with this email." in result["error_csv"]
    bad = SimpleUploadedFile("x.csv", b"name\nAnn\n", content_type="text/csv")
    response = api_a.post(f"{url}/import", {"file": bad}, format="multipart")
    assert response.status_code == 400 and "file" in response.json()["error"]["fields"]
    assert api_a.post(
        f"{url}/remove-members", {"customer_ids": [str(ann.pk)]}, format="json"
    ).json() == {"removed": 1, "member_count": 0}
    unknown = api_a.post(f"{url}/add-members", {"customer_ids": ["not-a-uuid"]}, format="json")
    assert unknown.status_code == 400


def test_api_another_tenants_segment_is_404(api_a, api_b, tenant_a):
    segment = segment_create(tenant=tenant_a, data={"name": "Members", "criteria": MEMBERS})
    for method, path in (
        ("get", ""),
        ("patch", ""),
        ("delete", ""),
        ("post", "/refresh"),
        ("get", "/members"),
        ("get", "/changes"),
        ("post", "/add-members"),
    ):
        response = getattr(api_b, method)(f"{URL}/{segment.pk}{path}", {}, format="json")
        assert response.status_code == 404, (method, path)
    assert Segment.objects.filter(pk=segment.pk).exists()


def test_a_rule_naming_another_tenants_segment_is_refused(api_a, api_b, tenant_b):
    theirs = segment_create(tenant=tenant_b, data={"name": "Theirs", "criteria": MEMBERS})
    criteria = {
        "combinator": "AND",
        "rules": [{"field": "segment", "operator": "eq", "value": str(theirs.pk)}],
    }
    response = api_a.post(f"{URL}/preview", {"criteria": criteria}, format="json")
    assert response.status_code == 400
    assert "does not exist" in json.dumps(response.json())


def test_member_of_segment_rule(tenant_a):
    people = _people(tenant_a, ["MEMBER", "MEMBER", "VISITOR"])
    members = segment_create(tenant=tenant_a, data={"name": "Members", "criteria": MEMBERS})
    segment_refresh(segment=members)
    outside = segment_create(
        tenant=tenant_a,
        data={
            "name": "Not members",
            "criteria": {
                "combinator": "AND",
                "rules": [{"field": "segment", "operator": "neq", "value": str(members.pk)}],
            },
        },
    )
    segment_refresh(segment=outside)
    assert _members(outside) == {people[2].pk}


def test_fields_endpoint_lists_the_whitelist(api_a):
    fields = {f["field"]: f for f in api_a.get(f"{URL}/fields").json()}
    assert fields["last_activity_at"]["type"] == "datetime"
    assert "password" not in fields


# ----------------------------------------------------------------------------- Messaging


@pytest.fixture
def http_messaging(settings):
    from marketing import messaging

    settings.MESSAGING_BACKEND = "http"
    settings.MESSAGING_URL = "http://messaging.test"
    settings.MESSAGING_API_KEY = "secret"
    messaging.get_backend.cache_clear()
    yield
    messaging.get_backend.cache_clear()


@responses.activate
def test_sync_pushes_members_to_messaging_with_idempotency_keys(tenant_a, http_messaging):
    import re

    from marketing import tasks

    people = _people(tenant_a, ["MEMBER", "MEMBER"])
    segment = segment_create(tenant=tenant_a, data={"name": "Members", "criteria": MEMBERS})
    segment_refresh(segment=segment)
    base = f"http://messaging.test/v1/segments/{segment.pk}"
    responses.put(base, json={"id": "msg-seg-9"})
    responses.put(re.compile(rf"{re.escape(base)}/members/\w+/1"), json={})
    assert tasks.sync_segment.run(tenant_a, segment_id=str(segment.pk)) == "msg-seg-9"
    head, page = responses.calls
    assert head.request.headers["Authorization"] == "Bearer secret"
    assert json.loads(head.request.body) == {"tenantId": tenant_a.slug, "name": "Members"}
    body = json.loads(page.request.body)
    assert body["final"] is True
    assert {m["customerId"] for m in body["members"]} == {str(p.pk) for p in people}
    assert {m["email"] for m in body["members"]} == {"m0@example.com", "m1@example.com"}
    keys = [c.request.headers["Idempotency-Key"] for c in responses.calls]
    assert len(set(keys)) == 2 and all(k.startswith(f"segment:{segment.pk}:") for k in keys)
    segment.refresh_from_db()
    assert segment.messaging_segment_id == "msg-seg-9" and segment.messaging_synced_at


@responses.activate
def test_a_refused_sync_raises_so_the_task_retries_and_nothing_is_marked(tenant_a, http_messaging):
    from marketing import tasks
    from marketing.messaging import MessagingError

    segment = segment_create(tenant=tenant_a, data={"name": "Members", "criteria": MEMBERS})
    responses.put(f"http://messaging.test/v1/segments/{segment.pk}", status=422, body="bad")
    with pytest.raises(MessagingError, match="422"):
        tasks.sync_segment.run(tenant_a, segment_id=str(segment.pk))
    assert MessagingError in tasks.sync_segment.autoretry_for
    segment.refresh_from_db()
    assert segment.messaging_synced_at is None


def test_the_local_backend_makes_sync_a_no_op(tenant_a):
    from marketing import tasks

    segment = segment_create(tenant=tenant_a, data={"name": "Members", "criteria": MEMBERS})
    assert tasks.sync_segment.run(tenant_a, segment_id=str(segment.pk)) is None
    segment.refresh_from_db()
    assert segment.messaging_synced_at is None


def test_static_type_has_no_rules(tenant_a):
    static = segment_create(tenant=tenant_a, data={"name": "S", "type": SegmentType.STATIC})
    assert static.criteria == {} and static.next_refresh_at is None


def test_a_customers_memberships_are_found_segment_by_segment(tenant_a, tenant_b):
    ann, bob = person(tenant_a, email="ann@example.com"), person(tenant_a, email="b@example.com")
    segments = [
        segment_create(tenant=tenant_a, data={"name": f"S{i}", "type": "STATIC"}) for i in range(3)
    ]
    segment_members_add(segment=segments[0], customer_ids=[ann.pk, bob.pk])
    segment_members_add(segment=segments[2], customer_ids=[ann.pk])
    segment_members_add(segment=segments[1], customer_ids=[bob.pk])
    theirs = segment_create(tenant=tenant_b, data={"name": "S0", "type": "STATIC"})
    segment_members_add(segment=theirs, customer_ids=[person(tenant_b, email="c@example.com").pk])
    found = memberships_of(tenant_a, [ann.pk]).values_list("segment_id", "customer_id")
    assert set(found) == {(segments[0].pk, ann.pk), (segments[2].pk, ann.pk)}
    assert set(memberships_of(tenant_a, [ann.pk, bob.pk]).values_list("segment_id", flat=True)) == {
        s.pk for s in segments
    }
    assert not memberships_of(tenant_b, [ann.pk]).exists()


def test_merge_moves_segment_memberships_without_doubles(tenant_a):
    from customers.services import profile_merge

    winner = person(tenant_a, email="w@example.com")
    loser = person(tenant_a, email="l@example.com")
    both = segment_create(tenant=tenant_a, data={"name": "Both", "type": "STATIC"})
    only_loser = segment_create(tenant=tenant_a, data={"name": "Loser", "type": "STATIC"})
    segment_members_add(segment=both, customer_ids=[winner.pk, loser.pk])
    segment_members_add(segment=only_loser, customer_ids=[loser.pk])
    merge = profile_merge(tenant=tenant_a, winner=winner, loser=loser, actor="test")
    assert merge.moved["segment_memberships"] == 1
    assert _members(both) == {winner.pk}
    assert _members(only_loser) == {winner.pk}
    assert not SegmentChange.objects.filter(customer=loser).exists()


def test_turning_a_static_segment_dynamic_schedules_its_refresh(api_a, tenant_a):
    static = segment_create(
        tenant=tenant_a,
        data={"name": "Was static", "type": "STATIC", "refresh_frequency": "HOURLY"},
    )
    assert static.next_refresh_at is None
    response = api_a.patch(
        f"/api/v1/segments/{static.pk}", {"type": "DYNAMIC", "criteria": MEMBERS}, format="json"
    )
    assert response.status_code == 200 and response.json()["next_refresh_at"]
    back = api_a.patch(
        f"/api/v1/segments/{static.pk}", {"type": "STATIC", "criteria": {}}, format="json"
    )
    assert back.json()["next_refresh_at"] is None and back.json()["criteria"] == {}


def test_the_error_file_does_not_hand_spreadsheets_formulas(api_a, tenant_a):
    """CSV injection: cells of unmatched rows that a spreadsheet would run as formulas come
    back with a leading quote (read as text); a corrected file imports with the quote."""
    ann = person(tenant_a, email="ann@example.com")
    segment = api_a.post(URL, {"name": "VIPs", "type": "STATIC"}, format="json").json()
    url = f"{URL}/{segment['id']}/import"
    text = (
        "email,=note\r\n"
        '=HYPERLINK("http://evil.test"),+1+1\r\n'
        "@SUM(A1),-2\r\n"
        'ghost@example.com,"\tcmd"\r\n'
        'ghost2@example.com,"\rcr"\r\n'
        "ghost3@example.com,it's fine = ok\r\n"
    )
    upload = SimpleUploadedFile("vips.csv", text.encode(), content_type="text/csv")
    result = api_a.post(url, {"file": upload}, format="multipart").json()
    assert result["unmatched"] == 5
    rows = list(csv.reader(io.StringIO(result["error_csv"])))
    assert rows == [
        ["email", "'=note", "error"],
        ['\'=HYPERLINK("http://evil.test")', "'+1+1", "Not a valid id, email or phone."],
        ["'@SUM(A1)", "'-2", "Not a valid id, email or phone."],
        ["ghost@example.com", "'\tcmd", "No customer with this email."],
        ["ghost2@example.com", "'\rcr", "No customer with this email."],
        ["ghost3@example.com", "it's fine = ok", "No customer with this email."],
    ]
    assert not SegmentMembership.objects.exists()
    # The error file, corrected and uploaded again, reads past the quote.
    quoted = SimpleUploadedFile("fixed.csv", b"phone\n'+27825550123\n", content_type="text/csv")
    bob = person(tenant_a, phone="+27825550123")
    fixed = api_a.post(url, {"file": quoted}, format="multipart").json()
    assert (fixed["matched"], fixed["added"], fixed["unmatched"]) == (1, 1, 0)
    assert _members(Segment.objects.get(pk=segment["id"])) == {bob.pk}
    assert ann.pk not in _members(Segment.objects.get(pk=segment["id"]))


def test_a_csv_cell_over_the_csv_field_limit_is_a_clear_400(api_a, tenant_a):
    segment = api_a.post(URL, {"name": "VIPs", "type": "STATIC"}, format="json").json()
    huge = b"email\n" + b"a" * (csv.field_size_limit() + 1) + b"@example.com\n"
    upload = SimpleUploadedFile("big.csv", huge, content_type="text/csv")
    response = api_a.post(f"{URL}/{segment['id']}/import", {"file": upload}, format="multipart")
    assert response.status_code == 400
    [message] = response.json()["error"]["fields"]["file"]
    assert message.startswith("Line 2: not a CSV this import can read")
    assert "field larger than field limit" in message
    assert not SegmentMembership.objects.filter(tenant=tenant_a).exists()
