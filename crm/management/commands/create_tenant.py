from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from crm.models import Region
from crm.services import tenant_create


class Command(BaseCommand):
    help = "Create a tenant (idempotent: an existing slug is left as it is and reported)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--region", required=True, choices=list(Region.values))
        parser.add_argument("--timezone", help="IANA zone; default by region")
        parser.add_argument("--phone-region", help="e.g. ZA, GB; default by region")
        parser.add_argument("--currency", help="ISO 4217; default by region")

    def handle(self, *args, **options) -> None:
        try:
            tenant, created = tenant_create(
                slug=options["slug"],
                name=options["name"],
                region=options["region"],
                timezone_name=options["timezone"],
                phone_region=options["phone_region"],
                currency=options["currency"],
            )
        except ValidationError as exc:
            raise CommandError(
                "; ".join(f"{k}: {', '.join(v)}" for k, v in exc.message_dict.items())
            ) from exc
        verb = "Created" if created else "Exists"
        self.stdout.write(
            f"{verb}: tenant {tenant.slug} ({tenant.name}, {tenant.region}) id={tenant.pk}"
        )
