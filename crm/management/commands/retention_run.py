"""``manage.py retention_run [--step NAME]``: the nightly retention job, now, in this process
(for the maintenance role that may delete audit rows, or to catch up after an outage)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from crm.registry import retention_steps
from crm.retention import retention_run


class Command(BaseCommand):
    help = "Scrub, roll up and delete what is past its retention period (docs/privacy.md)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--step", choices=sorted(retention_steps()), default="")
        parser.add_argument(
            "--budget", type=float, default=3600.0, help="seconds to spend at most (default 3600)"
        )

    def handle(self, *args, **options) -> None:
        results = retention_run(only=options["step"], budget_seconds=options["budget"])
        for name, (handled, finished) in results.items():
            state = "done" if finished else "NOT finished (run again)"
            self.stdout.write(f"{name}: {handled} rows, {state}")
