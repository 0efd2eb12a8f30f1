"""Retention: the nightly job scrubs sync-log payloads and message addresses, rolls old
interactions up into daily counts and deletes old audit rows, and every report and score
reads the same figures before and after it."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.db.models import Sum
from django.utils import timezone

from crm import retention
from crm.audit import audit_record
from crm.models import AuditEvent, RetentionMark
from crm.retention import months_before, retention_run
from crm.tasks import retention_nightly
from customers.models import SyncLogEntry, SyncStatus
from marketing.campaigns import campaign_stats, campaigns_rates
from marketing.interactions import interaction_record
from marketing.models import Interaction, InteractionDaily, Message, MessageStatus
from scoring.churn import churn_scores
from scoring.engagement import engagement_scores
from tests.events.helpers import event, ingest, run
from tests.marketing.builders import NOON_JHB, make_campaign, make_member, run_to_completion

pytestmark = pytest.mark.django_db

OLD = NOON_JHB  # when the old campaign went out
NOW = months_before(OLD, -14)  # fourteen months later: the job's night
RECENT = NOW - timedelta(days=3)


def _campaign_with_interactions(tenant, name: str, at) -> object:
    """A campaign sent at ``at`` to every member, whose recipients open (several times),
    click and unsubscribe."""
    with time_machine.travel(at - timedelta(minutes=10), tick=False):
        campaign = make_campaign(tenant, name=name, scheduled_at=at)
        run_to_completion(campaign, now=at)
        messages = list(Message.objects.filter(campaign=campaign).order_by("id"))
        for n, message in enumerate(messages):
            kinds = ["DELIVERED", "OPENED", "OPENED", "OPENED"]
            kinds += ["CLICKED", "CLICKED"] if n % 2 == 0 else []
            kinds += ["UNSUBSCRIBED"] if n == 1 else []
            for k, kind in enumerate(kinds):
                interaction_record(
                    message=message, kind=kind, source="messaging",
                    event_id=f"{name}-{message.pk}-{k}",
                    occurred_at=at + timedelta(hours=k, minutes=n),
                    metadata={"userAgent": "Mail/1.0", "url": "https://club.example/x"},
                    now=at,
                )  # fmt: skip
    return campaign


def _figures(tenant, campaigns):
    return {
        "stats": [campaign_stats(campaign=c) for c in campaigns],
        "rates": campaigns_rates(campaigns=campaigns),
        "engagement": engagement_scores(tenant=tenant, now=NOW),
        "churn": churn_scores(tenant=tenant, as_of=NOW),
        "backtest_window": churn_scores(tenant=tenant, as_of=NOW - timedelta(days=90)),
    }


def test_reports_and_scores_are_the_same_before_and_after_the_job(tenant_a, monkeypatch):
    # Small batches, so the job walks each table in several of them.
    monkeypatch.setattr(retention, "BATCH", 7)
    with time_machine.travel(OLD - timedelta(days=1), tick=False):
        for n in range(6):
            make_member(tenant_a, f"m{n}@example.com", email_opt_in=True)
    old = _campaign_with_interactions(tenant_a, "Old news", OLD)
    recent = _campaign_with_interactions(tenant_a, "Recent news", RECENT)
    old_rows = Interaction.objects.filter(campaign=old).count()
    recent_rows = Interaction.objects.filter(campaign=recent).count()
    before = _figures(tenant_a, [old, recent])
    assert before["stats"][0]["opened"] == 6 and before["stats"][0]["clicked"] == 3

    result = retention_run(now=NOW)

    assert result["interactions_rollup"][1] is True
    assert _figures(tenant_a, [old, recent]) == before
    # The old campaign's repeats are gone: one row per message and kind, without metadata.
    kept = Interaction.objects.filter(campaign=old)
    assert kept.count() == 6 * 2 + 3 + 1  # delivered+opened each, clicked 3, unsubscribed 1
    assert [m for m in kept.values_list("metadata", flat=True) if m] == []
    # The row kept of each kind is the first: the first open came an hour after sending.
    for opened in kept.filter(kind="OPENED"):
        assert timedelta(hours=1) <= opened.occurred_at - OLD < timedelta(hours=1, minutes=10)
    # ... and counted per day: every raw row is in the daily counts, once.
    daily = InteractionDaily.objects.filter(tenant=tenant_a, campaign=old)
    assert daily.aggregate(n=Sum("events"))["n"] == old_rows
    assert set(daily.values_list("day", flat=True)) == {OLD.date()}
    # The recent campaign is untouched.
    recent_kept = Interaction.objects.filter(campaign=recent)
    assert recent_kept.count() == recent_rows
    assert not recent_kept.filter(metadata={}).exists()

    # A second run the same night finds nothing to do and changes nothing.
    again = retention_run(now=NOW)
    assert all(handled == 0 and done for handled, done in again.values())
    assert _figures(tenant_a, [old, recent]) == before
    assert daily.aggregate(n=Sum("events"))["n"] == old_rows


def test_old_message_addresses_are_scrubbed_and_recent_ones_kept(tenant_a):
    with time_machine.travel(OLD - timedelta(days=1), tick=False):
        make_member(tenant_a, "ann@example.com", email_opt_in=True)
    old = _campaign_with_interactions(tenant_a, "Old", OLD)
    recent = _campaign_with_interactions(tenant_a, "Recent", RECENT)
    sent_before = campaign_stats(campaign=old)["sent"]

    retention_run(now=NOW)

    old_message = Message.objects.get(campaign=old)
    assert (old_message.address, old_message.error) == ("", "")
    assert old_message.status == MessageStatus.SENT and old_message.sent_at is not None
    assert campaign_stats(campaign=old)["sent"] == sent_before == 1
    assert Message.objects.get(campaign=recent).address == "ann@example.com"


def test_old_sync_log_payloads_are_scrubbed_but_pending_and_recent_rows_kept(tenant_a):
    with time_machine.travel(OLD, tick=False):
        run(tenant_a, event(tenant_a, "scl.member.created", {"email": "a@example.com"},
                            {"firstName": "Ann"}, id="old-1"))  # fmt: skip
        ingest(tenant_a, event(tenant_a, "scl.member.created", {"email": "p@example.com"},
                               {"firstName": "Pat"}, id="old-pending"))  # fmt: skip
    with time_machine.travel(RECENT, tick=False):
        run(tenant_a, event(tenant_a, "scl.member.created", {"email": "b@example.com"},
                            {"firstName": "Bea"}, id="recent-1"))  # fmt: skip
    # That run applied every pending row; the old one is to be still pending (stuck).
    SyncLogEntry.objects.filter(event_id="old-pending").update(status=SyncStatus.PENDING)

    handled, finished = retention_run(now=NOW)["sync_log_payloads"]

    assert (handled, finished) == (1, True)
    old = SyncLogEntry.objects.get(event_id="old-1")
    assert (old.payload, old.identity, old.status) == ({}, {}, SyncStatus.PROCESSED)
    assert old.type == "scl.member.created" and old.profile_id is not None
    assert SyncLogEntry.objects.get(event_id="old-pending").payload == {"firstName": "Pat"}
    assert SyncLogEntry.objects.get(event_id="recent-1").payload == {"firstName": "Bea"}
    # The replayed old event is still recognised as a duplicate (its key stays).
    with time_machine.travel(NOW, tick=False):
        again = ingest(tenant_a, event(tenant_a, "scl.member.created", {"email": "a@example.com"},
                                       {"firstName": "Ann"}, id="old-1"))  # fmt: skip
    assert again.duplicates == ["old-1"]


def test_audit_rows_are_kept_for_the_documented_months_then_deleted(tenant_a):
    with time_machine.travel(months_before(NOW, 25), tick=False):
        gone = audit_record(tenant=tenant_a, actor="staff:anna", action="customer.viewed",
                            object_type="customers.CustomerProfile", object_id="x")  # fmt: skip
    with time_machine.travel(months_before(NOW, 23), tick=False):
        kept = audit_record(tenant=tenant_a, actor="staff:anna", action="customer.viewed",
                            object_type="customers.CustomerProfile", object_id="y")  # fmt: skip

    assert retention_run(now=NOW)["audit_events"] == (1, True)
    assert list(AuditEvent.objects.values_list("pk", flat=True)) == [kept.pk]
    assert not AuditEvent.objects.filter(pk=gone.pk).exists()


def test_the_command_runs_one_step_for_the_maintenance_role(tenant_a, capsys):
    with time_machine.travel(months_before(timezone.now(), 30), tick=False):
        audit_record(tenant=tenant_a, actor="staff:anna", action="customer.viewed",
                     object_type="customers.CustomerProfile", object_id="x")  # fmt: skip

    call_command("retention_run", "--step", "audit_events")

    assert capsys.readouterr().out.strip() == "audit_events: 1 rows, done"
    assert not AuditEvent.objects.exists()


def test_the_nightly_task_continues_in_a_new_run_when_out_of_time(tenant_a, monkeypatch):
    queued = []
    monkeypatch.setattr(retention_nightly, "apply_async", lambda *a, **k: queued.append(1))
    monkeypatch.setattr(
        "crm.tasks.retention_run", lambda: {"sync_log_payloads": (5000, False), "x": (0, True)}
    )
    retention_nightly.run()
    assert queued == [1]
    monkeypatch.setattr("crm.tasks.retention_run", lambda: {"sync_log_payloads": (0, False)})
    retention_nightly.run()
    assert queued == [1]  # no progress: no loop


def test_a_step_stops_at_the_deadline_and_resumes_from_its_mark(tenant_a, monkeypatch):
    monkeypatch.setattr(retention, "BATCH", 2)
    with time_machine.travel(OLD, tick=False):
        run(tenant_a, *[event(tenant_a, "scl.member.created", {"email": f"x{n}@example.com"},
                              {}, id=f"e-{n}") for n in range(5)])  # fmt: skip

    assert retention_run(now=NOW, budget_seconds=0)["sync_log_payloads"] == (0, False)
    assert not RetentionMark.objects.filter(name="sync_log_payloads", upto_id__gt=0).exists()
    assert retention_run(now=NOW)["sync_log_payloads"] == (5, True)
    assert not SyncLogEntry.objects.exclude(identity={}).exists()
