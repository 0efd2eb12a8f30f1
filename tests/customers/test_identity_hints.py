"""Hints are normalised (email case and spaces, E.164 phones by region) or refused."""

from __future__ import annotations

import random

import pytest
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from customers.identity import (
    HintError,
    IdentityHints,
    normalize_email,
    normalize_phone,
    phone_by_phonenumbers,
)


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


def _or_fault(normalize, value: str, **kwargs) -> str:
    try:
        return normalize(value, **kwargs)
    except ValidationError:
        return "fault"


@pytest.mark.parametrize(("region", "code"), [("ZA", "27"), ("GB", "44")])
def test_the_regular_spellings_read_without_phonenumbers_give_what_it_gives(region, code):
    """The regular expression of each region's usual spellings (the fast path) against the
    rule by ``phonenumbers`` alone, on thousands of spellings of random numbers, valid or not,
    and of digits that are not ASCII (which ``phonenumbers`` reads as digits)."""
    rng = random.Random(region)
    differ = []
    for _ in range(4000):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.choice((8, 9, 10, 11))))
        if rng.random() < 0.05:  # from some position on
            cut = rng.randrange(len(digits))
            digits = digits[:cut] + digits[cut:].translate(
                str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
            )
        value = rng.choice([
            "0" + digits, f"+{code}{digits}", f"{code}{digits}", f"00{code}{digits}",
            f"0{digits[:3]} {digits[3:]}", f"({digits[:3]}) {digits[3:6]}-{digits[6:]}",
            f"+{code} {digits[:2]} {digits[2:5]} {digits[5:]}", f" 0{digits}\t",
        ])  # fmt: skip
        if _or_fault(normalize_phone, value, region=region) != _or_fault(
            phone_by_phonenumbers, value, region=region
        ):
            differ.append(value)
    assert differ == []


def test_a_number_in_digits_that_are_not_ascii_becomes_ascii_e164():
    assert normalize_phone("082 1٢٣ ٤٥٦٧", region="ZA") == "+27821234567"
    assert normalize_phone("+44 7700 ٩٠٠١٢٣", region="GB") == "+447700900123"


def _by_the_validator(value: str) -> str:
    email = value.strip().lower()
    validate_email(email)
    return email


def test_plain_addresses_read_without_the_validator_give_what_it_gives():
    """The fast path for plain addresses against Django's validator alone, on random strings
    of the characters that matter, plain addresses, and long domain labels (at most 63)."""
    rng = random.Random(3)
    differ = []
    for i in range(6000):
        value = "".join(rng.choice("abcXYZ09._-+@ @") for _ in range(rng.randrange(3, 20)))
        if i % 3 == 0:
            value = value.replace("@", "") + "@example.co.za"
        elif i % 3 == 1:
            label = "".join(rng.choice("ab-9") for _ in range(rng.randrange(55, 75)))
            value = f"Someone.{i}@{label}.{rng.choice(['com', 'co.uk', 'c', 'golf'])}"
        if _or_fault(normalize_email, value) != _or_fault(_by_the_validator, value):
            differ.append(value)
    assert differ == []


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
