"""Per-region transforms of MCA v1 fields into the CRM's values.

Each function takes one raw field and returns the CRM's value, ``None`` for "unknown", or
raises ``FieldFault`` naming what is wrong. ``member_transform`` applies them to a member row:
a fault in a field the row cannot live without (the key) rejects the row; a fault in any other
field drops that field and *flags* the row with the reason, so the person still arrives (a
mistyped date of birth must not lose someone's history).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError

from customers.identity import normalize_email, normalize_phone
from customers.models import LifecycleStage

from .mca import Dialect

_DATE = re.compile(r"^(\d{2})/(\d{2})/(\d{4})$")
_DATETIME = re.compile(r"^(\d{2})/(\d{2})/(\d{4}) (\d{2}):(\d{2})$")
_UK_POSTCODE = re.compile(r"^([A-Z]{1,2}\d[A-Z\d]?)(\d[A-Z]{2})$")
_NAME_PARTICLES = frozenset({"van", "der", "de", "du", "le", "la", "von", "den"})
_MAC = re.compile(r"^(Mac|Mc)[A-Z][a-z]+$")

TXN_TYPES = {
    "SUB": "Subscription",
    "GF": "Green fee",
    "POS": "Bar or pro shop",
    "LEVY": "Levy",
    "REFUND": "Refund",
}


class FieldFault(ValueError):
    """One field's value is wrong; the message is the reason shown in the report."""


class RowRejected(ValueError):
    """The row cannot be loaded at all; the message is the reason."""


@lru_cache(maxsize=65536)
def parse_date(value: str, *, field: str = "date") -> date | None:
    """``DD/MM/YYYY``; blank or ``00/00/0000`` is unknown. Cached: a file holds a few
    thousand distinct days (birthdays, joining days) over hundreds of thousands of rows."""
    value = value.strip()
    if not value or value == "00/00/0000":
        return None
    match = _DATE.match(value)
    if not match:
        raise FieldFault(f"{field}: wrong date format {value!r} (expected DD/MM/YYYY)")
    day, month, year = (int(g) for g in match.groups())
    try:
        return date(year, month, day)
    except ValueError as exc:
        raise FieldFault(f"{field}: impossible date {value!r}") from exc


def parse_datetime(value: str, *, tz: str, field: str = "date-time") -> datetime | None:
    """``DD/MM/YYYY HH:MM`` in the region's time zone (a bare date is midnight)."""
    value = value.strip()
    if not value or value.startswith("00/00/0000"):
        return None
    match = _DATETIME.match(value)
    if not match:
        day = parse_date(value, field=field)
        return None if day is None else datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(tz))
    day, month, year, hour, minute = (int(g) for g in match.groups())
    try:
        return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(tz))
    except ValueError as exc:
        raise FieldFault(f"{field}: impossible date-time {value!r}") from exc


def parse_decimal(value: str, dialect: Dialect, *, field: str) -> Decimal | None:
    """ZA: decimal comma, optional space thousands (``1 234,50``); UK: ``1,234.50``, optional
    ``£``. Returns ``None`` for blank."""
    text = value.strip().replace("£", "").replace("R", "").replace("\xa0", "").replace(" ", "")
    if not text:
        return None
    if dialect.region == "ZA":
        text = text.replace(".", "").replace(",", ".")
    else:
        text = text.replace(",", "")
    try:
        return Decimal(text)
    except InvalidOperation as exc:
        raise FieldFault(f"{field}: not a number {value!r}") from exc


def parse_money(value: str, dialect: Dialect, *, field: str = "Amount") -> int:
    """Minor units (cents, pence) of the region's currency."""
    amount = parse_decimal(value, dialect, field=field)
    if amount is None:
        raise FieldFault(f"{field}: missing amount")
    minor = amount * 100
    if minor != minor.to_integral_value():
        raise FieldFault(f"{field}: more than two decimals {value!r}")
    return int(minor)


@lru_cache(maxsize=4096)
def parse_handicap(value: str, dialect: Dialect) -> Decimal | None:
    """``12,4`` / ``12.4``; a plus handicap (``+2,1``) is stored negative, as the WHS does."""
    text = value.strip()
    plus = text.startswith("+")
    number = parse_decimal(text.lstrip("+"), dialect, field="HandicapIndex")
    if number is None:
        return None
    if not Decimal("-10") <= number <= Decimal("54"):
        raise FieldFault(f"HandicapIndex: out of range {value!r}")
    return -number if plus else number


def parse_phone(value: str, dialect: Dialect, *, field: str) -> str | None:
    """E.164 in the region, by the API's rule and code (``customers.identity.normalize_phone``:
    the regular spellings by a regular expression, the rest by ``phonenumbers``)."""
    if not value.strip():
        return None
    try:
        return normalize_phone(value, region=dialect.phone_region)
    except ValidationError as exc:
        digits = re.sub(r"\D", "", value)
        reason = "phone too short" if len(digits) < 9 else "invalid phone"
        raise FieldFault(f"{field}: {reason} {value.strip()!r}") from exc


