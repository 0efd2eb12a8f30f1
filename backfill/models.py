"""Import runs of MCA v1 exports and their staged rows (one per input row, with its outcome)."""

from __future__ import annotations

import uuid

from django.db import models

from crm.tenancy import TenantOwnedModel


class RunStatus(models.TextChoices):
    PENDING = "PENDING", "Pending"
    STAGING = "STAGING", "Staging the files"
    STAGED = "STAGED", "Staged"
    LOADING = "LOADING", "Loading"
    COMPLETED = "COMPLETED", "Completed"
    FAILED = "FAILED", "Failed"


class ImportRun(TenantOwnedModel):
    """One import of one export into one tenant.

    ``files`` holds each file's name, SHA-256 and row count; ``fingerprint`` (the checksums
    together) is how a restarted run finds the unfinished run of the same export and resumes
    it. ``counters`` and ``report`` are the reconciliation, written when the run ends (a dry
    run ends ``COMPLETED`` too, with ``dry_run`` set and nothing written outside its rows).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    region = models.CharField(max_length=2)
    source = models.CharField(max_length=255, help_text="The export's file or folder name.")
    files = models.JSONField(default=dict, blank=True)
    fingerprint = models.CharField(max_length=64)
    dry_run = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.PENDING)
    exported_at = models.DateTimeField(help_text="When MCA v1 wrote the export.")
    club_map = models.JSONField(default=dict, blank=True, help_text="ClubCode -> club id.")
    requested_by = models.CharField(max_length=150, blank=True, default="")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    progress = models.JSONField(default=dict, blank=True)
    counters = models.JSONField(default=dict, blank=True)
    report = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="importrun_tenant_created_idx"),
            models.Index(fields=["tenant", "fingerprint"], name="importrun_fingerprint_idx"),
        ]

    def __str__(self) -> str:
        kind = "dry run" if self.dry_run else "import"
        return f"MCA v1 {self.region} {kind} of {self.source} ({self.status})"


class RowOutcome(models.TextChoices):
    CREATED = "created", "Created a profile"
    UPDATED = "updated", "Updated its profile"
    UNCHANGED = "unchanged", "Unchanged"
    JOINED = "joined", "Joined an existing profile"
    SUGGESTED = "suggested", "Suggested as a duplicate"
    LOADED = "loaded", "Loaded (round or transaction)"
    REJECTED = "rejected", "Rejected"


class ImportRow(TenantOwnedModel):
    """One input row of a run: the staging table (COPYed, transformed in SQL) and its
    outcome. ``raw`` keeps the fields as read, for the reject file; ``data`` the transformed
    values; ``reason`` why it was rejected or which fields were dropped (flags)."""

    id = models.BigAutoField(primary_key=True)
    # No foreign-key constraints in the database (Django still cascades deletes): millions of
    # staged rows would each cost two deferred checks at commit, and only ``runs.run_stage``
    # writes them, for the run it holds. No index of ``run`` alone either: the unique
    # ``(run, file, line)`` serves it.
    tenant = models.ForeignKey(
        "crm.Tenant",
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    run = models.ForeignKey(
        ImportRun,
        on_delete=models.CASCADE,
        related_name="rows",
        db_index=False,
        db_constraint=False,
    )
    file = models.CharField(max_length=12)
    line = models.PositiveIntegerField()
    club_code = models.CharField(max_length=16, blank=True, default="")
    member_no = models.CharField(max_length=32, blank=True, default="")
    raw = models.JSONField(default=list)
    data = models.JSONField(default=dict)
    rejected = models.BooleanField(default=False)
    reason = models.TextField(blank=True, default="")
    outcome = models.CharField(max_length=10, choices=RowOutcome.choices, blank=True, default="")
    profile_id = models.UUIDField(null=True, blank=True)
    grp = models.BigIntegerField(null=True, blank=True, help_text="Identity group (planning).")
    source_event_id = models.CharField(max_length=128, blank=True, default="")
    amount_minor = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["run", "file", "line"]
        constraints = [
            models.UniqueConstraint(fields=["run", "file", "line"], name="importrow_line_uniq"),
        ]
        indexes = [
            models.Index(
                fields=["run", "file", "club_code", "member_no"], name="importrow_member_idx"
            ),
            # A person's import records: the subject-access export and erasure.
            models.Index(
                fields=["tenant", "profile_id"],
                condition=models.Q(profile_id__isnull=False),
                name="importrow_profile_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.file}:{self.line} {self.outcome or '-'}"
