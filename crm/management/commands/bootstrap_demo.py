from __future__ import annotations

import secrets
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from crm.models import Club, Region, StaffRole
from crm.services import club_create, staff_user_create, tenant_create

DEMO_USERNAME = "demo"


class Command(BaseCommand):
    help = (
        "Create the demo tenant, a club and a staff login (idempotent). The password is kept "
        "in the data folder so a second run prints the same login."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--data-dir", default=str(settings.BASE_DIR / "var"))

    def handle(self, *args, **options) -> None:
        tenant, _ = tenant_create(slug="demo", name="Demo Golf Club", region=Region.ZA)
        if not Club.objects.for_tenant(tenant).exists():
            club_create(tenant=tenant, name="Demo Country Club")
        password_file = Path(options["data_dir"]) / "demo-login.txt"
        if password_file.exists():
            password = password_file.read_text().strip()
        else:
            password = secrets.token_urlsafe(12)
            password_file.parent.mkdir(parents=True, exist_ok=True)
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
        staff_user_create(
            tenant=tenant, username=DEMO_USERNAME, password=password, role=StaffRole.ADMIN
        )
        self.stdout.write(
            f"Staff login: http://127.0.0.1:8000/admin/  user={DEMO_USERNAME}  password={password}"
        )
