"""The readers and the per-region transforms, on the sample exports and by hand."""

from __future__ import annotations

import io
import tracemalloc
import zipfile
from datetime import date
from decimal import Decimal

import pytest

from backfill.mca import DIALECTS, MEMBERS, ROUNDS, Export, ExportError, read_rows, write_rows
from backfill.transforms import (
    FieldFault,
    RowRejected,
    clean_name,
    member_transform,
    parse_consent,
    parse_date,
    parse_datetime,
    parse_handicap,
    parse_money,
    parse_phone,
    parse_postal,
    parse_za_id,
    transaction_transform,
)
from tests.backfill.helpers import DATA

ZA, UK = DIALECTS["ZA"], DIALECTS["UK"]


def test_za_file_is_read_in_windows_1252_with_semicolons():
    rows = list(read_rows(Export(DATA / "za"), MEMBERS, ZA))
    assert len(rows) == 260
    andre = next(r for r in rows if r.fields and r.fields["MemberNo"] == "1118")
    assert andre.fields["FirstName"] == "André"
    short = [r for r in rows if r.fields is None]
    assert [(r.raw[0], r.raw[1]) for r in short] == [("SVG", "1059")]


def test_uk_file_bom_is_stripped_and_quoted_amounts_kept_whole():
    export = Export(DATA / "uk")
    first = next(read_rows(export, MEMBERS, UK))
    assert first.fields["ClubCode"] == "SAN"
    txns = list(read_rows(export, "transactions", UK))
    assert txns[1].fields["Amount"] == "1,309.30"


def test_zip_export_with_uppercase_names(tmp_path):
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(DATA / "uk" / "members.csv", "export/MEMBERS.CSV")
    export = Export(archive)
    assert sum(1 for _ in read_rows(export, MEMBERS, UK)) == 260
    assert ROUNDS not in export.names


def test_export_without_members_is_refused(tmp_path):
    (tmp_path / "rounds.csv").write_text("x")
    with pytest.raises(ExportError, match=r"members\.csv"):
        Export(tmp_path)


def test_reading_is_streamed_memory_stays_flat(tmp_path):
    header = (DATA / "uk" / "rounds.csv").read_bytes().splitlines(keepends=True)
    body = b"".join(header[1:])

    def peak(copies: int) -> int:
        path = tmp_path / f"e{copies}"
        path.mkdir()
        (path / "members.csv").write_bytes((DATA / "uk" / "members.csv").read_bytes())
        (path / "rounds.csv").write_bytes(header[0] + body * copies)
        tracemalloc.start()
        count = sum(1 for _ in read_rows(Export(path), ROUNDS, UK))
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert count == 959 * copies
        return top

    small, large = peak(2), peak(40)  # 20x the rows
    assert large < small * 2


def test_reject_file_is_written_in_the_original_encoding():
    buffer = io.BytesIO()
    write_rows(buffer, ZA, iter([["RGC", "André", "reason; with delimiter"]]))
    assert buffer.getvalue() == 'RGC;Andr\xe9;"reason; with delimiter"\r\n'.encode("cp1252")


def test_dates():
    assert parse_date("04/03/2019") == date(2019, 3, 4)
    assert parse_date("") is None and parse_date("00/00/0000") is None
    with pytest.raises(FieldFault, match="impossible date"):
        parse_date("31/02/2019")
    with pytest.raises(FieldFault, match="wrong date format"):
        parse_date("2019-03-04")
    at = parse_datetime("28/07/2024 13:18", tz="Africa/Johannesburg")
    assert at.utcoffset().total_seconds() == 7200 and at.hour == 13
    summer = parse_datetime("01/07/2024 10:00", tz="Europe/London")
    assert summer.utcoffset().total_seconds() == 3600


def test_money_in_minor_units_per_region():
    assert parse_money("1 234,50", ZA) == 123450
    assert parse_money("-120,00", ZA) == -12000
    assert parse_money("£1,234.50", UK) == 123450
    assert parse_money("63.60", UK) == 6360
    with pytest.raises(FieldFault):
        parse_money("abc", UK)


