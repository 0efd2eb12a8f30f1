"""``replay_events``: put FAILED sync-log rows back in the pipeline.

    manage.py replay_events --tenant SLUG [--type TYPE] [--source SOURCE] [--since ISO]
                            [--id EVENT_ID ...] [--dry-run]

Each replayed row gets fresh attempts and is queued again; rows already processed are never
touched, so running the command twice is harmless.
"""

from __future__ import annotations

from datetime import datetime

from django.core.management.base import BaseCommand, CommandError, CommandParser

from crm.models import Tenant
from customers.ingest import events_replay
from customers.models import SyncLogEntry, SyncStatus


class Command(BaseCommand):
    help = "Replay FAILED events of a tenant (optionally by type, source, time or event id)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--type", help="only events of this type")
        parser.add_argument("--source", help="only events from this service (scl, teetime...)")
        parser.add_argument("--since", help="only events received at or after (ISO 8601)")
        parser.add_argument("--id", action="append", dest="event_ids", help="an event id")
        parser.add_argument("--dry-run", action="store_true", help="count, change nothing")

    def handle(self, *args: object, **options: object) -> None:
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant with slug {options['tenant']!r}.")
        rows = SyncLogEntry.objects.for_tenant(tenant).filter(status=SyncStatus.FAILED)
        if options["type"]:
            rows = rows.filter(type=options["type"])
        if options["source"]:
            rows = rows.filter(source=options["source"])
        if options["since"]:
            try:
                since = datetime.fromisoformat(str(options["since"]))
            except ValueError as exc:
                raise CommandError("--since must be an ISO 8601 date or date-time.") from exc
            rows = rows.filter(created_at__gte=since)
        if options["event_ids"]:
            rows = rows.filter(event_id__in=options["event_ids"])
        if options["dry_run"]:
            self.stdout.write(f"{rows.count()} failed events would be replayed.")
            return
        replayed = events_replay(tenant=tenant, queryset=rows)
        self.stdout.write(f"Replayed {replayed} failed events of {tenant.slug}.")
