from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from crm.models import Tenant
from crm.services import api_key_create


class Command(BaseCommand):
    help = "Issue an API key for a tenant. The key is printed alone on the last line, once."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--name", required=True, help="what the key is for")

    def handle(self, *args, **options) -> None:
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant with slug {options['tenant']!r}.")
        issued = api_key_create(tenant=tenant, name=options["name"])
        self.stdout.write(
            f"Issued API key {issued.api_key.prefix} ({issued.api_key.name}) for {tenant.slug}. "
            "It is shown once; store it now:"
        )
        self.stdout.write(issued.raw_key)
