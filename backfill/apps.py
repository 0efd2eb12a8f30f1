from django.apps import AppConfig


class BackfillConfig(AppConfig):
    """MCA v1 import commands, per-region transforms, runs and reconciliation."""

    name = "backfill"
    verbose_name = "Backfill"
    default_auto_field = "django.db.models.BigAutoField"
