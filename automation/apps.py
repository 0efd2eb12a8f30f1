from django.apps import AppConfig


class AutomationConfig(AppConfig):
    """Journeys, steps, enrollments, the journey engine, triggers and the wait sweep."""

    name = "automation"
    verbose_name = "Automation"
    default_auto_field = "django.db.models.BigAutoField"
