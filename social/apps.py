from django.apps import AppConfig


class SocialConfig(AppConfig):
    """See the package docstring: not built yet, with its module plan."""

    name = "social"
    verbose_name = "Social"
    default_auto_field = "django.db.models.BigAutoField"
