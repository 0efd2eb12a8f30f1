"""One clock: services take ``now`` from the caller and pass it into their SQL.

PostgreSQL's clock and Python's can disagree (in production by a second or two; in tests,
whose Python clock is frozen, by years). A query whose result depends on the time must not
read the database's clock, or results drift between the two. Two guards:

- the source of every app is scanned for SQL that reads the database clock;
- the time-dependent services run with Python's clock frozen years away from the
  database's (before and after it, on UK daylight-saving change days) and give the results
  their ``now`` calls for.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine

from customers.handlers import activity_count_recompute
from customers.models import CustomerProfile, SyncLogEntry
from marketing.campaigns import campaign_schedule
from marketing.models import Campaign, CampaignRun, Message, MessageStatus, MessageTemplate
from marketing.segments import segment_create
from marketing.sending import campaigns_start_due, run_prepare
from tests.customers.helpers import person
from tests.events.helpers import event, ingest, process_pending

ROOT = Path(__file__).resolve().parents[2]
APPS = ("crm", "customers", "marketing", "automation", "social", "backfill", "scoring")
# SQL (or ORM) that reads the database's clock. ``timezone.now()`` and ``datetime.now()``
# are Python's clock and fine; a bare ``now()`` in a SQL string is not.
SQL_CLOCK = re.compile(
    r"(?<![\w.])now\(\)|\bcurrent_date\b|\bcurrent_timestamp\b|\blocaltimestamp\b"
    r"|\btransaction_timestamp\(|\bstatement_timestamp\(|\bclock_timestamp\(",
    re.IGNORECASE,
)
ORM_CLOCK = re.compile(r"\bNow\(")  # django.db.models.functions.Now


def reads_database_clock(line: str) -> bool:
    return bool(SQL_CLOCK.search(line) or ORM_CLOCK.search(line))


def _sources():
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def test_no_service_sql_reads_the_database_clock():
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in _sources()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if reads_database_clock(line)
    ]
    assert offenders == []


def test_the_scan_finds_what_it_looks_for():
    """The guard above can fail: each form of the database clock is caught."""
    for sql in (
        "AND m.sent_at > now() - interval '7 days'",
        "WHERE d >= CURRENT_DATE",
        "SET at = current_timestamp",
        "filter(at__lte=Now())",
        "SELECT clock_timestamp()",
    ):
        assert reads_database_clock(sql), sql
    for fine in ("timezone.now()", "datetime.now(tz)", "now = now or timezone.now()"):
        assert not reads_database_clock(fine), fine


# Years away from the database's clock, on both sides, including UK DST change days.
FAR_AWAY = [
    datetime(2019, 6, 15, 9, 30, tzinfo=UTC),
    datetime(2031, 3, 30, 0, 30, tzinfo=UTC),  # 01:00 UK time jumps to 02:00 at 01:00 UTC
    datetime(2033, 10, 30, 1, 30, tzinfo=UTC),  # 02:00 BST falls back to 01:00 GMT at 01:00 UTC
]


@pytest.mark.parametrize("frozen", FAR_AWAY, ids=lambda d: d.date().isoformat())
def test_event_metrics_follow_the_callers_clock(tenant_a, frozen):
    with time_machine.travel(frozen, tick=False):
        ingest(
            tenant_a,
            event(
                tenant_a,
                "teetime.round.completed",
                identity={"email": "recent@example.com"},
                payload={"roundId": "r1", "holes": 18},
                timestamp=(frozen - timedelta(days=10)).isoformat(),
            ),
            event(
                tenant_a,
                "teetime.round.completed",
                identity={"email": "recent@example.com"},
                payload={"roundId": "r2", "holes": 18},
                timestamp=(frozen - timedelta(days=40)).isoformat(),
            ),
        )
        assert process_pending(tenant_a).processed == 2
    golfer = CustomerProfile.objects.get(tenant=tenant_a, email="recent@example.com")
    assert golfer.activity_count_30d == 1  # the round 10 days before "now", not the one of 40
    assert golfer.last_activity_at == frozen - timedelta(days=10)
    stamps = set(
        SyncLogEntry.objects.filter(tenant=tenant_a).values_list("queued_at", "processed_at")
    )
    assert stamps == {(frozen, frozen)}
    # 25 days later the recent round has aged out too.
    assert activity_count_recompute(tenant=tenant_a, now=frozen + timedelta(days=25)) == 1
    golfer.refresh_from_db()
    assert golfer.activity_count_30d == 0


@pytest.mark.parametrize("frozen", FAR_AWAY, ids=lambda d: d.date().isoformat())
def test_the_frequency_cap_counts_back_from_the_callers_clock(tenant_a, frozen):
    tenant_a.frequency_cap, tenant_a.frequency_window_days = 1, 7
    tenant_a.save(update_fields=["frequency_cap", "frequency_window_days"])
    with time_machine.travel(frozen, tick=False):
        busy = person(tenant_a, email="busy@example.com")
        free = person(tenant_a, email="free@example.com")
        CustomerProfile.objects.filter(pk__in=[busy.pk, free.pk]).update(
            lifecycle_stage="MEMBER", email_opt_in=True
        )
        template = MessageTemplate.objects.create(
            tenant=tenant_a, name="News", channel="email", subject="Hi", html_body="<p>Hi</p>"
        )
        segment = segment_create(
            tenant=tenant_a,
            data={
                "name": "Members",
                "criteria": {
                    "combinator": "AND",
                    "rules": [{"field": "lifecycle_stage", "operator": "eq", "value": "MEMBER"}],
                },
            },
        )
        earlier = Campaign.objects.create(
            tenant=tenant_a, name="Earlier", segment=segment, channels=["email"],
            email_template=template,
        )  # fmt: skip
        earlier_run = CampaignRun.objects.create(
            tenant=tenant_a, campaign=earlier, scheduled_for=frozen - timedelta(days=9)
        )
        for who, days_ago in ((busy, 2), (free, 8)):
            Message.objects.create(
                tenant=tenant_a, run=earlier_run, campaign=earlier, customer=who,
                channel="email", address=who.email, status=MessageStatus.SENT,
                sent_at=frozen - timedelta(days=days_ago),
            )  # fmt: skip
        campaign = Campaign.objects.create(
            tenant=tenant_a, name="Now", segment=segment, channels=["email"],
            email_template=template, scheduled_at=frozen + timedelta(hours=1),
        )  # fmt: skip
        campaign_schedule(campaign=campaign)
        assert campaigns_start_due(now=frozen + timedelta(hours=1, minutes=1)) == 1
        run = CampaignRun.objects.get(campaign=campaign)
        run_prepare(run=run, now=frozen + timedelta(hours=1, minutes=1))
    outcome = {m.customer_id: (m.status, m.skip_reason) for m in Message.objects.filter(run=run)}
    assert outcome == {
        busy.pk: (MessageStatus.SKIPPED, "frequency_cap"),  # one sent 2 days before "now"
        free.pk: (MessageStatus.QUEUED, ""),  # its last one is 8 days old: outside the week
    }
