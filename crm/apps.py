from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class CrmConfig(AppConfig):
    """The shared kernel: tenancy, API access, event bus and rules."""

    name = "crm"
    verbose_name = "Platform"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
        from .api import schema  # noqa: F401  (registers the OpenAPI auth extensions)
        from .dbconn import connect as connect_connection_reuse
        from .models import ApiKey, Tenant
        from .registry import register_metrics_source, register_retention_step
        from .retention import audit_retention
        from .selectors import tenant_cache_clear
        from .tasks import beat_metrics

        post_save.connect(tenant_cache_clear, sender=Tenant, dispatch_uid="tenant-cache")
        # Verified API keys are cached per process under a generation these bump.
        post_save.connect(_credentials_changed, sender=Tenant, dispatch_uid="credentials-tenant")
        post_save.connect(_credentials_changed, sender=ApiKey, dispatch_uid="credentials-key")
        post_delete.connect(_credentials_changed, sender=ApiKey, dispatch_uid="credentials-key-del")
        connect_connection_reuse()  # no health-check round trip on a connection busy a moment ago
        register_retention_step("audit_events", audit_retention)
        register_metrics_source("beat", beat_metrics)


def _credentials_changed(**kwargs) -> None:
    from .services import credentials_changed

    credentials_changed()
