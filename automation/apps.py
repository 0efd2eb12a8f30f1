from django.apps import AppConfig


class AutomationConfig(AppConfig):
    """See the package docstring: not built yet, with its module plan."""

    name = "automation"
    verbose_name = "Automation"
    default_auto_field = "django.db.models.BigAutoField"
