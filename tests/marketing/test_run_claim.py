"""A sender's claim of a campaign run's rows (``run_messages_claim``, one statement): only
QUEUED rows of that run that may go now, in id order, each marked SENDING with one more
attempt before anything is sent; a row already claimed is never claimed again, and the run's
rows are the only ones it takes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from marketing.models import CampaignRun, Message, MessageStatus
from marketing.sending import run_messages_claim
from tests.factories import TenantFactory
from tests.marketing.builders import NOON_JHB, make_campaign, make_member, prepare_run

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("at_ten_to_noon", "fresh_messaging_backend"),
]


def _prepared_run(tenant, people: int) -> CampaignRun:
    for i in range(people):
        make_member(tenant, f"c{i}@example.com", email_opt_in=True)
    return prepare_run(make_campaign(tenant))


def test_a_claim_marks_the_runs_next_queued_rows_sending_and_never_takes_one_twice(tenant_a):
    run = _prepared_run(tenant_a, 5)
    other = _prepared_run(TenantFactory(slug="other-club"), 3)
    ids = list(Message.objects.filter(run=run).order_by("id").values_list("id", flat=True))
    # One row waits for a retry, one was claimed by another sender already.
    Message.objects.filter(pk=ids[0]).update(send_after=NOON_JHB + timedelta(minutes=2))
    Message.objects.filter(pk=ids[1]).update(status=MessageStatus.SENDING)

    first = run_messages_claim(run=run, now=NOON_JHB, limit=2)
    second = run_messages_claim(run=run, now=NOON_JHB, limit=10)

    assert [m.pk for m in first] == ids[2:4]
    assert [m.pk for m in second] == ids[4:]
    assert run_messages_claim(run=run, now=NOON_JHB, limit=10) == []
    for claimed in first + second:
        row = Message.objects.get(pk=claimed.pk)
        assert (row.status, row.send_after, row.attempts) == (
            MessageStatus.SENDING,
            NOON_JHB,
            1,
        )
        assert (claimed.attempts, claimed.customer_id, claimed.address, claimed.tenant_id) == (
            1,
            row.customer_id,
            row.address,
            tenant_a.pk,
        )
    # The waiting row goes once its time has come; the other run's rows were never touched.
    later = run_messages_claim(run=run, now=NOON_JHB + timedelta(minutes=3), limit=10)
    assert [m.pk for m in later] == ids[:1]
    assert set(Message.objects.filter(run=other).values_list("status", flat=True)) == {
        MessageStatus.QUEUED
    }
