"""Fixtures shared by the marketing tests. The clock and the backend reset are not autouse:
a module opts in with ``pytest.mark.usefixtures("at_ten_to_noon", "fresh_messaging_backend")``
(the worker and segment tests keep the real clock)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from marketing import messaging
from marketing.models import Message, MessageStatus
from tests.marketing.builders import NOON_JHB, make_campaign, make_member, run_to_completion


@pytest.fixture
def at_ten_to_noon():
    """Shortly before noon in Johannesburg (the clock keeps ticking), so quiet hours never
    hold these sends, whatever CI's clock says."""
    with time_machine.travel(NOON_JHB - timedelta(minutes=10), tick=True):
        yield


@pytest.fixture
def fresh_messaging_backend():
    """The messaging backend and its connections are built anew for the test."""
    messaging.get_backend.cache_clear()
    messaging._connection_cache.clear()
    yield
    messaging._connection_cache.clear()


@pytest.fixture
def sent(tenant_a, at_ten_to_noon, fresh_messaging_backend):
    """One email sent to Ann, who had opted in: ``(ann, campaign, message)``."""
    ann = make_member(
        tenant_a,
        "ann@example.com",
        email_opt_in=True,
        email_consent_at=timezone.now() - timedelta(days=30),
    )
    campaign = make_campaign(tenant_a, scheduled_at=timezone.now() + timedelta(minutes=1))
    run = run_to_completion(campaign, now=timezone.now())
    message = Message.objects.get(run=run)
    assert message.status == MessageStatus.SENT
    return ann, campaign, message
