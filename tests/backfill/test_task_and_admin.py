"""Runs started from the admin: the upload form, the Celery task on the backfill queue, and
the read-only run screens, scoped to the staff user's tenants."""

from __future__ import annotations

import zipfile

import pytest
from django.test import override_settings
from django.urls import reverse

from backfill.models import ImportRun, RunStatus
from backfill.tasks import import_run
from crm.audit import AuditAction
from crm.celery import route_task
from crm.models import AuditEvent
from customers.models import CustomerProfile
from tests.factories import ClubFactory, StaffMembershipFactory, UserFactory

from .helpers import DATA

pytestmark = pytest.mark.django_db


def _zip(tmp_path, region_folder="za"):
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in ("members.csv", "rounds.csv", "transactions.csv"):
            zf.write(DATA / region_folder / name, f"export/{name}")
    return archive


def test_the_import_task_goes_to_the_backfill_queue():
    assert route_task("backfill.import_run", (), {}, {}) == {"queue": "backfill"}


def test_upload_checks_the_clubs_then_queues_the_run(
    client, staff_a, tenant_a, tmp_path, django_capture_on_commit_callbacks, monkeypatch
):
    client.force_login(staff_a)
    url = reverse("admin:backfill_importrun_start")
    with override_settings(BACKFILL_UPLOAD_DIR=str(tmp_path / "uploads")):
        with open(_zip(tmp_path), "rb") as upload:
            refused = client.post(url, {"tenant": tenant_a.pk, "region": "ZA", "export": upload})
        assert refused.status_code == 200
        assert "RGC, SVG" in refused.content.decode()
        assert not ImportRun.objects.exists()
        for code in ("RGC", "SVG"):
            ClubFactory(tenant=tenant_a, name=code)
        queued = []
        monkeypatch.setattr(import_run, "delay_on_commit", lambda *a, **kw: queued.append((a, kw)))
        with open(_zip(tmp_path), "rb") as upload, django_capture_on_commit_callbacks(execute=True):
            response = client.post(url, {"tenant": tenant_a.pk, "region": "ZA", "export": upload})
    run = ImportRun.objects.get()
    assert response.status_code == 302 and str(run.pk) in response["Location"]
    assert run.status == RunStatus.PENDING and run.requested_by == staff_a.username
    ((args, kwargs),) = queued
    assert args == (str(tenant_a.pk),) and kwargs["run_id"] == str(run.pk)
    # The worker's side: the task takes the run to the end, and a second delivery is a no-op.
    assert import_run(str(tenant_a.pk), run_id=str(run.pk), path=kwargs["path"]) == "COMPLETED"
    assert CustomerProfile.objects.for_tenant(tenant_a).count() == 239
    run.refresh_from_db()
    assert run.progress["phase"] == "completed" and run.counters["reconciled"]
    again = import_run(str(tenant_a.pk), run_id=str(run.pk), path=kwargs["path"])
    assert again == "nothing to do"

    page = client.get(reverse("admin:backfill_importrun_change", args=[run.pk]))
    assert page.status_code == 200
    text = page.content.decode()
    assert "reconciled" in text and "SVG 1059" in text  # the rejected row, with its reason
    listing = client.get(reverse("admin:backfill_importrun_changelist"))
    assert listing.status_code == 200 and "created 239" in listing.content.decode()


def test_starting_an_import_is_in_the_audit_trail(
    client, staff_a, tenant_a, tmp_path, django_capture_on_commit_callbacks, monkeypatch
):
    for code in ("RGC", "SVG"):
        ClubFactory(tenant=tenant_a, name=code)
    monkeypatch.setattr(import_run, "delay_on_commit", lambda *a, **kw: None)
    client.force_login(staff_a)
    with (
        override_settings(BACKFILL_UPLOAD_DIR=str(tmp_path / "uploads")),
        open(_zip(tmp_path), "rb") as upload,
        django_capture_on_commit_callbacks(execute=True),
    ):
        client.post(
            reverse("admin:backfill_importrun_start"),
            {"tenant": tenant_a.pk, "region": "ZA", "export": upload},
        )
    run = ImportRun.objects.get()
    (row,) = AuditEvent.objects.filter(action=AuditAction.IMPORT_STARTED)
    assert (row.actor, row.object_id, row.detail["region"]) == ("staff:anna", str(run.pk), "ZA")


def test_another_tenants_run_is_not_shown(client, tenant_a, tenant_b, staff_b):
    run = ImportRun.objects.create(
        tenant=tenant_a, region="ZA", source="x", fingerprint="f",
        exported_at="2024-08-01T00:00:00Z",
    )  # fmt: skip
    client.force_login(staff_b)
    listing = client.get(reverse("admin:backfill_importrun_changelist"))
    assert listing.status_code == 200 and str(run.pk) not in listing.content.decode()
    detail = client.get(reverse("admin:backfill_importrun_change", args=[run.pk]))
    assert detail.status_code in (302, 404)


def test_support_staff_cannot_start_an_import(client, tenant_a):
    user = UserFactory(username="sam")
    StaffMembershipFactory(tenant=tenant_a, user=user, role="support")
    client.force_login(user)
    response = client.get(reverse("admin:backfill_importrun_start"))
    assert response.status_code == 403
