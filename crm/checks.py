"""System checks that keep tenancy hard to forget."""

from __future__ import annotations

from django.apps import apps
from django.core import checks
from django.core.exceptions import FieldDoesNotExist

from .tenancy import TenantQuerySet


@checks.register(checks.Tags.models)
def tenant_models_use_scoped_manager(app_configs=None, **kwargs):
    """Every model with a ``tenant`` foreign key is served by a ``TenantQuerySet`` manager."""
    errors = []
    for model in apps.get_models():
        if model._meta.app_label == "crm" and model.__name__ == "Tenant":
            continue
        try:
            field = model._meta.get_field("tenant")
        except FieldDoesNotExist:
            continue
        if getattr(field.remote_field, "model", None) is None:
            continue
        if not isinstance(model._default_manager.all(), TenantQuerySet):
            errors.append(
                checks.Error(
                    f"{model._meta.label} has a tenant but its default manager is not a "
                    "TenantManager, so queries could forget the tenant.",
                    id="crm.E001",
                )
            )
    return errors
