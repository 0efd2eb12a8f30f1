"""Staff console screens of the kernel: tenants, clubs, staff, API keys, users."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin as BaseGroupAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.models import Group, User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import PermissionDenied, ValidationError
from unfold.admin import ModelAdmin, TabularInline
from unfold.decorators import action, display
from unfold.forms import AdminPasswordChangeForm, UserChangeForm, UserCreationForm
from unfold.widgets import (
    UnfoldAdminCheckboxSelectMultipleWidget,
    UnfoldAdminEmailInputWidget,
    UnfoldAdminPasswordWidget,
    UnfoldAdminTextInputWidget,
)

from .admin_mixins import TenantScopedAdminMixin
from .audit import AuditAction, audit_record, request_actor
from .models import ApiKey, AuditEvent, Club, StaffMembership, StaffRole, Tenant
from .scopes import DEFAULT_API_KEY_SCOPES, SCOPES
from .selectors import staff_tenant_ids_with_role
from .services import api_key_create, api_key_revoke, staff_member_create

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


class StaffMembershipForm(forms.ModelForm):
    """Give access to one of the tenant's staff, or create a new login for the tenant."""

    new_username = forms.CharField(
        required=False,
        max_length=150,
        label="New login: username",
        widget=UnfoldAdminTextInputWidget,
        help_text="Or create a new login for this tenant (leave the user above empty).",
    )
    new_email = forms.EmailField(
        required=False, label="New login: email", widget=UnfoldAdminEmailInputWidget
    )
    new_password = forms.CharField(
        required=False, strip=False, label="New login: password", widget=UnfoldAdminPasswordWidget
    )

    class Meta:
        model = StaffMembership
        fields = ["tenant", "user", "club", "role"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if "user" in self.fields:
            self.fields["user"].required = False

    def clean(self):
        data = super().clean()
        if self.instance.pk:
            return data  # a membership's user is fixed once given
        username = data.get("new_username", "").strip()
        if bool(data.get("user")) == bool(username):
            raise ValidationError("Choose a user, or give a new login's username (not both).")
        if username:
            data["new_username"] = username
            if get_user_model().objects.filter(username__iexact=username).exists():
                self.add_error("new_username", "This username is taken.")
            password = data.get("new_password")
            if not password:
                self.add_error("new_password", "Give the new login a password.")
            else:
                candidate = get_user_model()(username=username, email=data.get("new_email", ""))
                try:
                    validate_password(password, user=candidate)
                except ValidationError as exc:
                    self.add_error("new_password", exc)
        return data


@admin.register(StaffMembership)
class StaffMembershipAdmin(TenantScopedAdminMixin, ModelAdmin):
    """Who has access to a tenant. A tenant admin picks one of their tenants' staff or
    creates a new login here; the list of every user (and the User screen) is for
    superusers only, so no other tenant's staff is ever shown."""

    form = StaffMembershipForm
    list_display = ["user", "tenant", "club", "role", "created_at"]
    list_filter = ["role", "tenant"]
    list_select_related = ["user", "tenant", "club"]
    search_fields = ["user__username", "user__email"]

    def get_autocomplete_fields(self, request):
        # The autocomplete searches every user: superusers only.
        return ["user"] if request.user.is_superuser else []

    def get_fields(self, request, obj=None):
        if obj is not None:
            return ["tenant", "user", "club", "role"]
        return ["tenant", "user", "new_username", "new_email", "new_password", "club", "role"]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and not request.user.is_superuser:
            fields.append("user")
        return fields

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "user" and not request.user.is_superuser:
            # Only people already on the staff of a tenant this admin runs.
            writable = staff_tenant_ids_with_role(user=request.user, roles=self.write_roles)
            kwargs["queryset"] = (
                get_user_model()
                .objects.filter(crm_memberships__tenant_id__in=writable)
                .distinct()
                .order_by("username")
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change) -> None:
        username = form.cleaned_data.get("new_username")
        if change or not username:
            super().save_model(request, obj, form, change)
            return
        if not self._can_write(request, obj):
            raise PermissionDenied("You cannot add staff to this tenant.")
        membership = staff_member_create(
            tenant=obj.tenant,
            username=username,
            password=form.cleaned_data["new_password"],
            email=form.cleaned_data.get("new_email", ""),
            role=obj.role,
            club=obj.club,
        )
        obj.pk, obj.user = membership.pk, membership.user  # the admin redirects with obj.pk


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
            raise PermissionDenied("You cannot issue keys for this tenant.")
        issued = api_key_create(
            tenant=obj.tenant,
            name=obj.name,
            created_by=request.user,
            scopes=form.cleaned_data.get("scopes") or [],
        )
        audit_record(
            tenant=obj.tenant,
            actor=request_actor(request),
            action=AuditAction.API_KEY_ISSUED,
            object_type="crm.ApiKey",
            object_id=issued.api_key.pk,
            request=request,
            detail={
                "name": issued.api_key.name,
                "prefix": issued.api_key.prefix,
                "scopes": list(issued.api_key.scopes),
            },
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
                audit_record(
                    tenant=api_key.tenant,
                    actor=request_actor(request),
                    action=AuditAction.API_KEY_REVOKED,
                    object_type="crm.ApiKey",
                    object_id=api_key.pk,
                    request=request,
                    detail={"name": api_key.name, "prefix": api_key.prefix},
                )
                revoked += 1
        self.message_user(request, f"Revoked {revoked} key(s).", messages.SUCCESS)


@admin.register(AuditEvent)
class AuditEventAdmin(TenantScopedAdminMixin, ModelAdmin):
    """The staff audit trail: read-only, for tenant admins (and superusers). Nobody adds,
    changes or deletes a row here; old rows go by the retention in docs/privacy.md."""

    list_display = ["created_at", "tenant", "actor", "action", "object_type", "object_id", "ip"]
    list_filter = ["tenant", "action"]
    list_select_related = ["tenant"]
    search_fields = ["actor", "object_id", "ip"]
    date_hierarchy = "created_at"
    fields = [
        "created_at",
        "tenant",
        "actor",
        "action",
        "object_type",
        "object_id",
        "ip",
        "changes",
        "detail",
    ]
    readonly_fields = fields

    def _admin_tenants(self, request) -> set:
        return set(staff_tenant_ids_with_role(user=request.user, roles=(StaffRole.ADMIN,)))

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(tenant_id__in=self._admin_tenants(request))

    def has_module_permission(self, request) -> bool:
        return request.user.is_active and (
            request.user.is_superuser or bool(self._admin_tenants(request))
        )

    def has_view_permission(self, request, obj=None) -> bool:
        if request.user.is_superuser:
            return True
        tenants = self._admin_tenants(request)
        return bool(tenants) if obj is None else obj.tenant_id in tenants

    def has_add_permission(self, request, *args) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
