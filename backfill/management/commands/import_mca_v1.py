"""``import_mca_v1``: import an MCA v1 export (folder or .zip) into a tenant.

    manage.py import_mca_v1 PATH --tenant SLUG --region ZA|UK [--dry-run]
        [--club-map CODE=CLUB ...] [--report FILE] [--rejects DIR] [--exported-at ISO]

Unknown club codes stop the run before anything is written, listed in the error. Running
the same command again resumes an unfinished run, or changes nothing when it completed.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from backfill.mca import DIALECTS, FILE_KINDS, Export, ExportError, write_rows
from backfill.reports import rejects_rows, report_write
from backfill.runs import run_import
from crm.audit import AuditAction, audit_record, cli_actor
from crm.models import Tenant

logger = logging.getLogger("backfill")


class Progress:
    """A tqdm bar per phase on a terminal; plain log lines otherwise."""

    def __init__(self, stream) -> None:
        self.tty = stream.isatty()
        self.bar: tqdm | None = None
        self.phase = ""

    def __call__(self, phase: str, done: int, total: int | None) -> None:
        if not self.tty:
            logger.info("import: %s %s%s", phase, done, f"/{total}" if total else "")
            return
        if phase != self.phase:
            self.close()
            self.phase = phase
            self.bar = tqdm(desc=phase, unit="row", file=sys.stderr)
        assert self.bar is not None
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class Command(BaseCommand):
    help = "Import an MCA v1 export (ZA or UK) into a tenant; see docs/backfill.md."

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", help="export folder or .zip")
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--region", required=True, choices=sorted(DIALECTS))
        parser.add_argument("--dry-run", action="store_true", help="report only; load nothing")
        parser.add_argument(
            "--club-map", nargs="*", default=[], metavar="CODE=CLUB",
            help="map a ClubCode to a club (its id or name)",
        )  # fmt: skip
        parser.add_argument("--report", help="write the JSON report to this file")
        parser.add_argument("--rejects", help="write <file>.rejects.csv files to this folder")
        parser.add_argument(
            "--exported-at", help="when MCA v1 wrote the export (ISO 8601; default: file time)"
        )

    def handle(self, *args, **options) -> None:
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant with slug {options['tenant']!r}.")
        club_map = {}
        for item in options["club_map"]:
            code, sep, club = item.partition("=")
            if not sep or not code.strip() or not club.strip():
                raise CommandError(f"--club-map expects CODE=CLUB, got {item!r}.")
            club_map[code.strip().upper()] = club.strip()
        exported_at = None
        if options["exported_at"]:
            try:
                exported_at = datetime.fromisoformat(options["exported_at"])
            except ValueError as exc:
                raise CommandError(f"--exported-at: {exc}") from exc
            if exported_at.tzinfo is None:
                raise CommandError("--exported-at needs a time zone offset.")
        try:
            export = Export(options["path"])
        except ExportError as exc:
            raise CommandError(str(exc)) from exc
        progress = Progress(sys.stderr)
        try:
            run = run_import(
                tenant=tenant, export=export, region=options["region"],
                dry_run=options["dry_run"], club_map=club_map, exported_at=exported_at,
                requested_by="manage.py import_mca_v1", progress=progress,
            )  # fmt: skip
        except (ValidationError, ExportError) as exc:
            messages = exc.messages if isinstance(exc, ValidationError) else [str(exc)]
            raise CommandError("; ".join(messages)) from exc
        finally:
            progress.close()
            export.close()
        audit_record(
            tenant=tenant,
            actor=cli_actor(),
            action=AuditAction.IMPORT_STARTED,
            object_type="backfill.ImportRun",
            object_id=run.pk,
            detail={"region": run.region, "source": run.source, "dry_run": run.dry_run,
                    "status": run.status, "via": "manage.py import_mca_v1"},
        )  # fmt: skip
        if options["report"]:
            with open(options["report"], "w", encoding="utf-8") as handle:
                report_write(run=run, handle=handle)
        if options["rejects"]:
            folder = Path(options["rejects"])
            folder.mkdir(parents=True, exist_ok=True)
            for kind in FILE_KINDS:
                if kind in run.files:
                    with open(folder / f"{kind}.rejects.csv", "wb") as handle:
                        write_rows(handle, DIALECTS[run.region], rejects_rows(run=run, kind=kind))
        counters = run.counters
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(counters["member_outcomes"].items()))
        money = counters["money"]
        self.stdout.write(
            f"{'Dry run' if run.dry_run else 'Import'} {run.pk} {run.status}: members {outcomes}; "
            + "; ".join(
                f"{kind} {c['rows']} in = {c['loaded']} loaded + {c['rejected']} rejected"
                for kind, c in counters["files"].items()
            )
            + f"; money in {money['in_minor'] / 100:.2f} = {money['loaded_minor'] / 100:.2f} "
            f"loaded + {money['rejected_minor'] / 100:.2f} rejected {counters['currency']}; "
            f"reconciled: {'yes' if counters['reconciled'] else 'NO'}."
        )
