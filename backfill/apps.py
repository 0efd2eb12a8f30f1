from django.apps import AppConfig


class BackfillConfig(AppConfig):
    """See the package docstring: not built yet, with its module plan."""

    name = "backfill"
    verbose_name = "Backfill"
    default_auto_field = "django.db.models.BigAutoField"
