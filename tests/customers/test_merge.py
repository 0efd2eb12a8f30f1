"""Merge: everything moves set-wise, blanks fill, consent is reconciled, an audit stays."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from crm.registry import merge_hooks, register_merge_hook
from customers.models import IdentityAlias, ProfileMerge, ProfileStatus
from customers.services import profile_merge

from .helpers import person

pytestmark = pytest.mark.django_db
NOW = timezone.now()


def _set(profile, **fields):
    for name, value in fields.items():
        setattr(profile, name, value)
    profile.save()
    return profile


def test_merge_moves_aliases_fills_blanks_and_keeps_an_audit(tenant_a):
    winner = _set(
        person(tenant_a, email="w@example.com"),
        first_name="Thabo",
        tags=["juniors"],
        lifetime_value_minor=1000,
    )
    loser = _set(
        person(tenant_a, email="l@example.com", phone="0821234567", scl_member_id="S9"),
        first_name="T.",
        last_name="Nkosi",
        tags=["seniors"],
        lifetime_value_minor=500,
        membership_type="Full",
    )

    merge = profile_merge(
        tenant=tenant_a, winner=winner, loser=loser, actor="staff:anna", reason="same person"
    )

    winner.refresh_from_db()
    loser.refresh_from_db()
    assert IdentityAlias.objects.filter(profile=loser).count() == 0
    assert IdentityAlias.objects.filter(profile=winner).count() == 4
    assert (winner.first_name, winner.last_name) == ("Thabo", "Nkosi")  # kept, filled
    assert (winner.phone, winner.scl_member_id, winner.membership_type) == (
        "+27821234567",
        "S9",
        "Full",
    )
    assert winner.tags == ["juniors", "seniors"]
    assert winner.lifetime_value_minor == 1500
    assert (loser.status, loser.merged_into_id) == (ProfileStatus.MERGED, winner.pk)
    audit = ProfileMerge.objects.get()
    assert audit.pk == merge.pk
    assert (audit.actor, audit.reason) == ("staff:anna", "same person")
    assert audit.loser_snapshot["email"] == "l@example.com"
    assert ["scl_member", "S9"] in audit.loser_snapshot["aliases"]
    assert audit.moved["aliases"] == 3


@pytest.mark.parametrize(
    ("winner_state", "loser_state", "expected"),
    [
        # (opt_in, minutes ago or None) -> winner's opt_in after the merge
        ((False, 60), (True, 10), True),  # a later opt-in by the same person wins
        ((False, 10), (True, 60), False),  # a later opt-out stays
        ((True, 60), (False, 10), False),  # a later opt-out wins
        ((False, 30), (True, 30), False),  # same instant: the opt-out holds
        ((True, 30), (False, 30), False),
        ((False, 30), (None, None), False),  # the loser never decided: nothing changes
        ((True, 30), (None, None), True),
    ],
)
def test_consent_most_recent_decision_wins_and_ties_keep_the_opt_out(
    tenant_a, winner_state, loser_state, expected
):
    def consent(state):
        opt_in, minutes = state
        if opt_in is None:
            return {"email_opt_in": False, "email_consent_at": None}
        return {
            "email_opt_in": opt_in,
            "email_consent_at": NOW - timedelta(minutes=minutes),
            "email_consent_source": "test",
        }

    winner = _set(person(tenant_a, email="w@example.com"), **consent(winner_state))
    loser = _set(person(tenant_a, email="l@example.com"), **consent(loser_state))

    profile_merge(tenant=tenant_a, winner=winner, loser=loser, actor="test")

    winner.refresh_from_db()
    assert winner.email_opt_in is expected


def test_merge_hooks_move_other_apps_rows(tenant_a):
    calls = []

    def hook(*, tenant, winner, loser):
        calls.append((tenant.pk, winner.pk, loser.pk))
        return 7

    register_merge_hook("test-notes", hook)
    try:
        winner, loser = person(tenant_a, email="w@x.co"), person(tenant_a, email="l@x.co")
        merge = profile_merge(tenant=tenant_a, winner=winner, loser=loser, actor="test")
    finally:
        from crm import registry

        registry._merge_hooks.pop("test-notes", None)

    assert calls == [(tenant_a.pk, winner.pk, loser.pk)]
    assert merge.moved["test-notes"] == 7
    assert "test-notes" not in merge_hooks()


def test_refused_merges_change_nothing(tenant_a, tenant_b):
    a, b = person(tenant_a, email="a@x.co"), person(tenant_a, email="b@x.co")
    other = person(tenant_b, email="o@x.co")

    with pytest.raises(ValidationError, match="into itself"):
        profile_merge(tenant=tenant_a, winner=a, loser=a, actor="t")
    with pytest.raises(ValidationError, match="this tenant"):
        profile_merge(tenant=tenant_a, winner=a, loser=other, actor="t")
    profile_merge(tenant=tenant_a, winner=a, loser=b, actor="t")
    with pytest.raises(ValidationError, match="merged"):
        profile_merge(tenant=tenant_a, winner=b, loser=a, actor="t")

    assert ProfileMerge.objects.count() == 1
    other.refresh_from_db()
    assert other.status == ProfileStatus.ACTIVE
