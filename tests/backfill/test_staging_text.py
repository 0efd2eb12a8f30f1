"""The staging fast paths give exactly what the plain rules give: the Luhn check by slices
against the textbook loop, and COPY lines checked once against escaping every value."""

from __future__ import annotations

import random

import pytest

from backfill.runs import _COPY_ESCAPES, _copy_text
from backfill.transforms import FieldFault, luhn_ok, parse_date


def _luhn_textbook(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        number = int(char)
        if index % 2 == 1:
            number *= 2
            if number > 9:
                number -= 9
        total += number
    return total % 10 == 0


def _copy_textbook(values: tuple) -> str:
    out = []
    for value in values:
        if value is None:
            out.append("\\N")
        elif value is True or value is False:
            out.append("t" if value else "f")
        else:
            out.append(str(value).translate(_COPY_ESCAPES))
    return "\t".join(out) + "\n"


def test_luhn_by_slices_agrees_with_the_textbook_loop():
    rng = random.Random(7)
    numbers = ["".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 16)))
               for _ in range(20_000)]  # fmt: skip
    assert [luhn_ok(n) for n in numbers] == [_luhn_textbook(n) for n in numbers]
    assert luhn_ok("9407127647087") and not luhn_ok("8001015009088")


def test_copy_line_checked_once_escapes_exactly_as_every_value_escaped():
    pieces = ["a", "\\", "\t", "\n", "\r", "\\N", "N", "é", "x y", '{"a": "\\u00e9"}']
    rng = random.Random(11)
    for _ in range(20_000):
        values = tuple(
            rng.choice([None, True, False, 0, 12, "".join(rng.choices(pieces, k=rng.randrange(4)))])
            for _ in range(rng.randrange(1, 7))
        )
        assert _copy_text(values) == _copy_textbook(values), values


def test_cached_dates_still_name_the_field_of_each_fault():
    assert parse_date("04/03/2019", field="DOB") == parse_date("04/03/2019", field="JoinDate")
    for field in ("DOB", "JoinDate", "DOB"):
        with pytest.raises(FieldFault, match=f"^{field}: impossible date"):
            parse_date("31/02/2019", field=field)
