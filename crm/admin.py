"""Staff console screens of the kernel: tenants, clubs, staff, API keys, users."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin as BaseGroupAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.models import Group, User
from unfold.admin import ModelAdmin, TabularInline
from unfold.decorators import action, display
from unfold.forms import AdminPasswordChangeForm, UserChangeForm, UserCreationForm
from unfold.widgets import UnfoldAdminCheckboxSelectMultipleWidget

from .admin_mixins import TenantScopedAdminMixin
from .models import ApiKey, Club, StaffMembership, Tenant
from .scopes import DEFAULT_API_KEY_SCOPES, SCOPES
from .services import api_key_create, api_key_revoke

admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class UserAdmin(BaseUserAdmin, ModelAdmin):
    """Logins. Only superusers manage users; tenant admins grant access via memberships."""

    form = UserChangeForm
    add_form = UserCreationForm
    change_password_form = AdminPasswordChangeForm

    def has_module_permission(self, request) -> bool:
        return request.user.is_superuser


@admin.register(Group)
class GroupAdmin(BaseGroupAdmin, ModelAdmin):
    def has_module_permission(self, request) -> bool:
        return request.user.is_superuser


class ClubInline(TabularInline):
    model = Club
    extra = 0
    fields = ["name", "timezone"]
    show_change_link = True


@admin.register(Tenant)
class TenantAdmin(TenantScopedAdminMixin, ModelAdmin):
    tenant_lookup = "pk"
    list_display = ["name", "slug", "region", "timezone", "currency", "is_active"]
    list_filter = ["region", "is_active"]
    search_fields = ["name", "slug"]
    readonly_fields = ["id", "created_at", "updated_at"]
    inlines = [ClubInline]

    def has_add_permission(self, request, *args) -> bool:
        # New tenants are a platform decision: superusers or `create_tenant`.
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            fields += ["slug", "is_active"]
        return fields


@admin.register(Club)
class ClubAdmin(TenantScopedAdminMixin, ModelAdmin):
    list_display = ["name", "tenant", "timezone", "created_at"]
    list_filter = ["tenant"]
    list_select_related = ["tenant"]
    search_fields = ["name"]
    readonly_fields = ["id", "created_at", "updated_at"]


@admin.register(StaffMembership)
class StaffMembershipAdmin(TenantScopedAdminMixin, ModelAdmin):
    list_display = ["user", "tenant", "club", "role", "created_at"]
    list_filter = ["role", "tenant"]
    list_select_related = ["user", "tenant", "club"]
    search_fields = ["user__username", "user__email"]
    autocomplete_fields = ["user"]


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=[(scope, f"{scope}: {text}") for scope, text in SCOPES.items()],
        initial=list(DEFAULT_API_KEY_SCOPES),
        required=False,
        widget=UnfoldAdminCheckboxSelectMultipleWidget,
        help_text="What the key may do (docs/api.md). Fixed once issued: issue a new key to "
        "change them.",
    )

    class Meta:
        model = ApiKey
        fields = ["tenant", "name", "scopes"]


@admin.register(ApiKey)
class ApiKeyAdmin(TenantScopedAdminMixin, ModelAdmin):
    """API keys: the key is shown once, when it is created; only its prefix stays visible."""

    form = ApiKeyForm

    list_display = ["name", "tenant", "prefix", "status", "last_used_at", "created_at"]
    list_filter = ["tenant"]
    list_select_related = ["tenant"]
    search_fields = ["name", "prefix"]
    fields = [
        "tenant",
        "name",
        "scopes",
        "prefix",
        "created_by",
        "last_used_at",
        "revoked_at",
        "created_at",
    ]
    readonly_fields = ["prefix", "created_by", "last_used_at", "revoked_at", "created_at"]
    actions = ["revoke_keys"]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None:  # a key's tenant, name and scopes are fixed once issued
            return ["tenant", "name", "scopes", *self.readonly_fields]
        return self.readonly_fields

    @display(description="Status", label={"active": "success", "revoked": "danger"})
    def status(self, obj: ApiKey) -> str:
        return "active" if obj.is_active else "revoked"

    def save_model(self, request, obj, form, change) -> None:
        if change:
            return  # nothing editable after issue; revocation is an action
        if not self._can_write(request, obj):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied("You cannot issue keys for this tenant.")
        issued = api_key_create(
            tenant=obj.tenant,
            name=obj.name,
            created_by=request.user,
            scopes=form.cleaned_data.get("scopes") or [],
        )
        # The admin redirects using obj.pk, so point it at the issued row.
        obj.pk = issued.api_key.pk
        obj.prefix = issued.api_key.prefix
        messages.warning(
            request,
            f"Copy this API key now, it will not be shown again: {issued.raw_key}",
        )

    @action(description="Revoke selected keys")
    def revoke_keys(self, request, queryset) -> None:
        revoked = 0
        for api_key in queryset.filter(revoked_at__isnull=True):
            if self._can_write(request, api_key):
                api_key_revoke(api_key=api_key)
                revoked += 1
        self.message_user(request, f"Revoked {revoked} key(s).", messages.SUCCESS)
