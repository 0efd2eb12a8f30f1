from django.apps import AppConfig


class CustomersConfig(AppConfig):
    """Profiles, identity aliases, identity resolution, merge, activities (timeline), notes, sync
    log and the event ingestion pipeline.
    """

    name = "customers"
    verbose_name = "Customers"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imports wait for ready(): models must be loaded first (Django's rule for app code).
        from crm.registry import (
            register_merge_hook,
            register_metrics_source,
            register_retention_step,
        )

        from . import tasks  # noqa: F401  (registers the tasks services queue by name)
        from .export import register_customer_export_sections
        from .metrics import ingest_metrics
        from .retention import profile_updates_retention, sync_log_retention
        from .rules import register_customer_fields
        from .timeline import move_activities, move_consent_records, move_notes

        register_customer_fields()
        register_customer_export_sections()
        register_metrics_source("events", ingest_metrics)
        register_retention_step("sync_log_payloads", sync_log_retention)
        register_retention_step("profile_updates", profile_updates_retention)

        register_merge_hook("activities", move_activities)
        register_merge_hook("notes", move_notes)
        register_merge_hook("consent_records", move_consent_records)
