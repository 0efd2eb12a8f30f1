from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from crm.audit import AuditAction, audit_record, cli_actor
from crm.models import Tenant
from crm.scopes import ALL_SCOPES, DEFAULT_API_KEY_SCOPES
from crm.services import api_key_create


class Command(BaseCommand):
    help = "Issue an API key for a tenant. The key is printed alone on the last line, once."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--name", required=True, help="what the key is for")
        parser.add_argument(
            "--scope",
            action="append",
            dest="scopes",
            choices=ALL_SCOPES,
            help="a scope the key gets (repeat for several; docs/api.md). "
            f"Default: {' '.join(DEFAULT_API_KEY_SCOPES)}",
        )

    def handle(self, *args, **options) -> None:
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant with slug {options['tenant']!r}.")
        with transaction.atomic():
            issued = api_key_create(tenant=tenant, name=options["name"], scopes=options["scopes"])
            audit_record(
                tenant=tenant,
                actor=cli_actor(),
                action=AuditAction.API_KEY_ISSUED,
                object_type="crm.ApiKey",
                object_id=issued.api_key.pk,
                detail={
                    "name": issued.api_key.name,
                    "prefix": issued.api_key.prefix,
                    "scopes": list(issued.api_key.scopes),
                    "via": "manage.py create_api_key",
                },
            )
        self.stdout.write(
            f"Issued API key {issued.api_key.prefix} ({issued.api_key.name}) for {tenant.slug} "
            f"with scopes {' '.join(issued.api_key.scopes)}. It is shown once; store it now:"
        )
        self.stdout.write(issued.raw_key)