def test_refund_subtracts_whatever_the_sign():
    row = {"ClubCode": "SAN", "MemberNo": "1", "TxnDate": "01/01/2024", "TxnType": "REFUND",
           "Amount": "12.00", "Reference": "R1"}  # fmt: skip
    assert transaction_transform(row, UK)["amount_minor"] == -1200


def test_handicap_plus_is_negative():
    assert parse_handicap("12,4", ZA) == Decimal("12.4")
    assert parse_handicap("+2.1", UK) == Decimal("-2.1")


def test_phones_e164_by_region():
    assert parse_phone("082 123 4567", ZA, field="Mobile") == "+27821234567"
    assert parse_phone("27821234567", ZA, field="Mobile") == "+27821234567"
    assert parse_phone("(011) 555-1234", ZA, field="HomePhone") == "+27115551234"
    assert parse_phone("07700 900123", UK, field="Mobile") == "+447700900123"
    assert parse_phone("447700900123", UK, field="Mobile") == "+447700900123"
    with pytest.raises(FieldFault, match="phone too short"):
        parse_phone("082 12", ZA, field="Mobile")


def test_south_african_id_luhn_date_and_gender():
    assert parse_za_id("9407127647087", dob=date(1994, 7, 12), gender="M") == "9407127647087"
    with pytest.raises(FieldFault, match="check digit"):
        parse_za_id("8001015009088", dob=None, gender="")
    with pytest.raises(FieldFault, match="date of birth"):
        parse_za_id("9407127647087", dob=date(1994, 7, 13), gender="M")
    with pytest.raises(FieldFault, match="gender"):
        parse_za_id("9407127647087", dob=None, gender="F")


def test_postcodes():
    assert parse_postal("ka106ep", UK) == "KA10 6EP"
    assert parse_postal(" KA10  6EP ", UK) == "KA10 6EP"
    assert parse_postal("0157", ZA) == "0157"
    with pytest.raises(FieldFault):
        parse_postal("ABC", UK)


def test_consent_blank_is_never_asked_not_consent():
    assert parse_consent("Y") is True
    assert parse_consent("N") is False
    assert parse_consent("") is None


def test_names_are_cleaned():
    assert clean_name("NOMSA") == "Nomsa"
    assert clean_name("GugU") == "Gugu"
    assert clean_name("Moodley ") == "Moodley"
    assert clean_name("MacDonald") == "MacDonald"
    assert clean_name("Le Roux") == "Le Roux"
    assert clean_name("van der Merwe") == "van der Merwe"


def _member(**overrides):
    row = dict.fromkeys(next(read_rows(Export(DATA / "za"), MEMBERS, ZA)).fields.keys(), "")
    row.update(ClubCode="RGC", MemberNo="7", FirstName="A", Surname="B", Status="A")
    row.update(overrides)
    return row


def test_member_faults_drop_the_field_and_flag_the_row():
    values, flags = member_transform(
        _member(DOB="31/02/2019", Email="jo smith@@x"), ZA, as_of=date(2024, 8, 1)
    )
    assert values["dob"] is None and values["email"] is None
    assert flags == ["DOB: impossible date '31/02/2019'", "Email: malformed email 'jo smith@@x'"]


def test_a_date_of_birth_after_the_export_date_is_in_the_future_whatever_the_day_of_import():
    """The export is the clock: a birth the day after the export is flagged, though that
    day has long passed; the export's own day is kept."""
    as_of = date(2024, 8, 1)
    values, flags = member_transform(_member(DOB="02/08/2024"), ZA, as_of=as_of)
    assert values["dob"] is None
    assert flags == ["DOB: in the future 2024-08-02"]
    values, flags = member_transform(_member(DOB="01/08/2024"), ZA, as_of=as_of)
    assert (values["dob"], flags) == ("2024-08-01", [])


def test_member_without_key_or_status_is_rejected():
    with pytest.raises(RowRejected, match="MemberNo"):
        member_transform(_member(MemberNo=" "), ZA, as_of=date(2024, 8, 1))
    with pytest.raises(RowRejected, match="status"):
        member_transform(_member(Status="X"), ZA, as_of=date(2024, 8, 1))
