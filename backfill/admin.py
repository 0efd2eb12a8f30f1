"""Staff console: import runs (read-only list and detail with the reconciliation), and a
form for tenant admins to start an import by uploading a zip (run by the ``backfill``
queue's workers, with live progress on the run's page)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from unfold.admin import ModelAdmin

from crm.admin_mixins import TenantScopedAdminMixin
from crm.audit import AuditAction, audit_record, request_actor
from crm.models import StaffRole, Tenant
from crm.selectors import staff_tenant_ids_with_role
from crm.tasks import tenant_task

from .mca import DIALECTS, Export, ExportError
from .models import ImportRow, ImportRun, RunStatus
from .runs import progress_key, run_start

REJECTS_SHOWN = 200


class ImportForm(forms.Form):
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.none())
    region = forms.ChoiceField(choices=[(r, r) for r in DIALECTS])
    export = forms.FileField(help_text="The MCA v1 export as a .zip.")
    dry_run = forms.BooleanField(required=False, initial=True)
    club_map = forms.CharField(
        required=False, help_text="One CODE=CLUB per line (club id or name).",
        widget=forms.Textarea(attrs={"rows": 3}),
    )  # fmt: skip

    def clean_club_map(self) -> dict[str, str]:
        mapping = {}
        for line in self.cleaned_data["club_map"].splitlines():
            if not line.strip():
                continue
            code, sep, club = line.partition("=")
            if not sep or not code.strip() or not club.strip():
                raise ValidationError(f"Expected CODE=CLUB, got {line!r}.")
            mapping[code.strip().upper()] = club.strip()
        return mapping


@admin.register(ImportRun)
class ImportRunAdmin(TenantScopedAdminMixin, ModelAdmin):
    """Runs are written by the import only: every screen here is read-only."""

    change_list_template = "admin/backfill/importrun/change_list.html"
    list_display = ["created_at", "tenant", "region", "source", "dry_run", "status",
                    "members_summary", "reconciled"]  # fmt: skip
    list_filter = ["status", "region", "dry_run"]
    readonly_fields = [
        "tenant", "region", "source", "dry_run", "status", "progress_display", "exported_at",
        "started_at", "finished_at", "requested_by", "files_display", "counters_display",
        "rejected_rows", "error",
    ]  # fmt: skip
    fields = readonly_fields

    def has_add_permission(self, request, *args) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="members")
    def members_summary(self, obj: ImportRun) -> str:
        outcomes = (obj.counters or {}).get("member_outcomes", {})
        return ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())) or "-"

    @admin.display(description="reconciled", boolean=True)
    def reconciled(self, obj: ImportRun) -> bool | None:
        return (obj.counters or {}).get("reconciled")

    @admin.display(description="progress")
    def progress_display(self, obj: ImportRun) -> str:
        # While the run works, its progress is in the cache (its transaction is not visible).
        live = None if obj.status == RunStatus.COMPLETED else cache.get(progress_key(obj.pk))
        progress = live or obj.progress
        return json.dumps(progress) if progress else "-"

    @admin.display(description="files")
    def files_display(self, obj: ImportRun) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.files, indent=2))

    @admin.display(description="reconciliation")
    def counters_display(self, obj: ImportRun) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.counters, indent=2))

    @admin.display(description=f"rejected rows (first {REJECTS_SHOWN})")
    def rejected_rows(self, obj: ImportRun) -> str:
        rows = ImportRow.objects.filter(run=obj, rejected=True).order_by("file", "line")[
            :REJECTS_SHOWN
        ]
        lines = [f"{r.file}:{r.line} {r.club_code} {r.member_no}: {r.reason}" for r in rows]
        return format_html("<pre>{}</pre>", "\n".join(lines) or "none")

    def get_urls(self):
        urls = [
            path(
                "start/",
                self.admin_site.admin_view(self.start_view),
                name="backfill_importrun_start",
            )
        ]
        return urls + super().get_urls()

    def start_view(self, request):
        """Upload a zip, check it (club codes), create the run and queue it."""
        tenants = staff_tenant_ids_with_role(user=request.user, roles=(StaffRole.ADMIN,))
        if not (request.user.is_superuser or tenants):
            raise PermissionDenied
        form = ImportForm(request.POST or None, request.FILES or None)
        form.fields["tenant"].queryset = (
            Tenant.objects.all() if request.user.is_superuser
            else Tenant.objects.filter(pk__in=tenants)
        )  # fmt: skip
        if request.method == "POST" and form.is_valid():
            folder = Path(settings.BACKFILL_UPLOAD_DIR)
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / f"{uuid.uuid4()}.zip"
            with open(target, "wb") as handle:
                for chunk in form.cleaned_data["export"].chunks():
                    handle.write(chunk)
            tenant = form.cleaned_data["tenant"]
            try:
                export = Export(target)
                try:
                    run = run_start(
                        tenant=tenant, export=export, region=form.cleaned_data["region"],
                        dry_run=form.cleaned_data["dry_run"],
                        club_map=form.cleaned_data["club_map"],
                        requested_by=request.user.get_username(),
                    )  # fmt: skip
                finally:
                    export.close()
            except (ExportError, ValidationError) as exc:
                target.unlink(missing_ok=True)
                messages_ = exc.messages if isinstance(exc, ValidationError) else [str(exc)]
                form.add_error(None, "; ".join(messages_))
            else:
                audit_record(
                    tenant=tenant,
                    actor=request_actor(request),
                    action=AuditAction.IMPORT_STARTED,
                    object_type="backfill.ImportRun",
                    object_id=run.pk,
                    request=request,
                    detail={"region": run.region, "source": run.source, "dry_run": run.dry_run},
                )
                tenant_task("backfill.import_run").enqueue(
                    tenant, run_id=str(run.pk), path=str(target)
                )
                messages.success(request, "The import is queued; this page shows its progress.")
                return HttpResponseRedirect(
                    reverse("admin:backfill_importrun_change", args=[run.pk])
                )
        context = {
            **self.admin_site.each_context(request),
            "title": "Start an MCA v1 import",
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/backfill/importrun/start.html", context)
