from django.apps import AppConfig


class AutomationConfig(AppConfig):
    """Journeys: multi-step automation (see the package docstring for the modules)."""

    name = "automation"
    verbose_name = "Automation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imports wait for ready(): models must be loaded first (Django's rule for app code).
        from crm.registry import (
            register_customer_panel,
            register_erase_hook,
            register_event_subscriber,
            register_export_section,
            register_merge_hook,
            register_metrics_source,
        )

        from . import tasks  # noqa: F401  (registers the tasks services queue by name)
        from .analytics import customer_journeys_panel
        from .engine import (
            erase_enrollments,
            export_enrollment_steps,
            export_enrollments,
            move_enrollments,
        )
        from .metrics import journey_metrics
        from .triggers import journeys_on_events

        register_event_subscriber("journeys", journeys_on_events)
        register_merge_hook("journey_enrollments", move_enrollments)
        register_erase_hook("journeys", erase_enrollments)
        register_customer_panel("journeys", customer_journeys_panel)
        register_metrics_source("journeys", journey_metrics)
        register_export_section(
            "journey_enrollments",
            title="Journeys",
            rows=export_enrollments,
            covers=["automation.Enrollment"],
        )
        register_export_section(
            "journey_steps",
            title="Journey steps you went through",
            rows=export_enrollment_steps,
            covers=["automation.EnrollmentStep"],
        )
