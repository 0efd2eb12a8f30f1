"""Retention of messages and interactions (registered in ``MarketingConfig.ready``; the job
and its guarantees: ``crm.retention``).

**Messages.** The CRM keeps no rendered bodies: a message row is who, which channel and
what became of it; the text is rendered from the template at send time and leaves with
the backend. After ``RETENTION_MESSAGE_DAYS`` (180) a settled message (sent, failed,
skipped, cancelled) loses what names the person's contact details: ``address`` and the
provider's ``error`` become empty. Stats, the frequency cap, A/B results and scores read
status, channel, variant and times, which stay. (A late unsubscribe of such a message still
clears consent; it suppresses no address, the message has none.)

**Interactions.** After ``RETENTION_INTERACTION_MONTHS`` (13) interaction rows are rolled
up: every row is counted into ``InteractionDaily`` (day, campaign, channel, kind), then
only the **first** interaction of each kind per message is kept, with its ``metadata``
(user agent, link, provider data) emptied; repeats (the fifth open of one email) are
deleted. Every report counts people or messages once per kind (campaign stats, the campaign
list's rates, A/B winners, journey conditions and analytics: "a message has an open"), and
scores read 90 days at most, so every figure is the same before and after
(``tests/privacy/test_retention.py``); the daily counts keep the totals of repeats.
"""

from __future__ import annotations

from django.conf import settings

from crm.retention import days_before, months_before, sql_step

from .models import Interaction, InteractionDaily, Message, MessageStatus

MESSAGE = Message._meta.db_table
INTERACTION = Interaction._meta.db_table
DAILY = InteractionDaily._meta.db_table
SETTLED = (MessageStatus.SENT, MessageStatus.FAILED, MessageStatus.SKIPPED, MessageStatus.CANCELLED)

_MESSAGE_SCRUB_SQL = f"""
    UPDATE "{MESSAGE}" SET address = '', error = '', updated_at = %(now)s
    WHERE id > %(lo)s AND id <= %(hi)s AND status IN ({", ".join(f"'{s}'" for s in SETTLED)})
      AND (address <> '' OR error <> '')
"""  # noqa: S608
_ROLLUP_SQL = f"""
    INSERT INTO "{DAILY}" AS d (tenant_id, day, campaign_id, channel, kind, events,
                                created_at, updated_at)
    SELECT i.tenant_id, (i.occurred_at AT TIME ZONE 'UTC')::date, i.campaign_id, m.channel,
           i.kind, count(*), %(now)s, %(now)s
    FROM "{INTERACTION}" i JOIN "{MESSAGE}" m ON m.id = i.message_id
    WHERE i.id > %(lo)s AND i.id <= %(hi)s
    GROUP BY 1, 2, 3, 4, 5
    ON CONFLICT ON CONSTRAINT interactiondaily_uniq
    DO UPDATE SET events = d.events + EXCLUDED.events, updated_at = EXCLUDED.updated_at
"""  # noqa: S608
# A row goes when an earlier interaction of the same kind on the same message exists
# (earlier by time, then id): exactly one row per message and kind stays, wherever it is.
_REPEATS_SQL = f"""
    DELETE FROM "{INTERACTION}" i
    WHERE i.id > %(lo)s AND i.id <= %(hi)s
      AND EXISTS (SELECT 1 FROM "{INTERACTION}" j
                  WHERE j.message_id = i.message_id AND j.kind = i.kind
                    AND (j.occurred_at, j.id) < (i.occurred_at, i.id))
"""  # noqa: S608
_FIRSTS_SQL = f"""
    UPDATE "{INTERACTION}" SET metadata = '{{}}'::jsonb, updated_at = %(now)s
    WHERE id > %(lo)s AND id <= %(hi)s AND metadata <> '{{}}'::jsonb
"""  # noqa: S608


message_retention = sql_step(
    name="message_addresses",
    model=Message,
    cutoff=lambda now: days_before(now, settings.RETENTION_MESSAGE_DAYS),
    statements=[_MESSAGE_SCRUB_SQL],
)
# In this order, in one transaction per batch: count every row, drop the repeats, empty the
# first rows' metadata.
interaction_retention = sql_step(
    name="interactions_rollup",
    model=Interaction,
    cutoff=lambda now: months_before(now, settings.RETENTION_INTERACTION_MONTHS),
    statements=[_ROLLUP_SQL, _REPEATS_SQL, _FIRSTS_SQL],
)
