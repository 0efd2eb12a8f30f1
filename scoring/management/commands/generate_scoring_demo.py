from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from crm.models import Tenant
from scoring.demo import demo_history_generate


class Command(BaseCommand):
    help = (
        "SYNTHETIC demo data for scoring: round histories and lapses of a tenant's members, so "
        "the churn backtest has something to find. Run after generate_demo_data."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--members", type=int, default=5000)
        parser.add_argument("--churn-percent", type=int, default=15)
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, **options) -> None:
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant with slug {options['tenant']!r}.")
        if not 0 <= options["churn_percent"] <= 100 or options["members"] < 1:
            raise CommandError("--members must be at least 1 and --churn-percent 0-100.")
        rounds, lapses = demo_history_generate(
            tenant=tenant,
            members=options["members"],
            churn_percent=options["churn_percent"],
            seed=options["seed"],
        )
        self.stdout.write(f"{tenant.slug}: {rounds} synthetic rounds, {lapses} members lapsed")
