from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from crm.models import Tenant
from scoring.nightly import tenant_score


class Command(BaseCommand):
    help = (
        "Score tenants now (engagement, churn, the day's aggregates), after recounting their "
        "activity. On demand: does not count as, nor prevent, the nightly run."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("slugs", nargs="*", help="Tenant slugs (default: every active one)")

    def handle(self, *args, **options) -> None:
        tenants = Tenant.objects.filter(is_active=True).order_by("slug")
        if options["slugs"]:
            tenants = tenants.filter(slug__in=options["slugs"])
            missing = set(options["slugs"]) - {t.slug for t in tenants}
            if missing:
                raise CommandError(f"No active tenant: {', '.join(sorted(missing))}")
        for tenant in tenants:
            run = tenant_score(tenant=tenant)
            self.stdout.write(f"{tenant.slug}: {run.scored if run else 0} profiles scored")
