from __future__ import annotations

from datetime import datetime, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from crm.models import Tenant
from scoring.backtest import backtest_run


class Command(BaseCommand):
    help = (
        "Churn backtest: score every member as of a past date and report how well the risk "
        "ranked those who lapsed in the following days (AUC, top-decile lift). Stored; shown "
        "in the admin under Scoring > Backtests."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("slugs", nargs="*", help="Tenant slugs (default: every active one)")
        parser.add_argument(
            "--as-of", help="ISO date-time with offset (default: horizon + 1 days ago)"
        )
        parser.add_argument("--horizon", type=int, default=90, help="days (default 90)")

    def handle(self, *args, **options) -> None:
        now = timezone.now()
        horizon = options["horizon"]
        if horizon < 1:
            raise CommandError("--horizon must be at least 1 day.")
        if options["as_of"]:
            try:
                as_of = datetime.fromisoformat(options["as_of"])
            except ValueError as exc:
                raise CommandError(
                    "--as-of: give an ISO date-time, e.g. 2026-06-01T00:00Z"
                ) from exc
            if as_of.tzinfo is None:
                raise CommandError("--as-of: give a UTC offset (e.g. Z or +02:00).")
        else:
            as_of = now - timedelta(days=horizon + 1)
        if as_of + timedelta(days=horizon) > now:
            raise CommandError(f"The {horizon} days after --as-of have not passed yet.")
        tenants = Tenant.objects.filter(is_active=True).order_by("slug")
        if options["slugs"]:
            tenants = tenants.filter(slug__in=options["slugs"])
        for tenant in tenants:
            result = backtest_run(tenant=tenant, as_of=as_of, horizon_days=horizon, now=now)
            self.stdout.write(
                f"{tenant.slug}: {result.population} members, {result.churners} lapsed; "
                f"AUC {result.auc}, top-decile lift {result.top_decile_lift}"
            )
