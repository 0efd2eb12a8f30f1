from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from crm.models import Tenant
from customers.demo_data import demo_activity_generate
from marketing.demo_data import demo_marketing_generate


class Command(BaseCommand):
    help = (
        "Make a demo tenant look alive: 90 days of its members' activity, merge suggestions, "
        "segments (refreshed) and a completed campaign with results. Seeded; a second run "
        "adds nothing."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--days", type=int, default=90)
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, **options) -> None:
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant with slug {options['tenant']!r}.")
        if not 1 <= options["days"] <= 365:
            raise CommandError("--days must be from 1 to 365.")
        started = time.monotonic()
        now = timezone.now()
        activity = demo_activity_generate(
            tenant=tenant, now=now, days=options["days"], seed=options["seed"]
        )
        marketing = demo_marketing_generate(tenant=tenant, now=now, seed=options["seed"])
        segments = ", ".join(f"{name}: {n}" for name, n in marketing.segments.items())
        self.stdout.write(
            f"{tenant.slug}: {activity.activities} new activities for {activity.people} people, "
            f"{activity.suggestions} new merge suggestions, segments ({segments}), campaign with "
            f"{marketing.messages} messages and {marketing.interactions} new interactions, "
            f"in {time.monotonic() - started:.1f}s."
        )
