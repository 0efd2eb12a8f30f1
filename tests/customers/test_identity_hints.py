"""Hints are normalised (email case and spaces, E.164 phones by region) or refused."""

from __future__ import annotations

import pytest

from customers.identity import HintError, IdentityHints


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("082 123 4567", "ZA", "+27821234567"),
        ("27821234567", "ZA", "+27821234567"),
        ("+27 82 123 4567", "ZA", "+27821234567"),
        ("0821234567", "ZA", "+27821234567"),
        ("07700 900123", "GB", "+447700900123"),
        ("+44 7700 900123", "GB", "+447700900123"),
        ("07400 123456", "GB", "+447400123456"),
        ("+27 82 123 4567", "GB", "+27821234567"),  # international beats the region
        ("+44 7624 123456", "ZA", "+447624123456"),  # Isle of Man reports region IM
    ],
)
def test_phones_become_e164_in_the_tenants_region(raw, region, e164):
    assert IdentityHints.parse({"phone": raw}, phone_region=region).phone == e164


@pytest.mark.parametrize("raw", ["12345", "not a phone", "+27 82", "0000000000000000000"])
def test_invalid_phones_are_refused(raw):
    with pytest.raises(HintError) as caught:
        IdentityHints.parse({"phone": raw}, phone_region="ZA")
    assert "phone" in caught.value.message_dict


def test_emails_are_trimmed_and_lowercased():
    hints = IdentityHints.parse({"email": "  Thabo.Nkosi@Example.CO.ZA "}, phone_region="ZA")
    assert hints.email == "thabo.nkosi@example.co.za"


@pytest.mark.parametrize("raw", ["no-at-sign", "a@", "@b.co", "a b@c.co"])
def test_invalid_emails_are_refused(raw):
    with pytest.raises(HintError) as caught:
        IdentityHints.parse({"email": raw}, phone_region="ZA")
    assert "email" in caught.value.message_dict


def test_every_bad_hint_is_named_at_once():
    with pytest.raises(HintError) as caught:
        IdentityHints.parse(
            {"email": "nope", "phone": "1", "scl_member_id": "x" * 65, "external_ids": "x"},
            phone_region="ZA",
        )
    assert set(caught.value.message_dict) == {"email", "phone", "scl_member_id", "external_ids"}


def test_external_ids_become_system_scoped_pairs():
    hints = IdentityHints.parse({"external_ids": {"MCA": " 991 "}}, phone_region="ZA")
    assert hints.pairs() == [("external_ids", "external", "mca:991")]
