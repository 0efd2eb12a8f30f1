"""Imports of the sample exports: identity, faults, reconciliation, idempotence, dry runs,
consent and lifecycle, the CRM's newer data, resuming, tenants."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connection

from backfill import loading
from backfill.mca import DIALECTS, Export, read_raw
from backfill.models import ImportRow, ImportRun, RowOutcome, RunStatus
from backfill.runs import ImportRefused
from crm.models import AuditEvent
from customers.models import (
    Activity,
    ConsentRecord,
    CustomerProfile,
    IdentityAlias,
    LifecycleStage,
    MergeSuggestion,
)
from marketing.models import Suppression
from tests.customers.helpers import person

from .helpers import DATA, EXPORTED_AT, REGIONS, TRUTH, do_import, region_tenant

pytestmark = pytest.mark.django_db(transaction=False)


def _rows(run, file="members"):
    return {(r.club_code, r.member_no): r for r in ImportRow.objects.filter(run=run, file=file)}


def _state(tenant) -> dict:
    """What an import leaves behind, comparable across tenants (no ids)."""
    profiles = sorted(
        (p.email or "", p.phone or "", p.first_name, p.last_name, p.lifetime_value_minor,
         p.lifecycle_stage, p.email_opt_in, p.sms_opt_in, str(p.last_activity_at))
        for p in CustomerProfile.objects.for_tenant(tenant)
    )  # fmt: skip
    return {
        "profiles": profiles,
        "aliases": IdentityAlias.objects.for_tenant(tenant).count(),
        "activities": Activity.objects.for_tenant(tenant).count(),
        "consents": ConsentRecord.objects.for_tenant(tenant).count(),
        "suppressions": Suppression.objects.for_tenant(tenant).count(),
        "suggestions": MergeSuggestion.objects.for_tenant(tenant).count(),
    }


@pytest.mark.parametrize("region", ["ZA", "UK"])
def test_every_same_person_pair_ends_as_one_profile_or_a_suggestion(region):
    tenant = region_tenant(region)
    run = do_import(tenant, region)
    rows = _rows(run)
    suggested = {
        frozenset((s.profile_id, s.candidate_id))
        for s in MergeSuggestion.objects.for_tenant(tenant)
    }
    for first, second in TRUTH[region]["same_person"]:
        a, b = rows[tuple(first)], rows[tuple(second)]
        assert a.profile_id is not None
        assert a.profile_id == b.profile_id or frozenset((a.profile_id, b.profile_id)) in suggested
    # The profile holds both legacy records.
    a, b = (rows[tuple(k)] for k in TRUTH[region]["same_person"][0])
    legacy = IdentityAlias.objects.for_tenant(tenant).filter(
        profile_id=a.profile_id, value__startswith="mca_v1_"
    )
    assert legacy.count() == 2
    profiles = CustomerProfile.objects.for_tenant(tenant).count()
    assert profiles == 260 - 1 - len(TRUTH[region]["same_person"])


FAULT_WORDS = {
    "impossible date": "impossible date",
    "wrong date format": "wrong date format",
    "malformed email": "malformed email",
    "phone too short": "phone too short",
    "ID check digit wrong": "check digit wrong",
    "row with too few fields": "fields, the header has 24",
    "round for an unknown member": "unknown member",
    "same Reference twice": "same Reference twice",
}


@pytest.mark.parametrize("region", ["ZA", "UK"])
def test_every_faulty_row_is_rejected_or_flagged_with_its_reason(region):
    tenant = region_tenant(region)
    run = do_import(tenant, region)
    for key, fault in TRUTH[region]["faults"].items():
        parts = key.split(":")
        if parts[0] == "rounds":
            rows = ImportRow.objects.filter(
                run=run, file="rounds", club_code=parts[1], member_no=parts[2]
            )
        elif parts[0] == "transactions":
            rows = ImportRow.objects.filter(
                run=run, file="transactions", data__reference=parts[1]
            ) | ImportRow.objects.filter(run=run, file="transactions", rejected=True,
                                         raw__5=parts[1])  # fmt: skip
        else:
            rows = ImportRow.objects.filter(
                run=run, file="members", club_code=parts[0], member_no=parts[1]
            )
        reasons = [r.reason for r in rows if r.reason]
        assert reasons, key
        assert any(FAULT_WORDS[fault] in reason for reason in reasons), (key, reasons)
        if fault in ("row with too few fields", "round for an unknown member"):
            assert all(r.rejected for r in rows)
        if fault == "same Reference twice":
            assert sorted(r.rejected for r in rows) == [False, True]
    # A flagged member still arrives, without the bad field.
    club, number = next(k for k, v in TRUTH[region]["faults"].items() if v == "malformed email")\
        .split(":")  # fmt: skip
    row = ImportRow.objects.get(run=run, file="members", club_code=club, member_no=number)
    assert not row.rejected and row.profile_id is not None
    assert CustomerProfile.objects.get(pk=row.profile_id).email is None


@pytest.mark.parametrize("region", ["ZA", "UK"])
def test_counts_and_money_reconcile(region):
    tenant = region_tenant(region)
    run = do_import(tenant, region)
    counters = run.counters
    assert counters["reconciled"] is True
    for kind, expected in TRUTH[region]["counts"].items():
        assert counters["files"][kind]["rows"] == expected
        assert run.files[kind]["rows"] == expected
        assert counters["files"][kind]["loaded"] + counters["files"][kind]["rejected"] == expected
        per_club = sum(club[kind]["rows"] for club in counters["clubs"].values())
        assert per_club == expected
    money = counters["money"]
    assert money["in_minor"] == money["loaded_minor"] + money["rejected_minor"]
    assert money["rejected_minor"] > 0  # the repeated Reference
    lifetime = sum(
        CustomerProfile.objects.for_tenant(tenant).values_list("lifetime_value_minor", flat=True)
    )
    assert lifetime == money["loaded_minor"]
    loaded = counters["files"]["rounds"]["loaded"] + counters["files"]["transactions"]["loaded"]
    history = Activity.objects.for_tenant(tenant).exclude(type="mca_v1.membership.left")
    assert history.count() == loaded
    assert history.filter(source_service="mca_v1").count() == loaded


def test_rounds_keep_their_dates_and_refunds_subtract():
    tenant = region_tenant("UK")
    do_import(tenant, "UK")
    round_ = Activity.objects.for_tenant(tenant).filter(type="mca_v1.round").order_by("id")[0]
    assert round_.occurred_at.astimezone(round_.occurred_at.tzinfo).year >= 2000
    refunds = Activity.objects.for_tenant(tenant).filter(
        type="mca_v1.transaction", metadata__type="REFUND"
    )
    assert refunds.exists()
    assert all(r.metadata["amount_minor"] < 0 for r in refunds)
    assert all(r.title.startswith("Refund") for r in refunds)


def test_second_import_of_the_same_export_changes_nothing():
    tenant = region_tenant("ZA")
    do_import(tenant, "ZA")
    before = _state(tenant)
    stamps = dict(CustomerProfile.objects.for_tenant(tenant).values_list("id", "updated_at"))
    again = do_import(tenant, "ZA")
    assert again.counters["member_outcomes"] == {"unchanged": 259, "rejected": 1}
    assert _state(tenant) == before
    assert dict(CustomerProfile.objects.for_tenant(tenant).values_list("id", "updated_at")) == (
        stamps
    )
    assert ImportRun.objects.for_tenant(tenant).count() == 2


def test_the_load_analyzes_a_table_it_plans_over_when_its_statistics_are_missing():
    """A second import right after a first ran its planning on no statistics (minutes on
    one statement): tables never analyzed, or with a tenth of their rows changed since, are
    analyzed first; fresh ones are left alone."""
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE stats_probe AS SELECT n FROM generate_series(1, 1000) n")
        assert loading.stats_refresh(("stats_probe",)) == ["stats_probe"]
        cursor.execute("SELECT reltuples FROM pg_class WHERE relname = 'stats_probe'")
        assert cursor.fetchone()[0] == 1000
        assert loading.stats_refresh(("stats_probe",)) == []


def test_dry_run_reports_everything_and_writes_nothing_else():
    tenant = region_tenant("UK")
    dry = do_import(tenant, "UK", dry_run=True)
    assert dry.status == RunStatus.COMPLETED and dry.dry_run
    assert _state(tenant) == _state(region_tenant("ZA", slug="empty"))  # all zero
    assert CustomerProfile.objects.for_tenant(tenant).count() == 0
    assert dry.counters["member_outcomes"] == {"created": 239, "joined": 20, "rejected": 1}
    real = do_import(tenant, "UK")
    assert real.counters == dry.counters


def test_consent_mapping_and_never_asked_is_not_consent():
    tenant = region_tenant("ZA")
    run = do_import(tenant, "ZA")
    rows = _rows(run)
    # RGC 1022: EmailOptIn Y, SMSOptIn blank. SVG 1045: Y and N.
    yes_blank = CustomerProfile.objects.get(pk=rows[("RGC", "1022")].profile_id)
    assert yes_blank.email_opt_in is True and yes_blank.email_consent_source == "mca_v1"
    assert yes_blank.email_consent_at == EXPORTED_AT
    assert yes_blank.sms_opt_in is False and yes_blank.sms_consent_at is None
    records = ConsentRecord.objects.for_tenant(tenant).filter(customer=yes_blank)
    assert [(r.channel, r.opt_in, r.source) for r in records] == [("email", True, "mca_v1")]
    yes_no = CustomerProfile.objects.get(pk=rows[("SVG", "1045")].profile_id)
    assert (yes_no.email_opt_in, yes_no.sms_opt_in) == (True, False)
    assert yes_no.sms_consent_at == EXPORTED_AT  # a refusal is recorded too
    assert (
        ConsentRecord.objects.for_tenant(tenant)
        .filter(customer=yes_no, channel="sms", opt_in=False, occurred_at=EXPORTED_AT)
        .exists()
    )


def test_status_maps_to_lifecycle_and_deceased_is_never_contacted():
    tenant = region_tenant("ZA")
    run = do_import(tenant, "ZA")
    rows = _rows(run)
    active = CustomerProfile.objects.get(pk=rows[("SVG", "1045")].profile_id)
    assert active.lifecycle_stage == LifecycleStage.MEMBER
    assert active.membership_status == "ACTIVE"
    lapsed = CustomerProfile.objects.get(pk=rows[("RGC", "1062")].profile_id)  # R, 29/08/2000
    assert lapsed.lifecycle_stage == LifecycleStage.LAPSED
    assert lapsed.membership_status == "RESIGNED"
    left = Activity.objects.for_tenant(tenant).get(customer=lapsed, type="mca_v1.membership.left")
    assert left.occurred_at.date().isoformat() in ("2000-08-28", "2000-08-29")
    # SVG 1073 is D with EmailOptIn Y and SMSOptIn Y (and the same person as SVG 1115, A).
    dead = CustomerProfile.objects.get(pk=rows[("SVG", "1073")].profile_id)
    assert dead.lifecycle_stage == LifecycleStage.CHURNED
    assert "deceased" in dead.tags
    assert not any(getattr(dead, f"{ch}_opt_in") for ch in ("email", "sms", "push", "whatsapp"))
    suppressed = set(
        Suppression.objects.for_tenant(tenant).values_list("channel", "address", "reason")
    )
    assert ("email", dead.email, "deceased") in suppressed
    assert ("sms", dead.phone, "deceased") in suppressed
    assert ("whatsapp", dead.phone, "deceased") in suppressed


def test_the_crms_newer_consent_and_fields_survive_the_import():
    tenant = region_tenant("ZA")
    # RGC 1022 says EmailOptIn Y; the CRM recorded an opt-out after the export.
    newer = person(tenant, email="zanele.mahlangu37@example.org")
    after = EXPORTED_AT + timedelta(days=3)
    CustomerProfile.objects.filter(pk=newer.pk).update(
        email_opt_in=False, email_consent_at=after, email_consent_source="api",
        first_name="Zee", membership_status="ACTIVE", membership_updated_at=after,
    )  # fmt: skip
    # SVG 1045 says EmailOptIn Y; the CRM's opt-out is older than the export: the export wins.
    older = person(tenant, email="tshepo.steyn97@gmail.com")
    before = EXPORTED_AT - timedelta(days=3)
    CustomerProfile.objects.filter(pk=older.pk).update(
        email_opt_in=False, email_consent_at=before, email_consent_source="api"
    )
    run = do_import(tenant, "ZA")
    rows = _rows(run)
    assert rows[("RGC", "1022")].profile_id == newer.pk
    assert rows[("RGC", "1022")].outcome == RowOutcome.JOINED
    newer.refresh_from_db()
    assert (newer.email_opt_in, newer.email_consent_at) == (False, after)
    assert newer.first_name == "Zee"  # filled only when blank
    assert newer.membership_status == "ACTIVE"  # RGC 1022 is L, but the CRM's is newer
    assert not ConsentRecord.objects.for_tenant(tenant).filter(customer=newer, channel="email")
    older.refresh_from_db()
    assert (older.email_opt_in, older.email_consent_at) == (True, EXPORTED_AT)


def test_unknown_club_codes_stop_the_run_before_anything_is_written():
    tenant = region_tenant("ZA")
    tenant.clubs.filter(name="SVG").delete()
    with pytest.raises(ImportRefused, match="SVG"):
        do_import(tenant, "ZA")
    assert not ImportRun.objects.for_tenant(tenant).exists()
    assert not ImportRow.objects.filter(tenant=tenant).exists()
    club = tenant.clubs.get(name="RGC")
    run = do_import(tenant, "ZA", club_map={"SVG": str(club.pk)})
    assert run.status == RunStatus.COMPLETED and run.club_map["SVG"] == str(club.pk)


def test_a_run_killed_while_loading_resumes_to_the_same_end(monkeypatch):
    reference = region_tenant("UK", slug="bf-reference")
    do_import(reference, "UK")
    tenant = region_tenant("UK")
    calls = []
    real_metrics = loading._metrics

    def die(**kwargs):
        calls.append(1)
        raise KeyboardInterrupt("killed")  # not an Exception: like a signal mid-transaction

    monkeypatch.setattr(loading, "_metrics", die)
    with pytest.raises(KeyboardInterrupt):
        do_import(tenant, "UK")
    assert calls and CustomerProfile.objects.for_tenant(tenant).count() == 0
    interrupted = ImportRun.objects.for_tenant(tenant).get()
    assert interrupted.status != RunStatus.COMPLETED
    monkeypatch.setattr(loading, "_metrics", real_metrics)
    resumed = do_import(tenant, "UK")
    assert resumed.pk == interrupted.pk  # the same run, resumed
    assert _state(tenant) == _state(reference)
    assert resumed.counters == ImportRun.objects.for_tenant(reference).get().counters


def test_runs_and_people_stay_in_their_tenant():
    tenant_a, tenant_b = region_tenant("ZA", slug="bf-a"), region_tenant("ZA", slug="bf-b")
    outsider = person(tenant_b, email="zanele.mahlangu37@example.org")
    run_a = do_import(tenant_a, "ZA")
    assert not ImportRun.objects.for_tenant(tenant_b).exists()
    row = _rows(run_a)[("RGC", "1022")]
    assert row.profile_id != outsider.pk and row.outcome == RowOutcome.CREATED
    run_b = do_import(tenant_b, "ZA")
    assert run_b.pk != run_a.pk  # the same export in another tenant is its own run
    assert _rows(run_b)[("RGC", "1022")].profile_id == outsider.pk
    assert CustomerProfile.objects.for_tenant(tenant_a).count() == 239


def test_command_writes_the_report_and_the_reject_files(tmp_path, capsys):
    tenant = region_tenant("ZA")
    report = tmp_path / "report.json"
    call_command(
        "import_mca_v1", str(DATA / "za"), "--tenant", tenant.slug, "--region", "ZA",
        "--report", str(report), "--rejects", str(tmp_path), "--exported-at",
        EXPORTED_AT.isoformat(),
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "members 260 in = 259 loaded + 1 rejected" in out and "reconciled: yes" in out
    data = json.loads(report.read_text())
    assert len(data["members"]) == 260
    record = next(m for m in data["members"] if m["member_no"] == "1118")
    assert record["club_code"] == "RGC" and record["outcome"] in ("created", "joined")
    assert record["profile_id"] and "impossible date" in record["reason"]
    rejects = (tmp_path / "members.rejects.csv").read_bytes().decode("cp1252")
    assert rejects.splitlines()[0].endswith(";Reason")
    assert rejects.splitlines()[1].startswith("SVG;1059;")
    # The operator's import is in the audit trail (docs/privacy.md).
    (audit,) = AuditEvent.objects.filter(tenant=tenant, action="import.started")
    assert audit.actor.startswith("cli:") and audit.detail["status"] == "COMPLETED"


def test_command_lists_unknown_clubs(tmp_path):
    tenant = region_tenant("UK")
    tenant.clubs.all().delete()
    with pytest.raises(Exception, match="HGT, SAN"):
        call_command("import_mca_v1", str(DATA / "uk"), "--tenant", tenant.slug, "--region", "UK")


def test_a_later_export_updates_what_changed(tmp_path):
    tenant = region_tenant("UK")
    do_import(tenant, "UK")
    # The next export: SAN 1034 (Amelia MacDonald, Full, A) resigned and opted in to SMS.
    text = (DATA / "uk" / "members.csv").read_text(encoding="utf-8-sig")
    old = next(line for line in text.splitlines() if line.startswith("SAN,1034,"))
    fields = old.split(",")
    fields[17], fields[19], fields[22] = "R", "01/09/2024", "Y"
    (tmp_path / "members.csv").write_text(text.replace(old, ",".join(fields)), encoding="utf-8-sig")
    later = EXPORTED_AT + timedelta(days=60)
    run = do_import(tenant, "UK", path=tmp_path, exported_at=later)
    assert run.counters["member_outcomes"] == {"updated": 1, "unchanged": 258, "rejected": 1}
    row = _rows(run)[("SAN", "1034")]
    assert row.outcome == RowOutcome.UPDATED
    amelia = CustomerProfile.objects.get(pk=row.profile_id)
    assert amelia.lifecycle_stage == LifecycleStage.LAPSED
    assert amelia.membership_status == "RESIGNED"
    assert (amelia.sms_opt_in, amelia.sms_consent_at) == (True, later)
    assert (
        Activity.objects.for_tenant(tenant)
        .filter(customer=amelia, type="mca_v1.membership.left")
        .exists()
    )


def _expected_metrics(tenant, now) -> dict:
    """Each profile's last activity, 30-day count and lifetime value, recomputed here from
    its activities and the LastVisit of its member records."""
    expected: dict = {}
    for a in Activity.objects.for_tenant(tenant):
        last, recent, value = expected.get(a.customer_id, (None, 0, 0))
        if last is None or a.occurred_at > last:
            last = a.occurred_at
        if now - timedelta(days=30) < a.occurred_at <= now:
            recent += 1
        if a.type == "mca_v1.transaction" and a.metadata["currency"] == tenant.currency:
            value += a.metadata["amount_minor"]
        expected[a.customer_id] = (last, recent, value)
    for row in ImportRow.objects.filter(run__tenant=tenant, file="members", rejected=False):
        visit = row.data.get("last_visit")
        if visit:
            last, recent, value = expected.get(row.profile_id, (None, 0, 0))
            visit = datetime.fromisoformat(visit)
            expected[row.profile_id] = (visit if last is None or visit > last else last,
                                        recent, value)  # fmt: skip
    return expected


def _days_after_the_last_round(region: str, days: int) -> datetime:
    folder = DATA / REGIONS[region][0]
    export = Export(folder)
    played = []
    for _, raw in read_raw(export, "rounds", DIALECTS[region]):
        with contextlib.suppress(IndexError, ValueError):  # the export's faulty dates
            played.append(datetime.strptime(raw[2], "%d/%m/%Y").replace(tzinfo=UTC))
    export.close()
    return max(played) + timedelta(days=days)


@pytest.mark.parametrize("region", ["ZA", "UK"])
def test_every_profile_gets_its_last_activity_recent_count_and_lifetime_value(region):
    # ``now`` a week after the latest round: some activities fall in the 30-day window.
    now = _days_after_the_last_round(region, 7)
    tenant = region_tenant(region)
    existing = person(tenant, email="existing.before.import@example.org")
    run = do_import(tenant, region, now=now)
    expected = _expected_metrics(tenant, now)
    assert sum(recent for _, recent, _ in expected.values()) > 0
    profiles = CustomerProfile.objects.for_tenant(tenant).exclude(pk=existing.pk)
    assert profiles.count() == run.counters["member_outcomes"]["created"]
    for p in profiles:
        last, recent, value = expected.get(p.id, (None, 0, 0))
        assert (p.last_activity_at, p.activity_count_30d, p.lifetime_value_minor) == (
            last, recent, value,
        ), p.email  # fmt: skip
        assert p.last_activity_type.startswith("mca_v1.") or p.last_activity_at is None


def test_an_existing_persons_last_activity_moves_forward_only():
    tenant = region_tenant("ZA")
    # RGC 1022 joins the CRM's profile of this email; SVG 1045 another one.
    behind = person(tenant, email="zanele.mahlangu37@example.org")
    ahead = person(tenant, email="tshepo.steyn97@gmail.com")
    later = EXPORTED_AT + timedelta(days=10)
    CustomerProfile.objects.filter(pk=behind.pk).update(
        last_activity_at=EXPORTED_AT - timedelta(days=3000), last_activity_type="booking"
    )
    CustomerProfile.objects.filter(pk=ahead.pk).update(
        last_activity_at=later, last_activity_type="booking"
    )
    run = do_import(tenant, "ZA", now=later)
    rows = _rows(run)
    assert rows[("RGC", "1022")].profile_id == behind.pk
    assert rows[("SVG", "1045")].profile_id == ahead.pk
    expected = _expected_metrics(tenant, later)
    behind.refresh_from_db()
    ahead.refresh_from_db()
    assert behind.last_activity_at == expected[behind.pk][0] > EXPORTED_AT - timedelta(days=3000)
    assert behind.last_activity_type != "booking"
    assert behind.lifetime_value_minor == expected[behind.pk][2]
    assert (ahead.last_activity_at, ahead.last_activity_type) == (later, "booking")
    assert ahead.lifetime_value_minor == expected[ahead.pk][2]
