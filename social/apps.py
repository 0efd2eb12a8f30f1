from django.apps import AppConfig


class SocialConfig(AppConfig):
    """Social connections (OAuth), posts, per-platform publishers and event promotion."""

    name = "social"
    verbose_name = "Social"
    default_auto_field = "django.db.models.BigAutoField"
