from django.apps import AppConfig


class ScoringConfig(AppConfig):
    """See the package docstring: not built yet, with its module plan."""

    name = "scoring"
    verbose_name = "Scoring"
    default_auto_field = "django.db.models.BigAutoField"
