"""Identity hints: normalisation and validation, without network look-ups.

Emails are trimmed and lower-cased and checked by Django's validator. Phones are read in the
tenant's default region and stored as E.164, by the rule of ``phonenumbers``: a number is
accepted when it is valid, or when it has the length of a mobile number of its country (so
reserved ranges such as the UK's 07700 900xxx, used in examples and tests, are kept). The
regular spellings of South African and UK numbers are read by a regular expression that gives
the same answers; the rest by ``phonenumbers`` itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

import phonenumbers
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator

from .models import AliasKind

# Confidence of a match by each kind of identifier (documented in docs/customers.md).
CONFIDENCE: dict[str, int] = {
    AliasKind.AUTH_USER: 100,
    AliasKind.SCL_MEMBER: 100,
    AliasKind.EMAIL: 95,
    AliasKind.TEETIME_PLAYER: 90,
    AliasKind.MESSAGING_CONTACT: 90,
    AliasKind.PHONE: 85,
    AliasKind.EXTERNAL: 80,
}

# Hint name (API and service) -> alias kind, and the profile column that mirrors it.
HINT_KINDS: dict[str, str] = {
    "auth_user_id": AliasKind.AUTH_USER,
    "scl_member_id": AliasKind.SCL_MEMBER,
    "email": AliasKind.EMAIL,
    "phone": AliasKind.PHONE,
    "teetime_player_id": AliasKind.TEETIME_PLAYER,
    "messaging_contact_id": AliasKind.MESSAGING_CONTACT,
}
MAX_ID_LENGTH = 64
_email_validator = EmailValidator()


class HintError(ValidationError):
    """Invalid hints; ``message_dict`` maps hint names to messages."""


# Addresses of this plain shape pass Django's validator (a strict subset of what it accepts:
# ASCII, dot-atom local part, domain labels of letters, digits and inner hyphens of at most 63
# characters, a TLD of letters, 254 characters in all); anything else is checked by the
# validator itself. A randomized test compares them (tests/customers/test_identity_hints.py).
_PLAIN_EMAIL = re.compile(
    r"[a-z0-9_+-]+(?:\.[a-z0-9_+-]+)*@(?:[a-z0-9]+(?:-[a-z0-9]+)*\.)+[a-z]{2,20}", re.ASCII
)


def normalize_email(value: str) -> str:
    """Trimmed and lower-cased; ``ValidationError`` unless Django's validator accepts it."""
    email = value.strip().lower()
    if (
        len(email) <= 254
        and _PLAIN_EMAIL.fullmatch(email)
        and max(map(len, email.rpartition("@")[2].split("."))) <= 63
    ):
        return email
    _email_validator(email)
    return email


def _has_mobile_length(number: phonenumbers.PhoneNumber) -> bool:
    """As long as the country's example mobile number, and of a possible shape."""
    # A parsed number always has a country code; 0, like None, maps to the unknown region.
    region = phonenumbers.region_code_for_country_code(number.country_code or 0)
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    return (
        example is not None
        and len(str(number.national_number)) == len(str(example.national_number))
        and phonenumbers.is_possible_number(number)
    )


# The regular spellings of each region's numbers, and their E.164 (``\\1`` is the national
# significant number). Each gives exactly what ``phonenumbers`` gives under the rule above (a
# number of the region's mobile length is accepted), checked on thousands of random spellings
# by tests/customers/test_identity_hints.py; anything else goes to ``phonenumbers``, whose
# parse costs 25-250 µs a call (most of the cost of an event's identity hints, and once of a
# backfill member row's staging). ASCII only: Python's ``\d`` also matches other scripts'
# digits, which ``phonenumbers`` reads as their values (the E.164 must be ASCII).
_PHONE_SEPARATORS = re.compile(r"[\s\-().]", re.ASCII)
_REGULAR_PHONES: dict[str, tuple[re.Pattern[str], str]] = {
    "ZA": (re.compile(r"^(?:0|\+27|0027|27)([1-8]\d{8})$", re.ASCII), "+27"),
    "GB": (re.compile(r"^(?:0|\+44|0044|44)([1-37]\d{9})$", re.ASCII), "+44"),
}


