from django.apps import AppConfig


class AutomationConfig(AppConfig):
    """Journeys: multi-step automation (see the package docstring for the modules)."""

    name = "automation"
    verbose_name = "Automation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imports wait for ready(): models must be loaded first (Django's rule for app code).
        from . import tasks  # noqa: F401  (registers the tasks services queue by name)
