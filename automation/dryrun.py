"""The "test with one customer" dry run: the path a person would take through a journey's
current version if they entered now, and why at each step. Reads only."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from django.db import connection
from django.utils import timezone

from customers.models import CustomerProfile
from marketing.common import unreachable_sql
from marketing.segments import criteria_parse, matching
from marketing.sending import in_quiet_hours, quiet_hours_end

from .engine import M, P, split_branch, wait_end
from .models import Enrollment, EnrollmentStatus, Journey, Step, StepType


def _send_verdict(journey: Journey, step: Step, customer: CustomerProfile, now: datetime) -> str:
    tenant = journey.tenant
    channel = step.config["channel"]
    sql = f"""
        SELECT CASE {unreachable_sql(channel)}
                 WHEN %s > 0 AND (
                   SELECT count(*) FROM "{M}" m WHERE m.tenant_id = p.tenant_id
                     AND m.customer_id = p.id AND m.status = 'SENT'
                     AND m.sent_at > %s::timestamptz - make_interval(days => %s)) >= %s
                   THEN 'frequency_cap'
                 ELSE '' END
        FROM "{P}" p WHERE p.id = %s AND p.tenant_id = %s
    """  # noqa: S608
    cap = tenant.frequency_cap if tenant.frequency_window_days else 0
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [
                channel,
                cap,
                now,
                tenant.frequency_window_days,
                tenant.frequency_cap,
                customer.pk,
                tenant.pk,
            ],
        )
        reason = cursor.fetchone()[0]
    if reason:
        return f"would be skipped: {reason.replace('_', ' ')}"
    if in_quiet_hours(tenant, now):
        opens = quiet_hours_end(tenant, now)
        return f"would wait for the end of quiet hours ({opens:%Y-%m-%d %H:%M} UTC), then send"
    return f"would send the {channel} template"


def journey_dry_run(
    *, journey: Journey, customer: CustomerProfile, now: datetime | None = None
) -> list[dict[str, str]]:
    """The path ``customer`` would take through the current version if they entered now, and
    why at each step; nothing is written. Waits are assumed to run out (an event wait takes
    its timeout branch) and "since entering" conditions see nothing yet."""
    now = now or timezone.now()
    version = journey.current_version
    if version is None:
        return [{"step": "", "type": "", "what": "The journey has no steps yet."}]
    steps = {s.key: s for s in version.steps.all()}
    path: list[dict[str, str]] = []
    if journey.entry_criteria:
        group = criteria_parse(journey.tenant, journey.entry_criteria)
        if not matching(journey.tenant, group, now).filter(pk=customer.pk).exists():
            return [
                {"step": "", "type": "", "what": "Would not enter: the entry filter excludes them."}
            ]
    active = Enrollment.objects.filter(
        tenant=journey.tenant, journey=journey, customer=customer, status=EnrollmentStatus.ACTIVE
    ).first()
    if active is not None:
        path.append(
            {
                "step": "",
                "type": "",
                "what": f"Already in the journey at {active.step_key}: would not enter again now.",
            }
        )
    key, clock = version.entry_key, now
    seen = 0
    while key and seen < 50:
        seen += 1
        step = steps[key]
        config = step.config
        nxt = step.next_keys[0] if step.next_keys else ""
        if step.type == StepType.SEND:
            what = _send_verdict(journey, step, customer, clock)
        elif step.type == StepType.WAIT:
            end = wait_end(journey, step, clock)
            if "event_type" in config:
                what = (
                    f"waits for {config['event_type']} until {end:%Y-%m-%d %H:%M} UTC;"
                    " assumed to time out"
                )
                nxt = step.next_keys[1]
            else:
                what = f"waits until {end:%Y-%m-%d %H:%M} UTC"
            clock = end
        elif step.type == StepType.CONDITION:
            if "criteria" in config:
                group = criteria_parse(journey.tenant, config["criteria"])
                yes = matching(journey.tenant, group, clock).filter(pk=customer.pk).exists()
                what = (
                    "the profile matches the criteria"
                    if yes
                    else "the profile does not match the criteria"
                )
            else:
                yes = False
                what = "nothing happened since entering yet (dry run)"
            nxt = step.next_keys[0 if yes else 1]
            what = f"{'yes' if yes else 'no'}: {what}"
        elif step.type == StepType.SPLIT:
            branch = split_branch(hash_of(customer.pk), config["weights"])
            nxt = step.next_keys[branch]
            what = f"branch {branch + 1} (illustrative: the enrollment's id decides)"
        elif step.type == StepType.UPDATE:
            what = "would update the profile: " + ", ".join(
                f"{name} {value}" for name, value in sorted(config.items())
            )
        elif step.type == StepType.TASK:
            what = f"would add a follow-up note: {config['body']}"
        else:
            what = "ends the journey"
            nxt = ""
        path.append({"step": key, "type": step.type, "what": what})
        key = nxt
    return path


def hash_of(value: Any) -> int:
    return int(hashlib.md5(str(value).encode(), usedforsecurity=False).hexdigest()[:8], 16)
