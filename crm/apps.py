from django.apps import AppConfig
from django.db.models.signals import post_save


class CrmConfig(AppConfig):
    """The shared kernel: tenancy, API access, event bus and rules."""

    name = "crm"
    verbose_name = "Platform"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
        from .api import schema  # noqa: F401  (registers the OpenAPI auth extensions)
        from .models import Tenant
        from .registry import register_metrics_source, register_retention_step
        from .retention import audit_retention
        from .selectors import tenant_cache_clear
        from .tasks import beat_metrics

        post_save.connect(tenant_cache_clear, sender=Tenant, dispatch_uid="tenant-cache")
        register_retention_step("audit_events", audit_retention)
        register_metrics_source("beat", beat_metrics)