def normalize_phone(value: str, *, region: str) -> str:
    """E.164 of ``value`` read in ``region``; ``ValidationError`` when it is not a number of
    that rule (see the module docstring)."""
    regular = _REGULAR_PHONES.get(region)
    if regular is not None:
        match = regular[0].match(_PHONE_SEPARATORS.sub("", value))
        if match:
            return regular[1] + match.group(1)
    return _phonenumbers_e164(value.strip(), region)


# Per process, bounded: the same numbers come again (a member's every event carries theirs; an
# export's switchboards and placeholders repeat). A refused value is not kept (the exception
# is raised again, by a new parse).
@lru_cache(maxsize=65536)
def _phonenumbers_e164(value: str, region: str) -> str:
    return phone_by_phonenumbers(value, region=region)


def phone_by_phonenumbers(value: str, *, region: str) -> str:
    """The rule itself, by ``phonenumbers`` alone: what ``normalize_phone`` must give."""
    try:
        number = phonenumbers.parse(value.strip(), region)
    except phonenumbers.NumberParseException as exc:
        raise ValidationError(f"{value!r} is not a phone number.") from exc
    if not (phonenumbers.is_valid_number(number) or _has_mobile_length(number)):
        raise ValidationError(f"{value!r} is not a valid phone number for region {region}.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _normalize_id(value) -> str:
    text = str(value).strip()
    if not text:
        raise ValidationError("This identifier is empty.")
    if len(text) > MAX_ID_LENGTH:
        raise ValidationError(f"Ensure this identifier has at most {MAX_ID_LENGTH} characters.")
    return text


@dataclass(frozen=True)
class IdentityHints:
    """Normalised identifiers of one person. Build with ``IdentityHints.parse``."""

    auth_user_id: str | None = None
    email: str | None = None
    phone: str | None = None
    scl_member_id: str | None = None
    teetime_player_id: str | None = None
    messaging_contact_id: str | None = None
    external_ids: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: dict, *, phone_region: str) -> IdentityHints:
        """Normalise raw hints; raises ``HintError`` with every bad hint named."""
        errors: dict[str, list[str]] = {}
        values: dict[str, object] = {}
        for name in HINT_KINDS:
            value = raw.get(name)
            if value in (None, ""):
                continue
            try:
                if name == "email":
                    values[name] = normalize_email(str(value))
                elif name == "phone":
                    values[name] = normalize_phone(str(value), region=phone_region)
                else:
                    values[name] = _normalize_id(value)
            except ValidationError as exc:
                errors[name] = exc.messages
        external = raw.get("external_ids") or {}
        if not isinstance(external, dict):
            errors["external_ids"] = ["Expected an object of {system: id}."]
        else:
            cleaned = {}
            for system, ident in external.items():
                try:
                    cleaned[_normalize_id(system).lower()] = _normalize_id(ident)
                except ValidationError as exc:
                    errors.setdefault("external_ids", []).extend(
                        f"{system}: {m}" for m in exc.messages
                    )
            values["external_ids"] = cleaned
        if errors:
            raise HintError(errors)
        return cls(**values)  # type: ignore[arg-type]

    def pairs(self) -> list[tuple[str, str, str]]:
        """``(hint name, alias kind, value)`` for every identifier given."""
        result = [
            (name, kind, getattr(self, name))
            for name, kind in HINT_KINDS.items()
            if getattr(self, name)
        ]
        result += [
            ("external_ids", AliasKind.EXTERNAL, f"{system}:{ident}")
            for system, ident in sorted(self.external_ids.items())
        ]
        return result

    def is_empty(self) -> bool:
        return not self.pairs()