def parse_email(value: str) -> str | None:
    """By the API's rule and code (``customers.identity.normalize_email``, with its fast path
    for plain addresses)."""
    if not value.strip():
        return None
    try:
        return normalize_email(value)
    except ValidationError as exc:
        raise FieldFault(f"Email: malformed email {value.strip()!r}") from exc


_LUHN_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)  # a digit doubled, less 9 past 9


def luhn_ok(digits: str) -> bool:
    """Luhn: every second digit from the right doubled (less 9 past 9), the sum ends in 0."""
    total = sum(map(int, digits[-1::-2])) + sum(_LUHN_DOUBLED[int(c)] for c in digits[-2::-2])
    return total % 10 == 0


def parse_za_id(value: str, *, dob: date | None, gender: str) -> str | None:
    """A South African ID: 13 digits, YYMMDD, sequence (0-4999 female, 5000-9999 male),
    citizenship 0/1, 8, Luhn check digit; its date and gender must agree with the row."""
    text = re.sub(r"\s", "", value)
    if not text:
        return None
    if not re.fullmatch(r"\d{13}", text):
        raise FieldFault(f"IDNumber: not 13 digits {value.strip()!r}")
    if not luhn_ok(text):
        raise FieldFault(f"IDNumber: ID check digit wrong {text!r}")
    if dob is not None and text[:6] != f"{dob.year % 100:02d}{dob.month:02d}{dob.day:02d}":
        raise FieldFault(f"IDNumber: date of birth {text[:6]} does not match DOB {dob}")
    id_gender = "M" if int(text[6:10]) >= 5000 else "F"
    if gender in ("M", "F") and gender != id_gender:
        raise FieldFault(f"IDNumber: gender {id_gender} does not match Gender {gender}")
    return text


def parse_cdh(value: str) -> str | None:
    text = re.sub(r"\s", "", value)
    if not text:
        return None
    if not re.fullmatch(r"\d{10}", text):
        raise FieldFault(f"CDHNumber: not 10 digits {value.strip()!r}")
    return text


@lru_cache(maxsize=65536)
def parse_postal(value: str, dialect: Dialect) -> str | None:
    text = re.sub(r"\s", "", value).upper()
    if not text:
        return None
    if dialect.region == "ZA":
        if not re.fullmatch(r"\d{4}", text):
            raise FieldFault(f"PostalCode: not 4 digits {value.strip()!r}")
        return text
    match = _UK_POSTCODE.match(text)
    if not match:
        raise FieldFault(f"Postcode: not a UK postcode {value.strip()!r}")
    return f"{match.group(1)} {match.group(2)}"


def parse_consent(value: str) -> bool | None:
    """``Y`` consent, ``N`` refusal, blank never asked (which is *not* consent: ``None``)."""
    text = value.strip().upper()
    if not text:
        return None
    if text in ("Y", "N"):
        return text == "Y"
    raise FieldFault(f"OptIn: expected Y, N or blank, got {value.strip()!r}")


@dataclass(frozen=True)
class Lifecycle:
    stage: str
    membership_status: str
    deceased: bool = False


LIFECYCLE: dict[str, Lifecycle] = {
    "A": Lifecycle(LifecycleStage.MEMBER, "ACTIVE"),
    "S": Lifecycle(LifecycleStage.MEMBER, "SUSPENDED"),
    "R": Lifecycle(LifecycleStage.LAPSED, "RESIGNED"),
    "L": Lifecycle(LifecycleStage.LAPSED, "LAPSED"),
    # Deceased: never contacted again (suppressed on every channel by the load).
    "D": Lifecycle(LifecycleStage.CHURNED, "DECEASED", deceased=True),
}


def parse_status(value: str) -> str:
    text = value.strip().upper()
    if text not in LIFECYCLE:
        raise RowRejected(f"Status: unknown status {value.strip()!r}")
    return text


def _is_proper(word: str) -> bool:
    return bool(_MAC.match(word)) or (word[:1].isupper() and word[1:].islower())


_PROPER_WORD = re.compile(r"[A-Z][a-z]+")


def clean_name(value: str) -> str:
    """Trim, and fix the case of names typed in capitals or with stray capitals
    (``NOMSA``, ``GugU``), keeping ``MacDonald``, ``Le Roux`` and ``van der Merwe``."""
    if not value or _PROPER_WORD.fullmatch(value):
        return value  # most names: one word already in proper case
    words = re.split(r"(\s+|-|')", value.strip())
    result = []
    for word in words:
        keep = not word[:1].isalpha() or word in _NAME_PARTICLES or _is_proper(word)
        result.append(word if keep else word.capitalize())
    return re.sub(r"\s+", " ", "".join(result))


def _field(errors: list[str], parse, *args, **kwargs) -> Any:
    try:
        return parse(*args, **kwargs)
    except FieldFault as fault:
        errors.append(str(fault))
        return None


