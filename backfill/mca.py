"""Streaming readers of the MCA v1 export format (shared/design/mca-v1-format.md).

An export is a folder or a ``.zip`` holding ``members.csv`` (required), ``rounds.csv`` and
``transactions.csv``; names match case-insensitively. Each region spells the files its own
way (ZA: Windows-1252, ``;``; UK: UTF-8 with a BOM, ``,``). Rows are read one at a time from
a decoded text stream, so memory stays flat whatever the size of the file: nothing here
ever holds more than one row.
"""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO

MEMBERS, ROUNDS, TRANSACTIONS = "members", "rounds", "transactions"
FILE_KINDS: tuple[str, ...] = (MEMBERS, ROUNDS, TRANSACTIONS)


@dataclass(frozen=True)
class Dialect:
    """How one region's install wrote its files."""

    region: str
    encoding: str
    delimiter: str
    national_id: str  # the column holding the national or handicap-system number
    postal: str  # the postal-code column
    currency: str
    timezone: str
    phone_region: str


DIALECTS: dict[str, Dialect] = {
    "ZA": Dialect(
        "ZA", "cp1252", ";", "IDNumber", "PostalCode", "ZAR", "Africa/Johannesburg", "ZA"
    ),
    # utf-8-sig strips the byte-order mark from the first header name.
    "UK": Dialect("UK", "utf-8-sig", ",", "CDHNumber", "Postcode", "GBP", "Europe/London", "GB"),
}

# The columns of each file, in order; ``{id}`` and ``{postal}`` are the region's names.
COLUMNS: dict[str, tuple[str, ...]] = {
    MEMBERS: tuple(
        [
            "ClubCode",
            "MemberNo",
            "Title",
            "FirstName",
            "Surname",
            "KnownAs",
            "Gender",
            "DOB",
            "{id}",
            "Email",
            "Mobile",
            "HomePhone",
            "Address1",
            "Address2",
            "Town",
            "{postal}",
            "Category",
            "Status",
            "JoinDate",
            "LeftDate",
            "HandicapIndex",
            "EmailOptIn",
            "SMSOptIn",
            "LastVisit",
        ]
    ),
    ROUNDS: tuple(
        [
            "ClubCode",
            "MemberNo",
            "PlayedOn",
            "Course",
            "Holes",
            "Gross",
            "Stableford",
            "Competition",
        ]
    ),
    TRANSACTIONS: tuple(["ClubCode", "MemberNo", "TxnDate", "TxnType", "Amount", "Reference"]),
}


@lru_cache(maxsize=16)
def columns(kind: str, dialect: Dialect) -> tuple[str, ...]:
    return tuple(
        c.replace("{id}", dialect.national_id).replace("{postal}", dialect.postal)
        for c in COLUMNS[kind]
    )


class ExportError(ValueError):
    """The export cannot be read at all (missing members.csv, wrong header)."""


@dataclass(frozen=True)
class Row:
    """One data row: its 1-based line in the file (the header is line 1), the raw fields as
    read, and the fields by column name when the count matches the header (else ``None``)."""

    line: int
    raw: list[str]
    fields: dict[str, str] | None


class Export:
    """The files of one export, opened lazily as binary streams."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._zip: zipfile.ZipFile | None = None
        self.names: dict[str, str] = {}
        if self.path.is_dir():
            listing = [p.name for p in self.path.iterdir() if p.is_file()]
        elif zipfile.is_zipfile(self.path):
            self._zip = zipfile.ZipFile(self.path)
            listing = [n for n in self._zip.namelist() if not n.endswith("/")]
        else:
            raise ExportError(f"{path} is neither a folder nor a .zip.")
        for name in listing:
            stem = Path(name).name.lower()
            for kind in FILE_KINDS:
                if stem == f"{kind}.csv":
                    self.names[kind] = name
        if MEMBERS not in self.names:
            raise ExportError("The export has no members.csv.")

    @contextmanager
    def open(self, kind: str) -> Iterator[IO[bytes]]:
        name = self.names[kind]
        if self._zip is not None:
            with self._zip.open(name) as handle:
                yield handle
        else:
            with open(self.path / name, "rb") as handle:
                yield handle

    def checksum(self, kind: str) -> str:
        """SHA-256 of the file, read in 1 MiB blocks."""
        digest = hashlib.sha256()
        with self.open(kind) as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
        return digest.hexdigest()

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


def read_raw(export: Export, kind: str, dialect: Dialect) -> Iterator[tuple[int, list[str]]]:
    """The data rows of one file as ``(line, fields as read)``, streamed. The header must be
    the format's."""
    with export.open(kind) as handle:
        # newline="" lets csv see CRLF and LF itself and keeps quoted line breaks.
        text = io.TextIOWrapper(handle, encoding=dialect.encoding, newline="")
        reader = csv.reader(text, delimiter=dialect.delimiter, quotechar='"')
        header = [h.strip() for h in next(reader, [])]
        expected = list(columns(kind, dialect))
        if header != expected:
            raise ExportError(f"{kind}.csv: header {header} is not the format's {expected}.")
        for raw in reader:
            if not raw or raw == [""]:
                continue  # blank line
            yield reader.line_num, raw


def read_rows(export: Export, kind: str, dialect: Dialect) -> Iterator[Row]:
    """The data rows of one file, streamed, with their fields by column name when the count
    matches the header."""
    expected = columns(kind, dialect)
    for line, raw in read_raw(export, kind, dialect):
        fields = dict(zip(expected, raw, strict=True)) if len(raw) == len(expected) else None
        yield Row(line=line, raw=raw, fields=fields)


def write_rows(handle: IO[bytes], dialect: Dialect, rows: Iterator[list[str]]) -> None:
    """Write rows in the region's own spelling (encoding, delimiter, CRLF): the reject file."""
    encoding = "utf-8-sig" if dialect.encoding == "utf-8-sig" else dialect.encoding
    text = io.TextIOWrapper(handle, encoding=encoding, newline="", errors="replace")
    writer = csv.writer(text, delimiter=dialect.delimiter, lineterminator="\r\n")
    for row in rows:
        writer.writerow(row)
    text.flush()
    text.detach()
