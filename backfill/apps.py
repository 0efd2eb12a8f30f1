from django.apps import AppConfig


class BackfillConfig(AppConfig):
    """MCA v1 imports (ZA, UK): runs, staging, identity, load, duplicates, reconciliation."""

    name = "backfill"
    verbose_name = "Backfill"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imports wait for ready(): models must be loaded first (Django's rule for app code).
        from crm.registry import register_export_section, register_metrics_source

        from . import tasks  # noqa: F401  (registers the tasks the admin queues by name)
        from .metrics import import_metrics
        from .reports import export_import_rows

        register_export_section(
            "import_records",
            title="Records imported from the previous system",
            rows=export_import_rows,
            covers=["backfill.ImportRow"],
        )
        register_metrics_source("imports", import_metrics)
