"""Identity resolution: every hint kind, confidence, attachment, conflicts, tenants, races."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from customers.models import CustomerProfile, IdentityAlias, MergeSuggestion
from customers.services import profile_merge

from .helpers import person, resolve

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("hint", "value", "confidence"),
    [
        ("auth_user_id", "auth-1", 100),
        ("scl_member_id", "SCL-1", 100),
        ("email", "jo@example.com", 95),
        ("teetime_player_id", "TT-1", 90),
        ("messaging_contact_id", "MSG-1", 90),
        ("phone", "0821234567", 85),
        ("external_ids", {"mca": "77"}, 80),
    ],
)
def test_each_hint_kind_finds_the_profile_with_its_confidence(tenant_a, hint, value, confidence):
    created = resolve(tenant_a, **{hint: value})

    again = resolve(tenant_a, **{hint: value})

    assert created.is_new and not again.is_new
    assert again.profile.pk == created.profile.pk
    assert again.matched_by == [hint]
    assert again.confidence == confidence


def test_local_and_international_phone_formats_are_one_person(tenant_a):
    first = person(tenant_a, phone="082 123 4567")
    for variant in ("27821234567", "+27 82 123 4567", "0821234567"):
        assert person(tenant_a, phone=variant).pk == first.pk
    assert CustomerProfile.objects.count() == 1


def test_uk_formats_are_one_person(tenant_b):
    first = person(tenant_b, phone="07700 900123")
    assert person(tenant_b, phone="+44 7700 900123").pk == first.pk


def test_email_case_and_spaces_do_not_make_a_new_person(tenant_a):
    first = person(tenant_a, email="Jo@Example.com")
    assert person(tenant_a, email="  jo@example.COM ").pk == first.pk


def test_new_identifiers_are_attached_and_blank_columns_filled(tenant_a):
    first = person(tenant_a, email="jo@example.com")

    again = resolve(
        tenant_a,
        email="jo@example.com",
        phone="0821234567",
        auth_user_id="au-9",
        external_ids={"mca": "5"},
    )

    assert again.matched_by == ["email"]
    profile = again.profile
    assert (profile.pk, profile.phone, profile.auth_user_id) == (
        first.pk,
        "+27821234567",
        "au-9",
    )
    assert profile.external_ids == {"mca": "5"}
    assert person(tenant_a, phone="+27821234567").pk == first.pk
    assert person(tenant_a, external_ids={"MCA": "5"}).pk == first.pk


def test_matched_by_lists_every_hint_pointing_at_the_profile(tenant_a):
    person(tenant_a, email="jo@example.com", phone="0821234567", scl_member_id="S1")

    again = resolve(tenant_a, email="jo@example.com", phone="0821234567", scl_member_id="S1")

    assert again.matched_by == ["email", "phone", "scl_member_id"]
    assert again.confidence == 100


def test_conflicting_hints_pick_the_strongest_and_suggest_a_merge(tenant_a):
    by_email = person(tenant_a, email="jo@example.com")
    by_scl = person(tenant_a, scl_member_id="S1")

    result = resolve(tenant_a, email="jo@example.com", scl_member_id="S1", phone="0821234567")

    assert result.profile.pk == by_scl.pk  # SCL (100) beats email (95)
    assert result.matched_by == ["scl_member_id"]
    assert result.suggestions == [str(by_email.pk)]
    suggestion = MergeSuggestion.objects.get()
    assert {suggestion.profile_id, suggestion.candidate_id} == {by_email.pk, by_scl.pk}
    assert "email" in suggestion.reason
    # The email stays with its owner; the new phone goes to the chosen profile.
    assert IdentityAlias.objects.get(kind="email").profile_id == by_email.pk
    assert IdentityAlias.objects.get(kind="phone").profile_id == by_scl.pk


def test_replaying_a_conflict_does_not_duplicate_the_suggestion(tenant_a):
    person(tenant_a, email="jo@example.com")
    person(tenant_a, scl_member_id="S1")

    for _ in range(3):
        resolve(tenant_a, email="jo@example.com", scl_member_id="S1")

    assert MergeSuggestion.objects.count() == 1


def test_same_email_in_two_tenants_is_two_people(tenant_a, tenant_b):
    a = person(tenant_a, email="jo@example.com")
    b = person(tenant_b, email="jo@example.com")

    assert a.pk != b.pk
    assert resolve(tenant_b, auth_user_id="x", email="jo@example.com").profile.pk == b.pk


def test_lookup_never_creates(tenant_a):
    result = resolve(tenant_a, create=False, email="ghost@example.com")

    assert result.profile is None
    assert CustomerProfile.objects.count() == 0


def test_identifiers_of_merged_profiles_resolve_to_the_final_winner(tenant_a):
    a = person(tenant_a, email="a@example.com")
    b = person(tenant_a, email="b@example.com")
    c = person(tenant_a, email="c@example.com")
    profile_merge(tenant=tenant_a, winner=b, loser=a, actor="test")
    profile_merge(tenant=tenant_a, winner=c, loser=b, actor="test")

    assert person(tenant_a, email="a@example.com").pk == c.pk
    assert person(tenant_a, email="b@example.com").pk == c.pk
    a.refresh_from_db()
    assert a.merged_into_id == c.pk


@pytest.mark.django_db(transaction=True)
def test_concurrent_resolves_of_a_new_person_create_one_profile(tenant_a):
    threads_count = 8
    barrier = threading.Barrier(threads_count)
    results, errors = [], []

    def work():
        try:
            barrier.wait()
            results.append(
                resolve(tenant_a, email="race@example.com", phone="0821234567").profile.pk
            )
        except Exception as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert CustomerProfile.objects.count() == 1
    assert set(results) == {CustomerProfile.objects.get().pk}
    assert IdentityAlias.objects.count() == 2
