from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from crm.models import Tenant
from customers.demo_data import demo_data_generate
from customers.models import CustomerProfile


class Command(BaseCommand):
    help = "Generate realistic ZA/UK club members for a tenant (fast, with COPY)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--customers", type=int, required=True)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--batch", type=int, default=50_000)
        parser.add_argument(
            "--if-empty", action="store_true", help="do nothing when the tenant has customers"
        )

    def handle(self, *args, **options) -> None:
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant with slug {options['tenant']!r}.")
        if options["customers"] < 1:
            raise CommandError("--customers must be at least 1.")
        if options["if_empty"] and CustomerProfile.objects.for_tenant(tenant).exists():
            self.stdout.write(f"{tenant.slug} already has customers; nothing generated.")
            return
        started = time.monotonic()
        with tqdm(total=options["customers"], unit="profile", disable=None) as bar:
            result = demo_data_generate(
                tenant=tenant,
                customers=options["customers"],
                seed=options["seed"],
                batch_size=options["batch"],
                progress=bar.update,
            )
        elapsed = time.monotonic() - started
        self.stdout.write(
            f"Generated {result.profiles} profiles and {result.aliases} aliases for "
            f"{tenant.slug} in {elapsed:.1f}s ({result.profiles / elapsed:,.0f} profiles/s)."
        )
