"""The admin mixin that scopes every staff screen to the user's tenants.

Staff see rows of the tenants they have a membership in; superusers see everything. Writes
need one of ``write_roles`` in the row's tenant. Foreign-key choices are limited the same
way, so a staff user cannot point a row at another tenant's club, and so are the choices of
list filters on a tenant or a tenant-owned row (a filter must not list other tenants' names).

A staff user who can write to exactly one tenant never picks it: the tenant field is a hidden
input holding that tenant (an empty value means that tenant too). A forged value naming
another tenant still fails validation, because the choices stay limited to the one tenant.
Staff of several tenants pick among theirs; superusers pick from all.
"""

from __future__ import annotations

from django import forms
from django.contrib.admin import RelatedFieldListFilter
from django.core.exceptions import FieldDoesNotExist, PermissionDenied
from django.db.models import ForeignKey

from .models import StaffRole
from .selectors import staff_tenant_ids, staff_tenant_ids_with_role
from .tenancy import TenantOwnedModel


def _is_tenant_scoped(model) -> bool:
    return model._meta.label == "crm.Tenant" or issubclass(model, TenantOwnedModel)


class TenantScopedRelatedFilter(RelatedFieldListFilter):
    """A list filter on a tenant or a tenant-owned row whose choices are the staff user's
    tenants' rows only (superusers: all)."""

    def field_choices(self, field, request, model_admin):
        if request.user.is_superuser:
            return super().field_choices(field, request, model_admin)
        related = field.remote_field.model
        tenant_ids = staff_tenant_ids(user=request.user)
        if related._meta.label == "crm.Tenant":
            rows = related.objects.filter(pk__in=tenant_ids)
        else:
            rows = related.objects.for_tenants(tenant_ids)
        ordering = self.field_admin_ordering(field, request, model_admin)
        if ordering:
            rows = rows.order_by(*ordering)
        return [(row.pk, str(row)) for row in rows]


class OneTenantChoiceField(forms.ModelChoiceField):
    """The tenant of a staff user with one writable tenant: hidden, and that tenant when the
    browser sends nothing (a form posted without the hidden input)."""

    widget = forms.HiddenInput

    def __init__(self, *args, only_tenant=None, **kwargs) -> None:
        self.only_tenant = only_tenant
        super().__init__(*args, **kwargs)

    def clean(self, value):
        if value in self.empty_values and self.only_tenant is not None:
            return self.only_tenant
        return super().clean(value)


class TenantScopedAdminMixin:
    #: Lookup from the model to its tenant's id ("pk" on the Tenant model itself).
    tenant_lookup = "tenant_id"
    #: Roles allowed to add, change and delete rows of this screen.
    write_roles: tuple[str, ...] = (StaffRole.ADMIN,)
    show_full_result_count = False

    # --- scope -------------------------------------------------------------------------------
    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(**{f"{self.tenant_lookup}__in": staff_tenant_ids(user=request.user)})

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if not request.user.is_superuser:
            related = db_field.remote_field.model
            writable = staff_tenant_ids_with_role(user=request.user, roles=self.write_roles)
            if related._meta.label == "crm.Tenant":
                kwargs["queryset"] = related.objects.filter(pk__in=writable)
                if len(writable) == 1:
                    only = kwargs["queryset"].first()
                    kwargs.update(
                        form_class=OneTenantChoiceField,
                        widget=forms.HiddenInput,
                        only_tenant=only,
                        initial=only.pk if only else None,
                    )
            elif _is_tenant_scoped(related):
                kwargs["queryset"] = related.objects.for_tenants(writable)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_list_filter(self, request):
        """Plain list filters on a tenant or a tenant-owned foreign key get scoped choices."""
        scoped = []
        for entry in super().get_list_filter(request):  # type: ignore[misc]
            if isinstance(entry, str) and "__" not in entry:
                try:
                    field = self.model._meta.get_field(entry)  # type: ignore[attr-defined]
                except FieldDoesNotExist:
                    field = None
                if isinstance(field, ForeignKey) and _is_tenant_scoped(field.remote_field.model):
                    entry = (entry, TenantScopedRelatedFilter)
            scoped.append(entry)
        return scoped

    # --- permissions (roles, not Django model permissions) -----------------------------------
    def _object_tenant_id(self, obj):
        return obj.pk if self.tenant_lookup == "pk" else getattr(obj, self.tenant_lookup)

    def _can_write(self, request, obj=None) -> bool:
        if request.user.is_superuser:
            return True
        writable = staff_tenant_ids_with_role(user=request.user, roles=self.write_roles)
        if obj is None:
            return bool(writable)
        return self._object_tenant_id(obj) in writable

    def has_module_permission(self, request) -> bool:
        return request.user.is_active and (
            request.user.is_superuser or bool(staff_tenant_ids(user=request.user))
        )

    def has_view_permission(self, request, obj=None) -> bool:
        if request.user.is_superuser:
            return True
        tenant_ids = staff_tenant_ids(user=request.user)
        if obj is None:
            return bool(tenant_ids)
        return self._object_tenant_id(obj) in tenant_ids

    def has_add_permission(self, request, *args) -> bool:
        return self._can_write(request)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._can_write(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self._can_write(request, obj)

    def save_model(self, request, obj, form, change) -> None:
        if not self._can_write(request, obj):
            raise PermissionDenied("You cannot write to this tenant.")
        # ModelAdmin comes after this mixin in the MRO; mypy cannot see it.
        super().save_model(request, obj, form, change)  # type: ignore[misc]
