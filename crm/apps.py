from django.apps import AppConfig


class CrmConfig(AppConfig):
    """The shared kernel: tenancy, API access, event bus and rules."""

    name = "crm"
    verbose_name = "Platform"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
        from .api import schema  # noqa: F401  (registers the OpenAPI auth extensions)
