"""Merged and erased profiles are gone for good: no detail route shows them whatever the query
string, no write changes or revives them, and resolve and lookup never return them."""

from __future__ import annotations

import pytest

from customers.erasure import customer_erase
from customers.models import AliasKind, CustomerProfile, IdentityAlias, Note, ProfileStatus
from customers.services import ProfileNotLive, profile_merge, profile_update
from customers.timeline import Author, note_create

from .helpers import person

pytestmark = pytest.mark.django_db

DETAIL_READS = ["", "/timeline", "/notes", "/consents"]


@pytest.fixture
def erased(tenant_a):
    erin = person(tenant_a, email="erin@example.com")
    customer_erase(tenant=tenant_a, customer=erin, actor="test")
    return CustomerProfile.objects.get(pk=erin.pk)


@pytest.fixture
def merged(tenant_a):
    winner = person(tenant_a, email="winner@example.com")
    loser = person(tenant_a, email="loser@example.com", first_name="Lou")
    profile_merge(tenant=tenant_a, winner=winner, loser=loser, actor="test")
    return CustomerProfile.objects.get(pk=loser.pk)


@pytest.mark.parametrize("kind", ["erased", "merged"])
@pytest.mark.parametrize("suffix", DETAIL_READS)
@pytest.mark.parametrize("query", ["", "?status=ERASED", "?status=MERGED", "?status=ACTIVE"])
def test_detail_routes_are_404_whatever_the_query_string(api_a, request, kind, suffix, query):
    profile = request.getfixturevalue(kind)

    response = api_a.get(f"/api/v1/customers/{profile.pk}{suffix}{query}")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("kind", ["erased", "merged"])
@pytest.mark.parametrize(
    "body",
    [{"email": "new.address@example.com"}, {"status": "ACTIVE"}, {"first_name": "Back"}],
    ids=["new-email", "revive", "rename"],
)
def test_patch_is_refused_and_changes_nothing(api_a, tenant_a, request, kind, body):
    profile = request.getfixturevalue(kind)
    before = CustomerProfile.objects.values().get(pk=profile.pk)

    for query in ("", f"?status={profile.status}"):
        response = api_a.patch(f"/api/v1/customers/{profile.pk}{query}", body, format="json")
        assert response.status_code == 404

    assert CustomerProfile.objects.values().get(pk=profile.pk) == before
    assert not IdentityAlias.objects.filter(value="new.address@example.com").exists()


@pytest.mark.parametrize("kind", ["erased", "merged"])
def test_notes_merge_and_erase_are_refused(api_a, tenant_a, request, kind):
    profile = request.getfixturevalue(kind)
    other = person(tenant_a, email="other@example.com")
    query = f"?status={profile.status}"

    notes = api_a.post(f"/api/v1/customers/{profile.pk}/notes{query}", {"body": "hi"}, "json")
    erase = api_a.post(f"/api/v1/customers/{profile.pk}/erase{query}", {}, format="json")
    as_winner = api_a.post(
        f"/api/v1/customers/{profile.pk}/merge{query}", {"loser_id": str(other.pk)}, "json"
    )
    as_loser = api_a.post(
        f"/api/v1/customers/{other.pk}/merge", {"loser_id": str(profile.pk)}, format="json"
    )

    assert (notes.status_code, erase.status_code, as_winner.status_code) == (404, 404, 404)
    assert as_loser.status_code == 400
    assert as_loser.json()["error"]["fields"]["loser_id"] == [f"This profile is {kind}."]
    assert not Note.objects.filter(customer=profile).exists()
    assert CustomerProfile.objects.get(pk=other.pk).status == ProfileStatus.ACTIVE
    assert CustomerProfile.objects.get(pk=profile.pk).status == profile.status


@pytest.mark.parametrize("kind", ["erased", "merged"])
def test_services_refuse_writes_to_gone_profiles(tenant_a, request, kind):
    profile = request.getfixturevalue(kind)

    with pytest.raises(ProfileNotLive):
        profile_update(tenant=tenant_a, profile=profile, data={"status": ProfileStatus.ACTIVE})
    with pytest.raises(ProfileNotLive):
        note_create(
            tenant=tenant_a, customer=profile, author=Author("user:1", "anna"), body="hello"
        )

    assert CustomerProfile.objects.get(pk=profile.pk).status == profile.status
    assert not Note.objects.filter(customer=profile).exists()


def test_erased_is_never_resolved_even_with_a_stray_alias(api_a, tenant_a, erased):
    # As if an identifier had been attached after the erasure (what PATCH used to allow).
    IdentityAlias.objects.create(
        tenant=tenant_a, kind=AliasKind.EMAIL, value="stray@example.com", profile=erased
    )

    lookup = api_a.get("/api/v1/customers/lookup", {"email": "stray@example.com"})
    by_old_email = api_a.get("/api/v1/customers/lookup", {"email": "erin@example.com"})
    resolved = api_a.post("/api/v1/customers/resolve", {"email": "erin@example.com"}, "json")

    assert lookup.status_code == 404
    assert by_old_email.status_code == 404
    assert resolved.status_code == 201
    assert resolved.json()["profile"]["id"] != str(erased.pk)


def test_merged_loser_is_never_resolved(api_a, tenant_a, merged):
    IdentityAlias.objects.create(
        tenant=tenant_a, kind=AliasKind.EMAIL, value="stray@example.com", profile=merged
    )

    stray = api_a.get("/api/v1/customers/lookup", {"email": "stray@example.com"})
    moved = api_a.get("/api/v1/customers/lookup", {"email": "loser@example.com"})

    assert stray.status_code == 404
    assert moved.status_code == 200
    assert moved.json()["profile"]["id"] == str(merged.merged_into_id)


def test_the_list_never_shows_an_erased_profile(api_a, erased):
    for query in ({}, {"status": "ERASED"}, {"q": "erin"}):
        assert api_a.get("/api/v1/customers", query).json()["results"] == []


def test_erasing_a_winner_erases_the_profiles_merged_into_it(tenant_a, merged):
    winner = CustomerProfile.objects.get(pk=merged.merged_into_id)

    erasure = customer_erase(tenant=tenant_a, customer=winner, actor="test")

    loser = CustomerProfile.objects.get(pk=merged.pk)
    assert loser.status == ProfileStatus.ERASED
    assert (loser.email, loser.first_name) == (None, "")
    assert erasure.scope["merged_profiles_erased"] == 1