def member_transform(
    fields: dict[str, str], dialect: Dialect, *, as_of: date
) -> tuple[dict[str, Any], list[str]]:
    """A member row's CRM values (JSON-ready) and the flags of the fields it dropped.
    Raises ``RowRejected`` when the row has no key or an unknown status. ``as_of`` is the
    export's date in the region: a date of birth after it is in the future (whatever the day
    the export is imported)."""
    club, number = fields["ClubCode"].strip().upper(), fields["MemberNo"].strip()
    if not club or not number:
        raise RowRejected("missing ClubCode or MemberNo")
    status = parse_status(fields["Status"])
    flags: list[str] = []
    gender = fields["Gender"].strip().upper()
    gender = gender if gender in ("M", "F") else ""
    dob = _field(flags, parse_date, fields["DOB"], field="DOB")
    if dialect.region == "ZA":
        national = _field(flags, parse_za_id, fields["IDNumber"], dob=dob, gender=gender)
    else:
        national = _field(flags, parse_cdh, fields["CDHNumber"])
    join = _field(flags, parse_date, fields["JoinDate"], field="JoinDate")
    left = _field(flags, parse_date, fields["LeftDate"], field="LeftDate")
    handicap = _field(flags, parse_handicap, fields["HandicapIndex"], dialect)
    last_visit = _field(flags, parse_datetime, fields["LastVisit"], tz=dialect.timezone)
    values = {
        "club": club,
        "member_no": number,
        "title": fields["Title"].strip(),
        "first_name": clean_name(fields["FirstName"]),
        "last_name": clean_name(fields["Surname"]),
        "known_as": clean_name(fields["KnownAs"]),
        "gender": gender,
        "dob": dob.isoformat() if dob else None,
        "national_id": national,
        "email": _field(flags, parse_email, fields["Email"]),
        "phone": _field(flags, parse_phone, fields["Mobile"], dialect, field="Mobile"),
        "home_phone": _field(flags, parse_phone, fields["HomePhone"], dialect, field="HomePhone"),
        "address1": fields["Address1"].strip(),
        "address2": fields["Address2"].strip(),
        "town": clean_name(fields["Town"]),
        "postal": _field(flags, parse_postal, fields[dialect.postal], dialect),
        "category": " ".join(fields["Category"].split()).title(),
        "status": status,
        "join_date": join.isoformat() if join else None,
        "left_date": left.isoformat() if left else None,
        "handicap": str(handicap) if handicap is not None else None,
        "email_opt_in": _field(flags, parse_consent, fields["EmailOptIn"]),
        "sms_opt_in": _field(flags, parse_consent, fields["SMSOptIn"]),
        "last_visit": last_visit.isoformat() if last_visit else None,
    }
    if dob and dob > as_of:
        flags.append(f"DOB: in the future {dob}")
        values["dob"] = None
    if left and join and left < join:
        flags.append(f"LeftDate: before JoinDate {left}")
    return values, flags


def round_transform(fields: dict[str, str], dialect: Dialect) -> dict[str, Any]:
    try:
        played = parse_date(fields["PlayedOn"], field="PlayedOn")
    except FieldFault as fault:
        raise RowRejected(str(fault)) from fault
    if played is None:
        raise RowRejected("PlayedOn: missing")
    holes = fields["Holes"].strip()
    if holes not in ("9", "18"):
        raise RowRejected(f"Holes: expected 9 or 18, got {holes!r}")
    return {
        "club": fields["ClubCode"].strip().upper(),
        "member_no": fields["MemberNo"].strip(),
        "played_on": played.isoformat(),
        "course": fields["Course"].strip(),
        "holes": int(holes),
        "gross": int(fields["Gross"]) if fields["Gross"].strip().isdigit() else None,
        "stableford": (
            int(fields["Stableford"]) if fields["Stableford"].strip().isdigit() else None
        ),
        "competition": fields["Competition"].strip(),
    }


def transaction_transform(fields: dict[str, str], dialect: Dialect) -> dict[str, Any]:
    try:
        on = parse_date(fields["TxnDate"], field="TxnDate")
        amount = parse_money(fields["Amount"], dialect)
    except FieldFault as fault:
        raise RowRejected(str(fault)) from fault
    if on is None:
        raise RowRejected("TxnDate: missing")
    kind = fields["TxnType"].strip().upper()
    if kind not in TXN_TYPES:
        raise RowRejected(f"TxnType: unknown type {kind!r}")
    if kind == "REFUND" and amount > 0:
        amount = -amount  # a refund always subtracts, whichever sign the club typed
    reference = fields["Reference"].strip()
    if not reference:
        raise RowRejected("Reference: missing")
    return {
        "club": fields["ClubCode"].strip().upper(),
        "member_no": fields["MemberNo"].strip(),
        "on": on.isoformat(),
        "type": kind,
        "amount_minor": amount,
        "currency": dialect.currency,
        "reference": reference,
    }
