"""Identity hints: normalisation and validation, without network look-ups.

Emails are trimmed and lower-cased and checked by Django's validator. Phones are parsed with
``phonenumbers`` in the tenant's default region and stored as E.164. A number is accepted
when it is valid, or when it has the length of a mobile number of its country (so reserved
ranges such as the UK's 07700 900xxx, used in examples and tests, are kept).
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


def normalize_email(value: str) -> str:
    email = value.strip().lower()
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


def normalize_phone(value: str, *, region: str) -> str:
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
