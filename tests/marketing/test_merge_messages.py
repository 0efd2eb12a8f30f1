"""Merge: the loser's campaign messages and interactions go to the winner, so the frequency
cap sees them; a run both got on one channel keeps the winner's row."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from customers.services import profile_merge
from marketing.interactions import interaction_record
from marketing.models import CampaignRun, Interaction, Message, MessageStatus
from tests.marketing.builders import NOON_JHB, make_campaign, make_member, run_to_completion

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _at_ten_to_noon():
    with time_machine.travel(NOON_JHB - timedelta(minutes=10), tick=True):
        yield


def _sent(tenant, run, customer, channel, days_ago):
    return Message.objects.create(
        tenant=tenant,
        run=run,
        campaign=run.campaign,
        customer=customer,
        channel=channel,
        status=MessageStatus.SENT,
        sent_at=timezone.now() - timedelta(days=days_ago),
    )


def test_merge_moves_messages_and_interactions_keeping_the_winners_row_of_a_shared_run(
    tenant_a, tenant_b
):
    winner = make_member(tenant_a, "win@example.com", email_opt_in=True)
    loser = make_member(tenant_a, "lose@example.com", email_opt_in=True)
    earlier = make_campaign(tenant_a, name="Earlier")
    run = CampaignRun.objects.create(tenant=tenant_a, campaign=earlier, scheduled_for=NOON_JHB)
    shared_winner = _sent(tenant_a, run, winner, "email", 1)
    shared_loser = _sent(tenant_a, run, loser, "email", 1)
    only_loser = [_sent(tenant_a, run, loser, channel, 2) for channel in ("sms", "push")]
    opened = interaction_record(
        message=shared_loser,
        kind="OPENED",
        source="messaging",
        event_id="evt-open",
        occurred_at=timezone.now(),
    ).interaction
    clicked = interaction_record(
        message=only_loser[0],
        kind="CLICKED",
        source="messaging",
        event_id="evt-click",
        occurred_at=timezone.now(),
    ).interaction
    outsider = make_member(tenant_b, "win@example.com")

    merge = profile_merge(tenant=tenant_a, winner=winner, loser=loser, actor="test")

    assert merge.moved["marketing_messages"] == 4  # two messages, two interactions
    assert set(Message.objects.filter(customer=winner).values_list("pk", flat=True)) == {
        shared_winner.pk,
        *(m.pk for m in only_loser),
    }
    # The clashing row stays on the merged profile: (run, person, channel) is unique.
    assert list(Message.objects.filter(customer=loser)) == [shared_loser]
    assert set(Interaction.objects.filter(customer=winner)) == {opened, clicked}
    assert not Interaction.objects.filter(customer=loser).exists()
    assert not Message.objects.filter(customer=outsider).exists()

    # The winner now has three marketing messages this week: the cap (3 a week) holds them.
    run = run_to_completion(make_campaign(tenant_a, name="Later"))
    skipped = Message.objects.get(run=run, customer=winner)
    assert (skipped.status, skipped.skip_reason) == (MessageStatus.SKIPPED, "frequency_cap")
